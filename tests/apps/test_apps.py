"""Each app with a scripted model: structure, checks, citations and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmllm.apps import APPS, run_app
from medmllm.errors import AppError


def test_registry_lists_every_app_with_models() -> None:
    assert APPS.names() == ["diagnosis", "education", "mental_health", "report", "surgery"]
    for name in APPS.names():
        spec = APPS.get(name)
        assert spec.request.model_json_schema()["properties"]
        assert spec.response.model_json_schema()["properties"]
        assert spec.primary in spec.request.model_fields


def test_invalid_request_names_the_field(scripted_generator) -> None:
    with pytest.raises(AppError, match="case"):
        run_app("diagnosis", {"case": "short"}, scripted_generator())
    with pytest.raises(AppError, match="not_a_field"):
        run_app("report", {"text": "x", "not_a_field": 1}, scripted_generator())


DIAG = {
    "differential": [
        {"diagnosis": "Pulmonary embolism", "likelihood": "possible", "reasoning": "tachycardia"},
        {"diagnosis": "Acute coronary syndrome", "likelihood": "most likely", "reasoning": "pain"},
    ],
    "red_flags": ["hypotension"],
    "next_tests": ["ECG", "troponin"],
    "cited": [1],
}


def test_diagnosis_ranks_and_cites(scripted_generator, fake_index) -> None:
    gen = scripted_generator([json.dumps(DIAG)])
    out = run_app(
        "diagnosis", {"case": "58-year-old man with crushing chest pain"}, gen, fake_index
    )
    assert out.differential[0].diagnosis == "Acute coronary syndrome"
    assert [c.n for c in out.citations] == [1] and "ECG" in out.citations[0].text
    assert out.disclaimer and "json_schema" in gen.calls[0][2]
    assert "[1]" in gen.calls[0][1][-1]["content"]  # passages numbered in the prompt


def test_diagnosis_repairs_truncated_json_and_fails_clearly(scripted_generator) -> None:
    cut = json.dumps(DIAG)[:-30]  # cut off mid-list, as at max_tokens
    out = run_app(
        "diagnosis", {"case": "58-year-old man with chest pain"}, scripted_generator([cut])
    )
    assert out.differential
    with pytest.raises(AppError, match="did not produce valid"):
        run_app(
            "diagnosis", {"case": "58-year-old man with chest pain"}, scripted_generator(["no"])
        )
    with pytest.raises(AppError, match="not found"):
        run_app(
            "diagnosis", {"case": "58-year-old man", "image": "/nope.png"}, scripted_generator()
        )


def test_report_section(scripted_generator) -> None:
    gen = scripted_generator([json.dumps({"text": "The patient reports two days of cough."})])
    out = run_app(
        "report", {"text": "Doctor: What brings you in?\nPatient: Cough.", "section": "cc"}, gen
    )
    assert out.section == "CC" and "cough" in out.text
    assert "chief complaint" in gen.calls[0][1][-1]["content"]
    with pytest.raises(AppError, match="text"):
        run_app("report", {"section": "CC"}, gen)


def _item(answer: str, opts=("w", "x", "y", "z")) -> dict:
    return {
        "question": "Which is first line?",
        "options": list(opts),
        "answer": answer,
        "explanation": "Metformin is first line.",
    }


def test_education_generates_balanced_cited_items(scripted_generator, fake_index) -> None:
    items = {
        "items": [
            _item("A", ("metformin", "insulin", "sulfonylurea", "diet")),
            _item("A", ("a1", "b1", "c1", "d1")),
            _item("A", ("a2", "b2", "c2", "a2")),
        ]
    }
    gen = scripted_generator([json.dumps(items)])
    out = run_app("education", {"topic": "diabetes", "n_questions": 3}, gen, fake_index)
    assert [i.answer for i in out.items] == ["A", "B", "C"]
    assert out.items[1].options[1] == "a1"  # the key moved with its text
    assert out.key_positions == {"A": 1, "B": 1, "C": 1, "D": 0}
    assert all("[1]" in i.explanation for i in out.items)
    assert out.citations[0].doc_id == "d0"
    assert out.checks[2].problems and not out.checks[0].problems  # duplicate options flagged


def test_education_needs_a_passage(scripted_generator) -> None:
    with pytest.raises(AppError, match="no passage"):
        run_app("education", {"topic": "asthma"}, scripted_generator())


def test_quiz_scoring(scripted_generator) -> None:
    items = [_item("A"), _item("C")]
    out = run_app(
        "education", {"mode": "score", "items": items, "answers": ["a", "B"]}, scripted_generator()
    )
    assert out.score == 0.5 and [s.correct for s in out.scored] == [True, False]
    with pytest.raises(AppError, match="one answer per item"):
        run_app(
            "education", {"mode": "score", "items": items, "answers": ["A"]}, scripted_generator()
        )


def test_mental_health_crisis_never_reaches_the_model(scripted_generator) -> None:
    gen = scripted_generator(["model reply"])
    out = run_app("mental_health", {"message": "I want to kill myself tonight"}, gen)
    assert out.source == "crisis_protocol" and out.crisis["flagged"] and out.resources
    assert gen.calls == []
    earlier = {"message": "ok", "history": [{"role": "user", "content": "I want to end my life"}]}
    assert run_app("mental_health", earlier, gen).source == "crisis_protocol"


def test_mental_health_is_supportive_and_non_diagnostic(scripted_generator) -> None:
    ok = run_app(
        "mental_health",
        {"message": "I feel stressed about exams"},
        scripted_generator(["That sounds stressful. What helps you unwind?"]),
    )
    assert ok.source == "model" and not ok.crisis["flagged"]
    diag = run_app(
        "mental_health",
        {"message": "I feel low"},
        scripted_generator(["You have major depression and need sertraline."]),
    )
    assert diag.source == "non_diagnostic_filter" and "depression" not in diag.reply


def test_surgery_checklist_in_order_persisted_atomically(scripted_generator, isolated_home):
    gen = scripted_generator()
    out = run_app("surgery", {"action": "start", "case_id": "case-1"}, gen)
    assert out.phase == "sign_in" and out.next_item.id == "identity_confirmed"
    assert out.progress == {"sign_in": "0/7", "time_out": "0/7", "sign_out": "0/5"}
    with pytest.raises(AppError, match="already exists"):
        run_app("surgery", {"action": "start", "case_id": "case-1"}, gen)
    with pytest.raises(AppError, match="in order"):
        run_app(
            "surgery", {"action": "confirm", "case_id": "case-1", "item": "counts_complete"}, gen
        )
    for _ in range(7):
        out = run_app("surgery", {"action": "confirm", "case_id": "case-1", "note": "ok"}, gen)
    assert out.phase == "time_out" and out.progress["sign_in"] == "7/7"
    folder = isolated_home / "apps" / "surgery"
    assert [p.name for p in folder.iterdir()] == ["case-1.json"]  # no temp files left
    saved = json.loads((folder / "case-1.json").read_text())
    assert sum(i["done"] for i in saved["items"]) == 7
    for _ in range(12):
        out = run_app("surgery", {"action": "confirm", "case_id": "case-1"}, gen)
    assert out.phase == "complete" and out.next_item is None
    with pytest.raises(AppError, match="already complete"):
        run_app("surgery", {"action": "confirm", "case_id": "case-1"}, gen)
    with pytest.raises(AppError, match="invalid case id"):
        run_app("surgery", {"action": "status", "case_id": "../etc"}, gen)
    with pytest.raises(AppError, match="no checklist"):
        run_app("surgery", {"action": "status", "case_id": "nope"}, gen)


def test_surgery_questions_are_grounded_or_refused(scripted_generator, fake_index) -> None:
    gen = scripted_generator(["Give prophylaxis within 60 minutes of incision [3]."])
    out = run_app(
        "surgery", {"action": "ask", "question": "When are antibiotics given?"}, gen, fake_index
    )
    assert out.answer.endswith("[3].") and [c.n for c in out.citations] == [3]
    with pytest.raises(AppError, match="corpus"):
        run_app("surgery", {"action": "ask", "question": "When?"}, gen)


def test_mts_dialog_loader(tmp_path: Path) -> None:
    from medmllm.apps.report import load_mts_dialog

    f = tmp_path / "m.jsonl"
    f.write_text(
        "\n".join(
            json.dumps(
                {
                    "split": s,
                    "id": str(i),
                    "section_header": "CC",
                    "section_text": "t",
                    "dialogue": "d",
                }
            )
            for i, s in enumerate(["train", "validation", "validation"])
        )
    )
    assert len(load_mts_dialog(f)) == 2 and len(load_mts_dialog(f, limit=1)) == 1


class _Verdict:
    def __init__(self, reply: str | None) -> None:
        self.reply = reply

    @property
    def blocked(self) -> bool:
        return self.reply is not None


class FakeGuard:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def check(self, text: str) -> _Verdict:
        self.seen.append(text)
        return _Verdict("Please call 988 now." if "end my life" in text else None)


def test_guard_runs_before_every_app(scripted_generator) -> None:
    guard, gen = FakeGuard(), scripted_generator([json.dumps(DIAG)])
    out = run_app("diagnosis", {"case": "I want to end my life, doctor, help"}, gen, guard=guard)
    assert out.blocked and "988" in out.reply and gen.calls == []
    ok = run_app("diagnosis", {"case": "58-year-old man with chest pain"}, gen, guard=guard)
    assert ok.differential and guard.seen[-1].startswith("58-year-old")
