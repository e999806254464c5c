"""Our multiple-choice predictions equal lm-evaluation-harness's (hf backend, same weights).

50 MedMCQA questions, zero-shot, the prompt and continuations of ``bench/eval_throughput.py``
(whose helpers build both task files, so the test and the benchmark cannot drift apart).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.heavy]
N = 50


def test_predictions_equal_lm_eval_on_50_questions(shared_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("lm_eval", reason="lm-eval is in the bench extra: pip install '.[bench]'")
    from bench.eval_throughput import (
        lm_eval_task,
        our_task,
        run_lm_eval,
        run_ours,
        write_data,
    )

    from medmllm.config import get_settings
    from medmllm.models.defaults import resolve_model_path
    from medmllm.models.hf_weights import convert_gguf

    hf_dir = convert_gguf(resolve_model_path(None), get_settings().cache_dir("hf"))
    env = dict(os.environ, MEDMLLM_SHARED_DATA=str(shared_data), HF_DATASETS_OFFLINE="1")
    data, shots = write_data(tmp_path, N, shared_data)
    ours = run_ours("hf", str(hf_dir), our_task(tmp_path, data, shots, 0), tmp_path / "o", env)
    theirs = run_lm_eval(hf_dir, lm_eval_task(tmp_path, data, shots), 0, "8", tmp_path / "l", env)
    assert len(ours["predictions"]) == len(theirs["predictions"]) == N
    pairs = zip(ours["predictions"], theirs["predictions"], strict=True)
    differ = [i for i, (a, b) in enumerate(pairs) if a != b]
    assert not differ, f"predictions differ on questions {differ}"
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"])
