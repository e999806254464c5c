"""bm25, dense and hybrid retrievers behind one interface; fusion; registry misses."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmllm.errors import InvalidRequestError, UnknownNameError
from medmllm.rag.chunk import chunk_documents
from medmllm.rag.hybrid import reciprocal_rank_fusion
from medmllm.rag.retriever import RETRIEVERS, Retriever, build_retriever


def test_registry_lists_kinds_and_suggests() -> None:
    assert RETRIEVERS.names() == ["bm25", "dense", "hybrid", "pgvector"]
    with pytest.raises(UnknownNameError, match="Did you mean 'hybrid'"):
        build_retriever(kind="hybird")


def test_bm25_ranks_saves_and_loads(docs, tmp_path: Path) -> None:
    chunks = chunk_documents(docs)
    retriever = build_retriever(kind="bm25")
    retriever.build(chunks, progress=False)
    hits = retriever.search("which medicine lowers blood glucose in diabetes", k=2)
    assert hits[0].doc_id == "diabetes" and hits[0].source == "https://example.org/diabetes"
    assert retriever.search("wheezing", k=10)[0].doc_id == "asthma"
    assert retriever.search("zebra quantum", k=3) == []  # no known word: nothing, not noise
    retriever.save(tmp_path)
    reloaded = build_retriever(kind="bm25")
    reloaded.load(tmp_path, chunks)
    assert [h.chunk.id for h in reloaded.search("urate allopurinol", 3)] == [
        h.chunk.id for h in retriever.search("urate allopurinol", 3)
    ]


def test_bm25_agrees_with_rank_bm25_reference(docs) -> None:
    """Top hit equals rank_bm25 (the reference implementation) on every one-topic query."""
    from rank_bm25 import BM25Okapi

    chunks = chunk_documents(docs)
    retriever = build_retriever(kind="bm25", stemmer="")
    retriever.build(chunks, progress=False)
    reference = BM25Okapi([c.indexed_text.lower().split() for c in chunks])
    for query in ("wheezing", "metformin", "hypertension", "triptans", "allopurinol"):
        expected = max(range(len(chunks)), key=lambda i: reference.get_scores([query])[i])
        assert retriever.search(query, 1)[0].chunk.id == chunks[expected].id


@pytest.mark.parametrize(
    "kind", ["bm25", "dense", "hybrid", pytest.param("pgvector", marks=pytest.mark.integration)]
)
def test_every_kind_answers_search(kind, docs, fake_encoder, tmp_path: Path, request) -> None:
    if kind == "pgvector":
        request.getfixturevalue("pg_dsn")  # a real PostgreSQL; MEDMLLM_PG_DSN points at it
    chunks = chunk_documents(docs)
    retriever = build_retriever(kind=kind, embedding_model="fake-encoder")
    assert isinstance(retriever, Retriever)
    retriever.build(chunks, progress=False)
    hits = retriever.search("migraine headache triptans", k=3)
    assert hits[0].doc_id == "migraine"
    assert len(retriever.search("gout", k=50)) <= len(chunks)
    with pytest.raises(InvalidRequestError, match="empty"):
        retriever.search("   ")
    with pytest.raises(InvalidRequestError, match="k must be"):
        retriever.search("gout", k=0)
    retriever.save(tmp_path)
    again = build_retriever(kind=kind, embedding_model="fake-encoder")
    again.load(tmp_path, chunks)
    assert again.search("migraine headache triptans", 1)[0].doc_id == "migraine"


def test_reciprocal_rank_fusion_weights() -> None:
    fused = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 2]], [1.0, 1.0], 60))
    assert fused[2] > fused[1] and fused[3] > fused[1]
    only_first = reciprocal_rank_fusion([[1, 2], [2, 1]], [1.0, 0.0], 60)
    assert [i for i, _ in only_first] == [1, 2]


def test_embedding_cache_reuses_vectors(docs, fake_encoder) -> None:
    chunks = chunk_documents(docs)
    first = build_retriever(kind="dense", embedding_model="fake-encoder")
    first.build(chunks, progress=False)
    second = build_retriever(kind="dense", embedding_model="fake-encoder")
    second.build(chunks, progress=False)
    assert second.cached == len(chunks)
