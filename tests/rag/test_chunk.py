"""Chunking keeps exact provenance (offsets) and overlaps as configured."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medmllm.rag.chunk import ChunkConfig, chunk_document
from medmllm.rag.corpus import Document


def test_offsets_point_into_the_document_and_overlap() -> None:
    text = "  ".join(f"w{i}" for i in range(25))
    doc = Document(id="d", text=text, title="T")
    chunks = chunk_document(doc, ChunkConfig(max_tokens=10, overlap=3))
    assert [c.id for c in chunks] == ["d#0", "d#1", "d#2", "d#3"]
    for c in chunks:
        assert text[c.start : c.end] == c.text
    assert chunks[0].text.split()[-3:] == chunks[1].text.split()[:3]
    assert chunks[-1].text.split()[-1] == "w24"


def test_title_prefix_and_hash() -> None:
    doc = Document(id="d", text="Some text here.", title="Topic")
    (chunk,) = chunk_document(doc)
    assert chunk.indexed_text == "Topic. Some text here."
    assert chunk.hash == chunk_document(doc)[0].hash
    (plain,) = chunk_document(doc, ChunkConfig(with_title=False))
    assert plain.indexed_text == "Some text here." and plain.hash != chunk.hash


def test_empty_text_gives_no_chunks_and_bad_config_is_rejected() -> None:
    assert chunk_document(Document(id="d", text="   ")) == []
    with pytest.raises(ValidationError, match="overlap"):
        ChunkConfig(max_tokens=10, overlap=10)
