"""``medmllm index …`` and ``ask --index`` as a user runs them: subprocesses, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DOCS = [
    {"id": "asthma", "title": "Asthma", "text": "Inhaled corticosteroids prevent asthma attacks."},
    {"id": "gout", "title": "Gout", "text": "Allopurinol lowers urate and prevents gout attacks."},
    {"id": "dm", "title": "Diabetes", "text": "Metformin is the first medicine for diabetes."},
]


def run(home: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDMLLM_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    return path


def test_build_list_search_rm(tmp_path: Path, corpus: Path) -> None:
    home = tmp_path / "home"
    built = run(home, "index", "build", "g", "--from", str(corpus), "--retriever", "bm25", "-q")
    assert built.returncode == 0, built.stderr
    assert "3 docs" in built.stdout and "(+3 new" in built.stdout
    listed = json.loads(run(home, "index", "list", "--json").stdout)
    assert listed[0]["name"] == "g" and listed[0]["retriever"] == "bm25"
    found = run(home, "index", "search", "g", "urate lowering", "-k", "2", "--json")
    assert json.loads(found.stdout)[0]["doc_id"] == "gout"
    assert run(home, "index", "rm", "g").returncode == 0
    assert json.loads(run(home, "index", "list", "--json").stdout) == []


def test_unknown_index_lists_existing(tmp_path: Path, corpus: Path) -> None:
    home = tmp_path / "home"
    run(home, "index", "build", "real", "--from", str(corpus), "--retriever", "bm25", "-q")
    assert_user_error(run(home, "index", "search", "typo", "x"), "no index named 'typo'", "real")
    assert_user_error(
        run(home, "ask", "--index", "typo", "What is gout?"), "existing indexes: real"
    )


def test_malformed_jsonl_names_the_line(tmp_path: Path, corpus: Path) -> None:
    corpus.write_text(corpus.read_text() + '{"id": "x", "text": \n')
    result = run(tmp_path / "home", "index", "build", "g", "--from", str(corpus), "-r", "bm25")
    assert_user_error(result, "docs.jsonl:4", "not valid JSON")


def test_empty_corpus_and_binary_files(tmp_path: Path) -> None:
    folder = tmp_path / "guides"
    folder.mkdir()
    assert_user_error(
        run(tmp_path / "home", "index", "build", "g", "--from", str(folder)),
        "no documents with text",
    )
    (folder / "blob.txt").write_bytes(b"\x00\xff\x00binary")
    (folder / "note.md").write_text("# Gout\nAllopurinol lowers urate.")
    result = run(
        tmp_path / "home", "index", "build", "g", "--from", str(folder), "-r", "bm25", "-q"
    )
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stderr and "blob.txt" in result.stderr
    assert "1 docs" in result.stdout


def test_bad_options_are_one_line_errors(tmp_path: Path, corpus: Path) -> None:
    home = tmp_path / "home"
    assert_user_error(
        run(home, "index", "build", "g", "--from", str(corpus), "-r", "bm52"), "Did you mean 'bm25'"
    )
    assert_user_error(
        run(home, "index", "build", "g/x", "--from", str(corpus)), "invalid index name"
    )
    assert_user_error(
        run(home, "index", "build", "g", "--from", str(tmp_path / "nope.jsonl")), "not found"
    )
    assert_user_error(
        run(
            home,
            "index",
            "build",
            "g",
            "--from",
            str(corpus),
            "--chunk-tokens",
            "10",
            "--chunk-overlap",
            "20",
        ),
        "overlap",
    )


@pytest.mark.slow
def test_query_with_other_embedding_model_is_refused(tmp_path: Path, corpus: Path) -> None:
    home = tmp_path / "home"
    built = run(home, "index", "build", "d", "--from", str(corpus), "-r", "dense", "-q")
    assert built.returncode == 0, built.stderr
    ok = run(home, "index", "search", "d", "urate", "--json")
    assert json.loads(ok.stdout)[0]["doc_id"] == "gout"
    assert_user_error(
        run(home, "index", "search", "d", "urate", "--embedding-model", "BAAI/bge-small-en-v1.5"),
        "was built with embedding model",
        "--rebuild",
    )


@pytest.mark.slow
def test_interrupted_build_resumes_without_corruption(tmp_path: Path) -> None:
    """Kill a dense build mid-embedding; the old index survives and a rerun reuses the vectors."""
    home = tmp_path / "home"
    corpus = tmp_path / "many.jsonl"
    words = [
        "asthma",
        "gout",
        "diabetes",
        "kidney",
        "heart",
        "lung",
        "liver",
        "blood",
        "pressure",
        "sugar",
        "pain",
        "fever",
    ]
    rows = [
        {"id": f"d{i}", "text": " ".join(words[(i + j) % len(words)] for j in range(150)) + f" {i}"}
        for i in range(600)
    ]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps(rows[0]) + "\n")
    first = run(home, "index", "build", "k", "--from", str(small), "-r", "dense", "-q")
    assert first.returncode == 0, first.stderr

    env = {**os.environ, "MEDMLLM_HOME": str(home)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medmllm.cli.main",
            "index",
            "build",
            "k",
            "--from",
            str(corpus),
            "-r",
            "dense",
            "--rebuild",
            "-q",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cache = home / "cache" / "embeddings"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(cache.glob("*/*.npz"))) >= 2:  # first shards written: embedding under way
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the build ended before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    listed = json.loads(run(home, "index", "list", "--json").stdout)
    assert listed == [{**listed[0], "name": "k", "docs": 1}]  # the old index, intact
    assert run(home, "index", "search", "k", "asthma", "--json").returncode == 0

    rerun = run(
        home, "index", "build", "k", "--from", str(corpus), "-r", "dense", "--rebuild", "-q"
    )
    assert rerun.returncode == 0, rerun.stderr
    from_cache = int(rerun.stdout.split(" embeddings from cache")[0].rsplit(" ", 1)[-1])
    assert from_cache >= 128  # at least one shard of work done before the kill was reused
    assert json.loads(run(home, "index", "list", "--json").stdout)[0]["docs"] == 600


@pytest.mark.slow
def test_medquad_index_then_grounded_ask_json(tmp_path: Path, shared_data: Path) -> None:
    """Acceptance: index MedQuAD, ask with --index --json → citations, passages, grounding."""
    home = tmp_path / "home"
    source = shared_data / "corpus" / "medquad" / "medquad_docs.jsonl"
    built = run(home, "index", "build", "mq", "--from", str(source), "-r", "bm25", "-q")
    assert built.returncode == 0, built.stderr
    assert "10000 docs" in built.stdout
    asked = run(
        home,
        "ask",
        "--index",
        "mq",
        "-k",
        "2",
        "--max-tokens",
        "48",
        "--json",
        "What are the symptoms of Glaucoma ?",
    )
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert len(answer["passages"]) == 2
    assert any("laucoma" in p["title"] for p in answer["passages"])
    assert isinstance(answer["citations"], list)
    assert 0.0 <= answer["grounding"]["score"] <= 1.0
    assert all({"text", "support", "supported"} <= set(s) for s in answer["grounding"]["sentences"])


@pytest.mark.slow
def test_starter_pack_answers_with_sources(tmp_path: Path) -> None:
    """The quick start: ask --index starter builds the pack on first use and prints sources."""
    home = tmp_path / "home"
    asked = run(
        home,
        "ask",
        "--index",
        "starter",
        "-k",
        "2",
        "--max-tokens",
        "48",
        "What is the usual first medicine for type 2 diabetes?",
    )
    assert asked.returncode == 0, asked.stderr
    assert "Sources" in asked.stdout and "diabetes" in asked.stdout.lower()
    assert "grounding" in asked.stdout
