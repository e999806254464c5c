"""Our multiple-choice predictions equal lm-evaluation-harness's (hf backend, same weights).

50 MedMCQA questions, zero- and 5-shot, the prompt and continuations of
``bench/eval_throughput.py`` (whose helpers build both task files, so the test and the benchmark
cannot drift apart). Zero-shot the embedded model answers "A" almost always; 5-shot its answers
spread over A and C (bench: 130 / 69 of 200), so agreement there is the stronger check.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.heavy]
N = 50


@pytest.mark.parametrize("shots", [0, 5])
def test_predictions_equal_lm_eval_on_50_questions(
    shots: int, shared_data: Path, tmp_path: Path
) -> None:
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
    data, exemplars = write_data(tmp_path, N, shared_data)
    task = our_task(tmp_path, data, exemplars, shots)
    ours = run_ours("hf", str(hf_dir), task, tmp_path / "o", env)
    include = lm_eval_task(tmp_path, data, exemplars)
    theirs = run_lm_eval(hf_dir, include, shots, "8", tmp_path / "l", env)
    assert len(ours["predictions"]) == len(theirs["predictions"]) == N
    pairs = zip(ours["predictions"], theirs["predictions"], strict=True)
    differ = [i for i, (a, b) in enumerate(pairs) if a != b]
    assert not differ, f"predictions differ on questions {differ}"
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"])
