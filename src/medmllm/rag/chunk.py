"""Split documents into overlapping chunks that remember where they came from.

Chunks are counted in whitespace tokens (words with their punctuation): they are what BM25 and
the embedding model see, and a word count is model-independent, so the same index can be
searched by any encoder. 200 words is about 260 MiniLM word pieces, close to its 256-token window;
the overlap keeps a sentence cut at a boundary whole in at least one chunk. Each chunk keeps its
document id and character offsets, which is what a citation needs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, model_validator

from medmllm.rag.corpus import Document

_TOKEN = re.compile(r"\S+")


class ChunkConfig(BaseModel):
    """How documents are cut into chunks."""

    max_tokens: int = Field(200, ge=8, description="Most whitespace tokens (words) per chunk.")
    overlap: int = Field(40, ge=0, description="Words shared by consecutive chunks of a document.")
    with_title: bool = Field(
        True,
        description="Prefix every chunk's indexed text with its document title (orients chunks "
        "from the middle of a page).",
    )

    @model_validator(mode="after")
    def _overlap_smaller(self) -> ChunkConfig:
        if self.overlap >= self.max_tokens:
            raise ValueError(
                f"chunk overlap ({self.overlap}) must be smaller than max_tokens "
                f"({self.max_tokens})"
            )
        return self


@dataclass(frozen=True)
class Chunk:
    """A passage of one document: the unit that is indexed, retrieved and cited.

    Attributes:
        id: ``<doc_id>#<n>``.
        doc_id: the document it belongs to.
        text: the passage text (exactly ``document.text[start:end]``).
        start: character offset of the passage in the document text.
        end: character offset one past its end.
        title: the document title.
        url: the document url.
        source: the document source/collection.
    """

    id: str
    doc_id: str
    text: str
    start: int
    end: int
    title: str = ""
    url: str = ""
    source: str = ""
    with_title: bool = True

    @property
    def indexed_text(self) -> str:
        """What retrievers see: title + text (the title names the topic of mid-page chunks)."""
        if self.with_title and self.title and not self.text.startswith(self.title):
            return f"{self.title}. {self.text}"
        return self.text

    @property
    def hash(self) -> str:
        """Content hash of the indexed text: the key of the embedding cache."""
        return hashlib.sha256(self.indexed_text.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "doc_id": self.doc_id,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "title": self.title,
            "url": self.url,
            "source": self.source,
            "with_title": self.with_title,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Chunk:
        return cls(**row)


def chunk_document(doc: Document, config: ChunkConfig | None = None) -> list[Chunk]:
    """Cut one document into chunks of ``max_tokens`` words overlapping by ``overlap``."""
    config = config or ChunkConfig()
    spans = [(m.start(), m.end()) for m in _TOKEN.finditer(doc.text)]
    if not spans:
        return []
    step = config.max_tokens - config.overlap
    chunks: list[Chunk] = []
    first = 0
    while True:
        last = min(first + config.max_tokens, len(spans))
        start, end = spans[first][0], spans[last - 1][1]
        chunks.append(
            Chunk(
                id=f"{doc.id}#{len(chunks)}",
                doc_id=doc.id,
                text=doc.text[start:end],
                start=start,
                end=end,
                title=doc.title,
                url=doc.url,
                source=doc.source,
                with_title=config.with_title,
            )
        )
        if last >= len(spans):
            return chunks
        first += step


def chunk_documents(docs: Iterable[Document], config: ChunkConfig | None = None) -> list[Chunk]:
    """Chunk every document, in order."""
    config = config or ChunkConfig()
    return [chunk for doc in docs for chunk in chunk_document(doc, config)]
