"""Index store: manifest, atomic writes, incremental adds, clear errors that name the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmllm.errors import (
    EmptyCorpusError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    InvalidRequestError,
)
from medmllm.rag.corpus import Document
from medmllm.rag.index import (
    SCHEMA_VERSION,
    build_index,
    indexes_root,
    list_indexes,
    open_index,
    read_manifest,
    remove_index,
)
from medmllm.rag.retriever import RetrieverConfig

BM25 = RetrieverConfig(kind="bm25")


def test_build_open_search_list_remove(docs, isolated_home: Path) -> None:
    report = build_index("guides", docs, retriever=BM25, sources=["synthetic"], progress=False)
    assert (report.docs_added, report.doc_count, report.chunk_count) == (5, 5, 5)
    manifest = read_manifest("guides")
    assert manifest.schema_version == SCHEMA_VERSION and manifest.embedding_model is None
    assert set(manifest.checksums) >= {"chunks.jsonl", "bm25/params.index.json"}
    assert open_index("guides").search("big toe joint pain", 1)[0].doc_id == "gout"
    assert list_indexes() == ["guides"]
    remove_index("guides")
    assert list_indexes() == []
    assert not any(indexes_root().iterdir())


def test_adding_documents_is_incremental(docs, fake_encoder) -> None:
    build_index(
        "inc",
        docs[:3],
        retriever=RetrieverConfig(kind="hybrid", embedding_model="fake-encoder"),
        progress=False,
    )
    changed = Document(id="asthma", title="Asthma care", text="Asthma: use a spacer with inhalers.")
    report = build_index("inc", [*docs[2:], changed], progress=False)
    assert (report.docs_added, report.docs_updated, report.docs_unchanged) == (2, 1, 1)
    assert report.doc_count == 5 and report.kind == "hybrid"
    assert report.chunks_from_cache == 2  # diabetes and hypertension were embedded before
    index = open_index("inc")
    assert index.search("spacer", 1)[0].chunk.text.startswith("Asthma: use a spacer")


def test_adding_with_other_settings_requires_rebuild(docs, fake_encoder) -> None:
    build_index("mix", docs, retriever=BM25, progress=False)
    hybrid = RetrieverConfig(kind="hybrid", embedding_model="fake-encoder")
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        build_index("mix", docs, retriever=hybrid, progress=False)
    report = build_index("mix", docs[:2], retriever=hybrid, rebuild=True, progress=False)
    assert report.doc_count == 2 and read_manifest("mix").retriever.kind == "hybrid"


def test_unknown_index_lists_existing(docs, isolated_home: Path) -> None:
    build_index("alpha", docs, retriever=BM25, progress=False)
    with pytest.raises(IndexNotFoundError, match="existing indexes: alpha") as info:
        open_index("beta")
    assert "medmllm index build beta" in info.value.hint
    with pytest.raises(IndexNotFoundError):
        remove_index("beta")


def test_corruption_is_detected_and_names_the_fix(docs, isolated_home: Path) -> None:
    build_index("c", docs, retriever=BM25, progress=False)
    chunks = indexes_root() / "c" / "chunks.jsonl"
    chunks.write_text(chunks.read_text().replace("Gout", "Gaut"))
    with pytest.raises(IndexCorruptError, match="checksum") as info:
        open_index("c")
    assert "--rebuild" in info.value.hint
    (indexes_root() / "c" / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorruptError, match="manifest"):
        open_index("c")


def test_other_schema_version_is_incompatible(docs, isolated_home: Path) -> None:
    build_index("old", docs, retriever=BM25, progress=False)
    path = indexes_root() / "old" / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(IndexMismatchError, match="schema version 99"):
        open_index("old")


def test_query_with_another_embedding_model_is_refused(docs, fake_encoder) -> None:
    build_index(
        "d",
        docs,
        retriever=RetrieverConfig(kind="dense", embedding_model="fake-encoder"),
        progress=False,
    )
    with pytest.raises(IndexMismatchError, match="fake-encoder") as info:
        open_index("d", embedding_model="sentence-transformers/all-mpnet-base-v2")
    assert "--rebuild --embedding-model" in info.value.hint
    assert open_index("d", embedding_model="fake-encoder").search("gout", 1)


def test_failed_build_leaves_old_index_and_no_temp(docs, isolated_home: Path, monkeypatch) -> None:
    build_index("safe", docs[:2], retriever=BM25, progress=False)
    from medmllm.rag import bm25

    def broken_save(self, folder):
        raise OSError("disk full")

    with monkeypatch.context() as patched, pytest.raises(OSError, match="disk full"):
        patched.setattr(bm25.BM25Retriever, "save", broken_save)
        build_index("safe", docs, progress=False)
    assert read_manifest("safe").doc_count == 2
    assert open_index("safe").search("metformin", 1)[0].doc_id == "diabetes"
    assert [p.name for p in indexes_root().iterdir()] == ["safe"]


def test_bad_names_and_empty_input(docs, isolated_home: Path) -> None:
    with pytest.raises(InvalidRequestError, match="invalid index name"):
        build_index("../escape", docs, progress=False)
    with pytest.raises(EmptyCorpusError):
        build_index("empty", [], progress=False)
    with pytest.raises(EmptyCorpusError):
        build_index("blank", [Document(id="x", text="   ")], retriever=BM25, progress=False)


def test_invalid_manifest_names_the_key(docs, isolated_home: Path) -> None:
    build_index("m", docs, retriever=BM25, progress=False)
    path = indexes_root() / "m" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "doc_count": "many"}))
    with pytest.raises(IndexCorruptError, match=r"manifest is invalid: key 'doc_count'") as info:
        open_index("m")
    assert "\n" not in info.value.message  # one line, not a pydantic dump
