"""Held-apart evaluation: items a training run's split.json says it trained on are dropped
(issue 18, part 2: the README's train → eval flows scored the very rows they trained on)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmllm.errors import DataFormatError, DataNotFoundError
from medmllm.eval.runner import EvalOptions, run_eval
from medmllm.eval.split import SplitMismatchError, find_run_split, read_split
from medmllm.eval.task import Task
from tests.eval.eval_helpers import MC_TASK, write_task
from tests.fakes import FakeGenerator


def _split(path: Path, train: list[str], held: list[str], key: str = "file_stem:id") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"source": "mcqa", "files": ["x/mcqa.jsonl"], "key": key, "train": train, "held": held}
    path.write_text(json.dumps(body))
    return path


def _task(tmp_path: Path, mcqa_file: Path) -> Task:
    return Task.from_file(write_task(tmp_path, MC_TASK.format(path=mcqa_file)))


def test_trained_items_are_dropped_before_the_limit(tmp_path: Path, mcqa_file: Path) -> None:
    # mcqa_file: q0..q11 in mcqa.jsonl; the run trained on q0..q7 and held q8..q11 apart
    split = _split(
        tmp_path / "run" / "split.json",
        [f"mcqa:q{i}" for i in range(8)],
        [f"mcqa:q{i}" for i in range(8, 12)],
    )
    res = run_eval(
        [_task(tmp_path, mcqa_file)],
        FakeGenerator(),
        EvalOptions(exclude_split=str(split)),
        cache_path=":memory:",
    )
    s = res["tasks"]["synth"]
    assert s["n"] == 4 and s["excluded_trained"] == 8
    assert [r["id"] for r in s["items"]] == ["q8", "q9", "q10", "q11"]
    assert res["held_apart"]["sha256"] == read_split(split).sha256
    assert res["held_apart"]["excluded_trained"] == {"synth": 8}
    limited = run_eval(
        [_task(tmp_path, mcqa_file)],
        FakeGenerator(),
        EvalOptions(exclude_split=str(split), limit=2),
        cache_path=":memory:",
    )["tasks"]["synth"]
    assert [r["id"] for r in limited["items"]] == ["q8", "q9"]  # held-apart rows, not q0, q1
    # without the split every row is scored, and the config hash says it is another run
    whole = run_eval([_task(tmp_path, mcqa_file)], FakeGenerator(), cache_path=":memory:")
    assert whole["tasks"]["synth"]["n"] == 12 and "held_apart" not in whole
    assert whole["config_hash"] != res["config_hash"]


def test_id_keys_match_the_item_id_alone(tmp_path: Path, mcqa_file: Path) -> None:
    split = _split(tmp_path / "s.json", ["q1", "q2"], ["q3"], key="pmid")
    res = run_eval(
        [_task(tmp_path, mcqa_file)],
        FakeGenerator(),
        EvalOptions(exclude_split=str(split)),
        cache_path=":memory:",
    )
    assert res["tasks"]["synth"]["excluded_trained"] == 2 and res["tasks"]["synth"]["n"] == 10


def test_a_split_naming_no_item_is_refused_or_noted(tmp_path: Path, mcqa_file: Path) -> None:
    wrong = _split(tmp_path / "s.json", ["medqa_dev:1", "medqa_dev:2"], ["medqa_dev:3"])
    with pytest.raises(SplitMismatchError, match=r"names none of its 12 rows"):
        run_eval(
            [_task(tmp_path, mcqa_file)],
            FakeGenerator(),
            EvalOptions(exclude_split=str(wrong)),
            cache_path=":memory:",
        )
    # found next to the model (not named by the user): evaluated in full, and said so
    res = run_eval(
        [_task(tmp_path, mcqa_file)],
        FakeGenerator(),
        EvalOptions(exclude_split=str(wrong), exclude_split_strict=False),
        cache_path=":memory:",
    )
    s = res["tasks"]["synth"]
    assert s["n"] == 12 and s["excluded_trained"] == 0
    assert "names none of this task's rows" in s["notes"][0]


def test_read_split_errors_and_run_folder_lookup(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="split file not found"):
        read_split(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": []}')
    with pytest.raises(DataFormatError, match="needs 'key'"):
        read_split(bad)
    bad.write_text("not json")
    with pytest.raises(DataFormatError, match="not JSON"):
        read_split(bad)
    run = tmp_path / "runs" / "sft"
    _split(run / "split.json", ["a:1"], ["a:2"])
    (run / "adapter").mkdir()
    assert read_split(run).path == run / "split.json"  # a run folder works too
    assert find_run_split(run / "adapter") == run / "split.json"
    assert find_run_split(run) == run / "split.json"
    assert find_run_split(tmp_path / "runs") is None  # not further up than the parent
    assert find_run_split("HuggingFaceTB/SmolLM2-135M-Instruct") is None
    assert find_run_split(None) is None


@pytest.mark.slow
def test_sft_then_eval_scores_only_the_held_apart_rows(tmp_path: Path, shared_data: Path) -> None:
    """The README flow: `train sft` on the MCQA split, then `eval --model RUN/adapter`."""
    import os
    import subprocess
    import sys

    from tests.train.conftest import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny")
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MEDMLLM_HOME": str(tmp_path / "home")}
    env["MEDMLLM_SHARED_DATA"] = str(shared_data)
    env["PYTHONPATH"] = os.pathsep.join([str(repo), env.get("PYTHONPATH", "")])
    cli = [sys.executable, "-m", "medmllm.cli.main"]
    run = tmp_path / "runs" / "sft"
    sets = ["data.limit=8", "max_length=64", "batch_size=2", "grad_accum=1", "save_steps=1"]
    trained = subprocess.run(
        [*cli, "train", "sft", "-c", str(repo / "configs/train/sft_mcqa.yaml"), "-m", str(tiny),
         "--max-steps", "1", *(a for s in sets for a in ("--set", s)), "-o", str(run)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    split = json.loads((run / "split.json").read_text())
    train = {k.split(":", 1)[1] for k in split["train"] if k.startswith("medqa_dev:")}
    held = {k.split(":", 1)[1] for k in split["held"] if k.startswith("medqa_dev:")}
    evaluated = subprocess.run(
        [*cli, "eval", "--tasks", "medqa", "--backend", "hf", "--model", str(run / "adapter"),
         "-q", "-o", str(tmp_path / "eval")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert f"{len(train)} trained items excluded" in evaluated.stdout
    s = json.loads((tmp_path / "eval/results.json").read_text())["tasks"]["medqa"]
    assert s["excluded_trained"] == len(train) and s["n"] == len(held) > 0
    assert {r["id"] for r in s["items"]} == held  # exactly the rows training never saw
