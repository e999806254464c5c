"""Acceptance: ``index migrate`` round-trips MedQuAD into PostgreSQL with identical exact top-10."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from medmllm.rag.corpus import load_corpus
from medmllm.rag.index import build_index, open_index
from medmllm.rag.pg_migrate import migrate_index, open_pg_index
from medmllm.rag.retriever import RetrieverConfig

pytestmark = [pytest.mark.slow, pytest.mark.integration]
# 400 documents (~650 chunks: about a minute of MiniLM embedding on an idle 2-core machine) in
# `make test`; all 10,000 (16,305 chunks) under `make test-heavy`.
SIZES = [400, pytest.param(None, marks=pytest.mark.heavy, id="all")]


def _share_embedding_cache(home: Path) -> None:
    """Link the default home's embedding cache (~/.medmllm) into the test's home (read and added
    to: vectors are keyed by chunk content, so sharing them cannot change a result)."""
    source = Path.home() / ".medmllm" / "cache" / "embeddings"
    if source.is_dir():
        (home / "cache").mkdir(parents=True, exist_ok=True)
        (home / "cache" / "embeddings").symlink_to(source, target_is_directory=True)


def same_top10(got, want) -> bool:
    """Same chunk ids in the same order; a swap is tolerated only between equal scores."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if g.chunk.id != w.chunk.id and abs(g.score - w.score) > 1e-5:
            return False
    return {h.chunk.id for h in got[:-1]} <= {h.chunk.id for h in want}


@pytest.mark.parametrize("n_docs", SIZES)
def test_migrate_medquad_identical_exact_top10(
    shared_data: Path, pg_dsn: str, isolated_home, n_docs: int | None
):
    path = shared_data / "corpus/medquad/medquad_docs.jsonl"
    docs, _ = load_corpus(path, "medquad")
    rows = [json.loads(line) for line in path.open()]
    # The first n_docs of bench/retrieval.py's reported split (their vectors may be cached).
    sample = random.Random(0).sample(range(len(docs)), 1000)
    picked = sorted(sample[:n_docs]) if n_docs else list(range(len(docs)))
    asked = picked[:100] if n_docs else sorted(sample[:100])
    subset = [docs[i] for i in picked]
    if n_docs is None:  # 16k chunks: reuse vectors the user's own runs (bench/pgvector.py) cached
        _share_embedding_cache(isolated_home)
    name = f"medquad{n_docs or '_all'}"  # the database outlives one test: one table set each
    build_index(name, subset, retriever=RetrieverConfig(kind="dense"), progress=False)
    report = migrate_index(name, progress=False)
    assert report.vectors_reused and report.docs_copied == len(picked)
    local = open_index(name)
    exact = open_pg_index(name, mode="dense", exact=True)
    assert exact.count() == (len(picked), local.manifest.chunk_count)
    questions = [rows[i]["question"] for i in asked]
    mismatches = [q for q in questions if not same_top10(exact.search(q, 10), local.search(q, 10))]
    assert not mismatches, mismatches[:3]
    hnsw = open_pg_index(name, mode="dense")
    agree = sum(
        len({h.chunk.id for h in hnsw.search(q, 10)} & {h.chunk.id for h in local.search(q, 10)})
        for q in questions
    )
    assert agree / (10 * len(questions)) >= 0.95  # HNSW recall@10 against exact
