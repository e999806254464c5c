"""The ask flow with a guard: crisis turns never reach the model; nothing written holds PHI."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from medmllm.assistant import Answer, Assistant
from medmllm.safety.guard import Guard, GuardConfig

PHI = ["John Smith", "12345678", "617-555-1234", "03/04/1956"]
QUESTION = "John Smith (MRN 12345678, DOB 03/04/1956, tel 617-555-1234) has chest pain. Why?"


def test_crisis_turn_gets_safe_reply_not_model(tmp_path: Path, scripted_generator) -> None:
    gen = scripted_generator(replies=["model answer"])
    guard = Guard(GuardConfig(audit_path=tmp_path / "audit.jsonl"))
    bot = Assistant(gen, guard=guard, user="u1")  # type: ignore[arg-type]
    answer = bot.ask("I want to end my life tonight")
    guard.close()
    assert gen.calls == []  # the model never saw the turn
    assert "988" in answer.answer and answer.extra["crisis"]["flagged"]
    assert '"crisis": true' in (tmp_path / "audit.jsonl").read_text()


def test_planted_phi_appears_in_no_file_written(
    tmp_path: Path, scripted_generator, caplog: pytest.LogCaptureFixture
) -> None:
    gen = scripted_generator(replies=["Chest pain needs an ECG."])
    guard = Guard(GuardConfig(audit_path=tmp_path / "audit" / "audit.jsonl"))
    bot = Assistant(gen, guard=guard, user="dr.wong")  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG):
        items = list(bot.stream(QUESTION))
    guard.close()
    assert isinstance(items[-1], Answer)
    assert gen.calls  # the (local) model did get the question
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert written  # the audit record exists
    for value in [*PHI, "dr.wong"]:
        assert value.encode() not in written, value
        assert value not in caplog.text, value
