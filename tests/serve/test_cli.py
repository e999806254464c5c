"""`medmllm serve` CLI: key hashing and bad input (rc 2, one error line, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from medmllm.serve.app import hash_key


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", "serve", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_hash_key_and_bad_key_file(tmp_path: Path) -> None:
    res = _cli("--hash-key", "s3cret")
    assert res.returncode == 0 and res.stdout.strip() == hash_key("s3cret")
    bad = tmp_path / "keys.txt"
    bad.write_text("not-a-hash\n")
    res = _cli("--api-key-file", str(bad))
    assert res.returncode == 2
    assert "error:" in res.stderr and "SHA-256" in res.stderr and "Traceback" not in res.stderr
