"""Where eval data comes from: --data files and folders, image roots, hub alternatives, outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from medmllm.errors import DataNotFoundError, OfflineError
from medmllm.eval.readers import DatasetSpec, read_hf
from medmllm.eval.runner import EvalOptions, run_eval
from medmllm.eval.task import Task, load_task
from tests.eval.eval_helpers import MC_TASK, write_task
from tests.fakes import FakeGenerator

REPO = Path(__file__).resolve().parents[2]


# -- --data with a folder (multi-file tasks) ----------------------------------------------------
@pytest.mark.parametrize("sub", ["", "test"])
def test_data_folder_for_a_multi_file_task(bench_dir: Path, sub: str) -> None:
    task = load_task("mmlu_medical")
    task.data_override = [bench_dir / "mmlu" / sub]
    items, _, _ = task.load_items()
    subjects = {i.meta["subject"] for i in items}
    assert len(items) == 12 and len(subjects) == 6


def test_data_folder_missing_files_are_named(tmp_path: Path, bench_dir: Path) -> None:
    folder = tmp_path / "partial"
    folder.mkdir()
    shutil.copy(bench_dir / "mmlu/test/anatomy_test.csv", folder)
    task = load_task("mmlu_medical")
    task.data_override = [folder]
    with pytest.raises(DataNotFoundError, match="lacks 5 of the task's files"):
        task.load_items()


def test_data_folder_for_an_own_task_takes_its_files(tmp_path: Path, mcqa_file: Path) -> None:
    folder = tmp_path / "own"
    folder.mkdir()
    shutil.copy(mcqa_file, folder / "a.jsonl")
    shutil.copy(mcqa_file, folder / "b.jsonl")
    task = Task.from_file(write_task(tmp_path, MC_TASK.format(path="unused.jsonl")))
    task.config.dataset.path = None
    task.data_override = [folder]
    assert len(task.load_items()[0]) == 24


# -- --data on image tasks ----------------------------------------------------------------------
def test_data_file_of_an_image_task_finds_its_images(bench_dir: Path) -> None:
    task = load_task("slake")
    task.data_override = [bench_dir / "slake/test.json"]  # images are in slake/imgs/
    items, _, report = task.load_items()
    assert len(items) == 3 and not report.skipped
    assert all(Path(i.image).is_file() for i in items)


def test_image_root_flag(bench_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "elsewhere" / "test.json"
    data.parent.mkdir()
    shutil.copy(bench_dir / "slake/test.json", data)
    task = load_task("slake")
    task.data_override = [data]
    assert task.load_items()[2].skipped == {"missing_image": 3}
    task.image_root_override = bench_dir / "slake/imgs"
    items, _, report = task.load_items()
    assert len(items) == 3 and not report.skipped


def test_cli_data_and_image_root(bench_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}:{os.environ.get('PYTHONPATH', '')}",
        "MEDMLLM_HOME": str(tmp_path / "home"),
        "FAKE_IMAGES": "1",
    }
    args = ["--tasks", "slake", "--mode", "gen", "--backend", "tests.fakes:FakeGenerator", "-q"]
    cmd = [sys.executable, "-m", "medmllm.cli.main", "eval", *args]
    data = ["--data", str(bench_dir / "slake/test.json"), "--out", str(out)]
    result = subprocess.run([*cmd, *data], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "results.json").read_text())["tasks"]["slake"]["n"] == 3
    # no --out: the run goes under MEDMLLM_HOME/runs/eval, as the README says
    data = [
        "--data",
        str(bench_dir / "slake/test.json"),
        "--image-root",
        str(bench_dir / "slake/imgs"),
    ]
    result = subprocess.run([*cmd, *data], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / "home/runs/eval").glob("*-slake/results.json"))
    assert len(runs) == 1 and (runs[0].parent / "samples.jsonl").is_file()


# -- Hugging Face alternatives ------------------------------------------------------------------
HUB_ROWS: dict[str, list[dict[str, Any]]] = {
    "openlifescienceai/medmcqa": [
        {"id": "x1", "question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 2}
    ],
    "GBaker/MedQA-USMLE-4-options": [
        {"question": "Q?", "options": {"A": "a", "B": "b", "C": "c", "D": "d"}, "answer_idx": "D"}
    ],
    "qiaojin/PubMedQA": [
        {"pubid": 7, "question": "Q?", "context": {"contexts": ["x", "y"]}, "final_decision": "no"}
    ],
    "cais/mmlu": [{"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 1}],
}


@pytest.fixture()
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple]:
    import datasets

    calls: list[tuple] = []

    def load_dataset(hf_id: str, config: str | None = None, split: str | None = None) -> list:
        calls.append((hf_id, config, split))
        return HUB_ROWS[hf_id]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setenv("MEDMLLM_OFFLINE", "0")
    empty = tmp_path / "no-shared-data"
    empty.mkdir()
    monkeypatch.setenv("MEDMLLM_SHARED_DATA", str(empty))  # the local files are absent
    monkeypatch.delenv("MEDMLLM_MMLU_DIR", raising=False)
    return calls


@pytest.mark.parametrize(
    ("name", "answer", "n"),
    [("medmcqa", "C", 1), ("medqa", "D", 1), ("pubmedqa", "B", 1), ("mmlu_medical", "B", 6)],
)
def test_hub_alternative_when_local_files_are_absent(fake_hub, name, answer, n) -> None:
    items, _, _ = load_task(name).load_items()
    assert len(items) == n and items[0].answer == answer and items[0].question == "Q?"
    assert fake_hub[0][0] == load_task(name).config.dataset.hf_id


def test_hub_ids_follow_each_split(fake_hub) -> None:
    load_task("medmcqa").load_items()
    load_task("pubmedqa").load_items()
    assert fake_hub == [
        ("openlifescienceai/medmcqa", None, "validation"),
        ("qiaojin/PubMedQA", "pqa_labeled", "train"),
    ]


def test_read_hf_refuses_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDMLLM_OFFLINE", "1")
    with pytest.raises(OfflineError, match="Hugging Face dataset 'x/y'"):
        read_hf(DatasetSpec(hf_id="x/y"))


def test_offline_task_without_local_data_says_both(fake_hub, monkeypatch) -> None:
    monkeypatch.setenv("MEDMLLM_OFFLINE", "1")
    with pytest.raises(OfflineError, match="no local data") as info:
        load_task("medmcqa").load_items()
    assert "--data" in (info.value.hint or "") and fake_hub == []


# -- per-sample log -----------------------------------------------------------------------------
def test_samples_jsonl_beside_results(tmp_path: Path, mcqa_file: Path) -> None:
    task = Task.from_file(write_task(tmp_path, MC_TASK.format(path=mcqa_file)))
    out = tmp_path / "run"
    res = run_eval(
        [task], FakeGenerator(), EvalOptions(limit=5), cache_path=":memory:", out_dir=out
    )
    lines = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 5 and "_samples" not in res["tasks"]["synth"]
    first = lines[0]
    assert first["task"] == "synth" and first["id"] == "q0" and first["question"].startswith("A 30")
    assert set(first["options"]) == set(first["probs"]) == {"A", "B", "C", "D"}
    assert first["gold"] == "A" and first["pred"] in "ABCD" and isinstance(first["correct"], bool)
