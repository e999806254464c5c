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
        max_length=64,
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
    base = load_generator("llamacpp", None).loglikelihood(requests)
    # mean |Δ log p| over the continuations. F16: measured 0.003. Q8_0: measured 0.51 on this
    # deliberately perturbed adapter (lr 1e-2) — more than expected, not yet explained; the
    # bound is a sanity bound and the best continuation must be the same.
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
            moved = sum(abs(a - b) for a, b in zip(ours, base, strict=True)) / len(requests)
            assert moved > 1e-3, (ours, base)
            assert cpp.chat([{"role": "user", "content": "Hi"}], max_tokens=4).text.strip()
