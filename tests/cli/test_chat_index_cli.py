"""``medmllm chat --index`` and ``index build --preset`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engines import require_llama_cpp

CLI = [sys.executable, "-m", "medmllm.cli.main"]


def run(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDMLLM_HOME": str(home)}
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, env=env, timeout=600
    )


def test_chat_unknown_index_fails_before_loading_a_model(tmp_path: Path) -> None:
    result = run(tmp_path, "chat", "--index", "typo", stdin="/exit\n")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no index named 'typo'" in result.stderr and "fix:" in result.stderr


def test_build_unknown_preset_is_refused(tmp_path: Path) -> None:
    corpus = tmp_path / "d.jsonl"
    corpus.write_text(json.dumps({"id": "a", "text": "asthma inhaler"}) + "\n")
    result = run(tmp_path, "index", "build", "x", "--from", str(corpus), "--preset", "medcp")
    assert result.returncode == 2 and "unknown retriever preset 'medcp'" in result.stderr
    assert "medcpt" in result.stderr and "Traceback" not in result.stderr


def test_build_medcpt_preset_offline_names_the_model(tmp_path: Path) -> None:
    corpus = tmp_path / "d.jsonl"
    corpus.write_text(json.dumps({"id": "a", "text": "asthma inhaler"}) + "\n")
    result = run(tmp_path, "index", "build", "x", "--from", str(corpus), "--preset", "medcpt")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ncbi/MedCPT-Article-Encoder" in result.stderr


@pytest.mark.slow
def test_chat_with_index_cites_sources(tmp_path: Path) -> None:
    require_llama_cpp()
    corpus = tmp_path / "d.jsonl"
    corpus.write_text(
        json.dumps(
            {
                "id": "gout",
                "title": "Gout",
                "url": "https://example.org/gout",
                "text": "Allopurinol lowers serum urate and prevents gout attacks.",
            }
        )
        + "\n"
    )
    built = run(tmp_path, "index", "build", "g", "--from", str(corpus), "-r", "bm25", "-q")
    assert built.returncode == 0, built.stderr
    result = run(
        tmp_path,
        "chat", "--index", "g", "-k", "1", "--max-tokens", "24",
        stdin="Which medicine prevents gout attacks?\n/exit\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Sources" in result.stdout and "https://example.org/gout" in result.stdout
