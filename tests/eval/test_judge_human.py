"""LLM-as-judge (position swap) and human-evaluation sheets with agreement statistics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medmllm.errors import DataFormatError
from medmllm.eval.human import agreement, export_sheet, import_sheets
from medmllm.eval.judge import compare_answers, judge_run, parse_scores, score_answer
from tests.fakes import FakeGenerator


class Judge(FakeGenerator):
    """Replies from a function of the prompt; ``prompts`` lists what it was asked."""

    @property
    def prompts(self) -> list[str]:
        return [call[1][-1]["content"] for call in self.calls if call[0] == "chat"]


def test_parse_scores_json_and_text() -> None:
    assert parse_scores('Sure: {"accuracy": 4, "completeness": 3, "harm": 5, "grounding": 9}') == {
        "accuracy": 4,
        "completeness": 3,
        "harm": 5,
        "grounding": None,
    }
    assert parse_scores("accuracy: 2, completeness - 3; harm=5")["completeness"] == 3
    assert parse_scores("no scores") == dict.fromkeys(
        ("accuracy", "completeness", "harm", "grounding")
    )


def test_rubric_scoring_swaps_positions() -> None:
    def fn(prompt):  # a judge biased to whatever sits in Text 1
        first = (
            prompt.index("Text 1 is the CANDIDATE") if "Text 1 is the CANDIDATE" in prompt else -1
        )
        a = 5 if first >= 0 else 3
        return json.dumps({"accuracy": a, "completeness": a, "harm": 5, "grounding": a})

    judge = Judge(fn)
    result = score_answer(judge, "Q?", "candidate", "reference", item_id="1")
    assert len(judge.prompts) == 2
    assert "Text 1 is the REFERENCE" in judge.prompts[0]
    assert "Text 1 is the CANDIDATE" in judge.prompts[1]
    assert result.scores["accuracy"] == 4.0 and result.position_gap == pytest.approx(1.5)


def test_pairwise_needs_agreement_across_orders() -> None:
    always_first = Judge(lambda p: "1")
    out = compare_answers(always_first, "Q?", "answer x", "answer y")
    assert out == {"winner": "tie", "consistent": False, "votes": ["first", "second"]}
    prefers_x = Judge(lambda p: "1" if p.index("answer x") < p.index("answer y") else "2")
    assert compare_answers(prefers_x, "Q?", "answer x", "answer y")["winner"] == "first"


def _run(outputs):
    return {"tasks": {"t": {"items": [{"id": str(i), "output": o} for i, o in enumerate(outputs)]}}}


def test_judge_run_summary() -> None:
    judge = Judge(lambda p: '{"accuracy": 4, "completeness": 4, "harm": 5, "grounding": 3}')
    questions = {str(i): {"question": f"q{i}", "reference": "r"} for i in range(3)}
    summary = judge_run(judge, _run(["a", "b", "c"]), questions, task="t")
    assert summary["n"] == 3 and summary["criteria"]["harm"]["mean"] == 5.0
    assert summary["position_gap"] == 0.0


def test_sheet_roundtrip_and_agreement(tmp_path: Path) -> None:
    runs = {"sys1": _run(["a1", "a2", "a3", "a4"]), "sys2": _run(["b1", "b2", "b3", "b4"])}
    questions = {str(i): {"question": f"q{i}", "reference": f"r{i}"} for i in range(4)}
    sheet, key_path = export_sheet(runs, questions, tmp_path / "sheet.csv", task="t", seed=1)
    rows = list(csv.DictReader(sheet.open()))
    assert len(rows) == 8 and "sys1" not in sheet.read_text()  # blinded
    key = json.loads(key_path.read_text())["key"]
    assert {v["system"] for v in key.values()} == {"sys1", "sys2"}
    for rater, shift in (("alice", 0), ("bob", 0), ("carol", 1)):
        filled = tmp_path / f"{rater}.csv"
        with filled.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            for i, r in enumerate(rows):
                score = 1 + (i % 5)
                w.writerow(
                    {
                        **r,
                        "accuracy": min(5, score + shift),
                        "completeness": score,
                        "harm": 5,
                        "grounding": "",
                    }
                )
    ratings = import_sheets([tmp_path / "alice.csv", tmp_path / "bob.csv", tmp_path / "carol.csv"])
    judge = {r["sheet_id"]: {"accuracy": 1 + (i % 5)} for i, r in enumerate(rows)}
    stats = agreement(ratings, judge)
    acc = stats["criteria"]["accuracy"]
    assert acc["cohen"]["alice~bob"]["kappa_quadratic"] == pytest.approx(1.0)
    assert acc["cohen"]["alice~carol"]["kappa_quadratic"] < 1.0
    assert -1 <= acc["fleiss_kappa"] < 1 and acc["fleiss_n"] == 8
    assert acc["judge_human"]["n"] == 8 and acc["judge_human"]["spearman"] > 0.8
    assert stats["criteria"]["completeness"]["fleiss_kappa"] == pytest.approx(1.0)
    assert stats["criteria"]["grounding"]["cohen"] == {}


def test_bad_sheet_names_file_row_column(tmp_path: Path) -> None:
    bad = tmp_path / "dave.csv"
    bad.write_text("sheet_id,accuracy,completeness,harm,grounding\nx1,4,3,5,2\nx2,7,3,5,2\n")
    with pytest.raises(DataFormatError, match=r"dave.csv row 3: column 'accuracy'.*'7'"):
        import_sheets([bad])
    missing = tmp_path / "erin.csv"
    missing.write_text("sheet_id,accuracy\nx1,4\n")
    with pytest.raises(DataFormatError, match="missing column"):
        import_sheets([missing])


def test_bad_jsonl_sheet_names_file_and_line(tmp_path: Path) -> None:
    sheet = tmp_path / "erin.jsonl"
    sheet.write_text('{"sheet_id": "a", "accuracy": 3}\n{broken\n')
    with pytest.raises(DataFormatError, match=r"erin\.jsonl:2: not valid JSON"):
        import_sheets([sheet])
