"""Issue 13: `index build` says what it skipped (once per file) and what it replaced or kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _build(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", "index", "build", *args, "-r", "bm25", "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, "MEDMLLM_HOME": str(home), "COLUMNS": "200"},
        timeout=300,
    )


def test_skips_once_and_counts_kept_and_replaced_documents(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for folder, text in (("folderA", "asthma inhaler advice"), ("folderB", "gout urate advice")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "doc1.txt").write_text(text)
    (tmp_path / "folderA" / "blob.txt").write_bytes(b"\x00\x01binary")
    (tmp_path / "folderA" / "gone.txt").symlink_to(tmp_path / "missing.txt")
    first = _build(home, "kb", "--from", str(tmp_path / "folderA"))
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("blob.txt") == 1 and first.stderr.count("broken symlink") == 1
    assert "skipped 2 file(s)/row(s) in total" in first.stderr
    second = _build(home, "kb", "--from", str(tmp_path / "folderB"))
    assert second.returncode == 0, second.stderr
    assert "2 docs (+1 new, 0 updated" in second.stdout
    assert "1 document(s) have the same relative path" in second.stderr
    (tmp_path / "folderB" / "doc1.txt").write_text("gout urate advice, revised")
    third = _build(home, "kb", "--from", str(tmp_path / "folderB"))
    assert "warning: 1 document(s) already in 'kb' with the same id were replaced" in third.stderr
