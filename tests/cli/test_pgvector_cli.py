"""``medmllm index migrate --to pgvector`` and ``index search --dsn`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "medmllm.cli.main"]
pytestmark = pytest.mark.integration


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDMLLM_HOME": str(home)}
    env.pop("MEDMLLM_PG_DSN", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=600)


def test_migrate_unreachable_dsn_one_line(tmp_path: Path) -> None:
    from medmllm.rag.pg_embedded import _free_port

    corpus = tmp_path / "d.jsonl"
    corpus.write_text(json.dumps({"id": "a", "text": "asthma inhaler"}) + "\n")
    assert (
        run(tmp_path, "index", "build", "g", "--from", str(corpus), "-r", "bm25", "-q").returncode
        == 0
    )
    port = _free_port()
    start = time.perf_counter()
    result = run(
        tmp_path, "index", "migrate", "g", "--to", "pgvector",
        "--dsn", f"postgresql://u@127.0.0.1:{port}/db",
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and f"127.0.0.1:{port}" in lines[0]
    assert time.perf_counter() - start < 60
    wrong = run(tmp_path, "index", "migrate", "g", "--to", "elastic", "--dsn", "x")
    assert wrong.returncode == 2 and "--to pgvector" in wrong.stderr


@pytest.mark.slow
def test_migrate_then_search_in_postgres(tmp_path: Path, pg_dsn: str) -> None:
    corpus = tmp_path / "d.jsonl"
    rows = [
        {"id": "asthma", "title": "Asthma", "text": "Inhaled corticosteroids prevent attacks."},
        {"id": "gout", "title": "Gout", "text": "Allopurinol lowers urate and prevents gout."},
    ]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    built = run(tmp_path, "index", "build", "g", "--from", str(corpus), "-r", "dense", "-q")
    assert built.returncode == 0, built.stderr
    migrated = run(tmp_path, "index", "migrate", "g", "--to", "pgvector", "--dsn", pg_dsn, "-q")
    assert migrated.returncode == 0, migrated.stderr
    assert "2 docs copied" in migrated.stdout and "vectors reused" in migrated.stdout
    for mode in ("hybrid", "dense", "lexical"):
        found = run(
            tmp_path, "index", "search", "g", "urate lowering gout", "--dsn", pg_dsn,
            "--mode", mode, "--json",
        )  # fmt: skip
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)[0]["doc_id"] == "gout"
    missing = run(tmp_path, "index", "search", "nope", "x", "--dsn", pg_dsn)
    assert missing.returncode == 2 and "index migrate nope" in missing.stderr
