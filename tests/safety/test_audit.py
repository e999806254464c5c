"""Audit log: append-only JSONL, hashed users, rotation, fsync, hash chain."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medmllm.safety.audit import AuditLog, hash_user, read_audit, verify_chain

SALT = "audit-test-salt-0123456789"


def test_records_are_appended_with_hashed_user(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    log = AuditLog(path, salt=SALT)
    log.record(
        user="dr.wong",
        prompt="<NAME> has chest pain",
        model="m",
        latency_s=0.123456,
        citations=[1, 2],
        grounding=0.8,
        crisis=False,
    )
    log.record(user="dr.wong", prompt="second", model="m", status=200)
    log.close()
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(rows) == 2
    assert rows[0]["user"] == rows[1]["user"] == hash_user("dr.wong", SALT)
    assert "dr.wong" not in path.read_text()
    assert rows[0]["latency_s"] == 0.1235 and rows[0]["citations"] == [1, 2]
    assert rows[0]["prev"] is None and rows[1]["prev"] is not None
    assert hash_user("dr.wong", "another-salt-0123456789") != rows[0]["user"]
    assert hash_user(None, SALT) is None


def test_chain_survives_restart_and_detects_edits(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    for i in range(3):
        log = AuditLog(path)
        log.record(prompt=f"p{i}")
        log.close()
    assert verify_chain(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")  # a record deleted
    assert not verify_chain(path)


def test_rotation_keeps_every_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=1_000, backups=50)
    for i in range(60):
        log.record(prompt=f"question number {i} " + "x" * 40)
    log.close()
    assert (tmp_path / "audit.jsonl.1").exists()
    rows = read_audit(path)
    assert [r["prompt"].split()[2] for r in rows] == [str(i) for i in range(60)]
    assert verify_chain(path)


def test_fsync_called(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    log = AuditLog(tmp_path / "a.jsonl")
    log.record(prompt="x")
    log.close()
    assert calls


def test_audit_not_in_ordinary_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog(tmp_path / "a.jsonl")
    with caplog.at_level("DEBUG"):
        log.record(prompt="secret-ish")
    log.close()
    assert "secret-ish" not in caplog.text
