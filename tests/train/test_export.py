"""Export: merge LoRA → GGUF; llama.cpp and transformers agree on the exported weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engines import require_llama_cpp

CLI = [sys.executable, "-m", "medmllm.cli.main"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=os.environ.copy())


def test_export_refuses_non_adapter_and_bad_quant(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    proc = _cli("export", str(tmp_path), "-o", str(tmp_path / "x.gguf"))
    assert proc.returncode == 2 and "neither a LoRA adapter" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _cli("export", str(tmp_path), "--quant", "q3_xx")
    assert proc.returncode == 2 and "q3_xx" in proc.stderr
    proc = _cli("export", str(tmp_path / "missing"), "--to", "onnx")
    assert proc.returncode == 2 and "onnx" in proc.stderr


def test_permutation_matches_llama_cpp_layout() -> None:
    import numpy as np

    from medmllm.train.export import _permute

    w = np.arange(8 * 3).reshape(8, 3)  # 2 heads x head_dim 4
    p = _permute(w, 2, 2)
    # per head, rows (0, 2, 1, 3): the two rotary halves interleaved in pairs
    assert p[:4, 0].tolist() == [0, 6, 3, 9] and p[4:, 0].tolist() == [12, 18, 15, 21]


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.timeout(2400)  # ~2 min on an idle 2-core machine; 15+ min under heavy load
def test_exported_adapter_agrees_with_transformers(tmp_path: Path, shared_data: Path) -> None:
    require_llama_cpp()
    from medmllm.models.generator import LoglikelihoodRequest, load_generator
    from medmllm.train import sft
    from medmllm.train.export import export_gguf

    config = sft.SFTRunConfig(
        data={"builder": "mcqa", "limit": 8, "shared_dir": str(shared_data)},
        output_dir=tmp_path / "run",
        max_steps=1,
        max_length=512,  # at 64 every MCQA answer was truncated away: a no-op adapter
        learning_rate=1e-2,
        progress=False,
    )
    adapter = Path(sft.train(config)["output"])
    requests = [
        LoglikelihoodRequest(
            "Question: First-line drug for type 2 diabetes?\nA. Metformin\nB. Insulin\nAnswer:", c
        )
        for c in (" A", " B", " Metformin", " insulin")
    ]
    from medmllm.config import get_settings
    from medmllm.models.defaults import resolve_model_path
    from medmllm.models.hf_weights import convert_gguf

    base_hf = convert_gguf(resolve_model_path(None), get_settings().cache_dir("hf"))
    base = load_generator("hf", str(base_hf)).loglikelihood(requests)
    # mean |Δ log p| over the continuations; measured here: F16 0.006, Q8_0 0.03 (the adapter
    # moves them by 1.7). Q8_0's bound is loose on purpose: on 125 longer MedMCQA requests 8-bit
    # weights move log p by ~0.3 whoever quantises — ours (gguf-py, as llama.cpp's
    # convert_hf_to_gguf.py) 0.35, llama.cpp's own quantiser from the F16 file 0.32, F16 0.14.
    bounds = {"f16": 0.02, "q8_0": 1.0}
    for quant, bound in bounds.items():
        info = export_gguf(adapter, tmp_path / f"m.{quant}.gguf", quant=quant, keep_merged=True)
        cpp = load_generator("llamacpp", info["output"])
        ours = cpp.loglikelihood(requests)
        ref = load_generator("hf", info["merged"]).loglikelihood(requests)
        diff = sum(abs(a - b) for a, b in zip(ours, ref, strict=True)) / len(requests)
        assert diff < bound, (quant, ours, ref)
        assert ours.index(max(ours)) == ref.index(max(ref)), (quant, ours, ref)
        if quant == "f16":  # the adapter really was merged: scores moved off the base model
            moved = sum(abs(a - b) for a, b in zip(ref, base, strict=True)) / len(requests)
            assert moved > 0.05, (ref, base)  # same numerics (hf float32) on both sides
            assert cpp.chat([{"role": "user", "content": "Hi"}], max_tokens=4).text.strip()
