"""Issue 13 for eval: -o refuses another run (resumes the same one), results.json and
report.html change together, a full disk leaves the previous pair and no temp files, judge
parse counts, sheets and keys never overwritten, raters never merged, unknown ids counted."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from medmllm.errors import DataFormatError, InvalidRequestError, OutputExistsError
from medmllm.eval import report as report_module
from medmllm.eval.human import check_against_key, export_sheet, import_sheets
from medmllm.eval.judge import judge_run
from medmllm.eval.runner import EvalOptions, run_eval
from medmllm.eval.task import Task
from tests.eval.eval_helpers import MC_TASK, write_task
from tests.fakes import FakeGenerator


def _task(tmp_path: Path, mcqa_file: Path) -> Task:
    return Task.from_file(write_task(tmp_path, MC_TASK.format(path=mcqa_file)))


def test_out_dir_refuses_another_run_and_resumes_the_same(tmp_path, mcqa_file) -> None:
    out = tmp_path / "run"
    first = run_eval([_task(tmp_path, mcqa_file)], FakeGenerator(), EvalOptions(limit=4),
                     out_dir=out, cache_path=":memory:")  # fmt: skip
    same = run_eval([_task(tmp_path, mcqa_file)], FakeGenerator(), EvalOptions(limit=4),
                    out_dir=out, cache_path=":memory:")  # fmt: skip
    assert same["config_hash"] == first["config_hash"]
    before = (out / "results.json").read_text()
    with pytest.raises(OutputExistsError, match="holds a different run") as info:
        run_eval([_task(tmp_path, mcqa_file)], FakeGenerator(), EvalOptions(limit=5),
                 out_dir=out, cache_path=":memory:")  # fmt: skip
    assert "--overwrite" in (info.value.hint or "")
    assert (out / "results.json").read_text() == before
    other = run_eval([_task(tmp_path, mcqa_file)], FakeGenerator(), EvalOptions(limit=5),
                     out_dir=out, cache_path=":memory:", overwrite=True)  # fmt: skip
    assert json.loads((out / "results.json").read_text())["config_hash"] == other["config_hash"]


def test_out_dir_that_is_a_file_is_refused(tmp_path, mcqa_file) -> None:
    target = tmp_path / "afile"
    target.write_text("x")
    with pytest.raises(OutputExistsError, match="is a file"):
        run_eval([_task(tmp_path, mcqa_file)], FakeGenerator(), EvalOptions(limit=2),
                 out_dir=target, cache_path=":memory:")  # fmt: skip


def test_disk_full_while_writing_the_report_keeps_the_previous_pair(
    tmp_path, mcqa_file, monkeypatch
) -> None:
    out = tmp_path / "run"
    run_eval([_task(tmp_path, mcqa_file)], FakeGenerator(), EvalOptions(limit=4), out_dir=out,
             cache_path=":memory:")  # fmt: skip
    old_json, old_html = (out / "results.json").read_text(), (out / "report.html").read_text()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / ".report.html.partial"))

    monkeypatch.setattr(report_module, "render_report", full)
    with pytest.raises(OSError) as info:
        run_eval([_task(tmp_path, mcqa_file)], FakeGenerator(), EvalOptions(limit=4),
                 out_dir=out, cache_path=":memory:")  # fmt: skip
    assert info.value.errno == errno.ENOSPC
    assert (out / "results.json").read_text() == old_json
    assert (out / "report.html").read_text() == old_html
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.json", "samples.jsonl"]


def test_negative_or_zero_numbers_fail_before_any_work() -> None:
    for kwargs in ({"fewshot": -1}, {"seed": -1}, {"max_tokens": 0}, {"rag_k": 0}):
        with pytest.raises(InvalidRequestError, match="must be >="):
            EvalOptions(**kwargs)


def test_fewshot_larger_than_the_pool_and_empty_data(tmp_path, mcqa_file) -> None:
    with pytest.raises(InvalidRequestError, match="few-shot exemplars asked for"):
        run_eval([_task(tmp_path, mcqa_file)], FakeGenerator(), EvalOptions(fewshot=50),
                 cache_path=":memory:")  # fmt: skip
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataFormatError, match="no items"):
        run_eval([_task(tmp_path, empty)], FakeGenerator(), cache_path=":memory:")


class _Judge:
    backend, model_id = "test", "judge"

    def __init__(self, text: str) -> None:
        self.text = text

    def chat(self, messages, images=None, **kw):
        from medmllm.models.generator import Completion, Usage

        return Completion(self.text, "stop", Usage(), 0.0)


def _run(outputs: list[str]) -> dict:
    items = [{"id": str(i), "output": o} for i, o in enumerate(outputs)]
    return {"tasks": {"t": {"items": items}}}


def test_judge_counts_unparsed_answers_and_limits() -> None:
    questions = {str(i): {"question": "q", "reference": "r"} for i in range(3)}
    summary = judge_run(_Judge("I cannot rate this."), _run(["a", "b", "c"]), questions, task="t")
    assert summary["parsed"] == {"answers": 0, "unparsed": 3}
    good = judge_run(
        _Judge('{"accuracy": 4, "completeness": 4, "harm": 5, "grounding": 3}'),
        _run(["a", "b", "c"]),
        questions,
        task="t",
        limit=2,
    )
    assert good["n"] == 2 and good["parsed"] == {"answers": 2, "unparsed": 0}
    for bad in (0, -1):
        with pytest.raises(InvalidRequestError):
            judge_run(_Judge("x"), _run(["a"]), questions, task="t", limit=bad)


def test_sheet_and_key_are_never_overwritten_silently(tmp_path: Path) -> None:
    runs = {"sysA": _run(["a1", "a2"])}
    questions = {str(i): {"question": "q", "reference": "r"} for i in range(2)}
    _, key = export_sheet(runs, questions, tmp_path / "study.csv", task="t")
    first_key = key.read_text()
    with pytest.raises(OutputExistsError, match="already exists"):
        export_sheet(runs, questions, tmp_path / "study.csv", task="t", seed=7)
    assert key.read_text() == first_key
    export_sheet(runs, questions, tmp_path / "study.csv", task="t", seed=7, overwrite=True)
    assert key.read_text() != first_key


HEADER = "sheet_id,accuracy,completeness,harm,grounding\n"


def test_two_raters_with_the_same_file_name_stay_two(tmp_path: Path) -> None:
    for rater, score in (("r1", 4), ("r2", 2)):
        (tmp_path / rater).mkdir()
        (tmp_path / rater / "study.csv").write_text(HEADER + f"s1,{score},3,5,2\n")
    ratings = import_sheets([tmp_path / "r1" / "study.csv", tmp_path / "r2" / "study.csv"])
    assert sorted(ratings) == ["r1/study", "r2/study"]
    assert ratings["r1/study"]["s1"]["accuracy"] == 4 and ratings["r2/study"]["s1"]["accuracy"] == 2


def test_unknown_ids_blank_sheets_and_foreign_keys(tmp_path: Path) -> None:
    key = {"s1": {"system": "a", "item_id": "0"}, "s2": {"system": "a", "item_id": "1"}}
    (tmp_path / "ok.csv").write_text(HEADER + "s1,4,3,5,2\nzz,4,3,5,2\n")
    (tmp_path / "blank.csv").write_text(HEADER + "s2,,,,\n")
    ratings = import_sheets([tmp_path / "ok.csv", tmp_path / "blank.csv"])
    warnings = check_against_key(ratings, key)
    assert any("1 sheet(s) hold no score" in w for w in warnings)
    assert any("1 rated sheet id(s) not in the key" in w for w in warnings)
    assert "zz" not in ratings["ok"]
    with pytest.raises(DataFormatError, match="none of the 2 rated sheet ids"):
        check_against_key(import_sheets([tmp_path / "ok.csv"]), {"other": key["s1"]} | {})
    with pytest.raises(DataFormatError, match="no score at all"):
        check_against_key(import_sheets([tmp_path / "blank.csv"]), key)
