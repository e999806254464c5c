"""Lexical retrieval with ``bm25s`` (sparse BM25, stemmed, English stopwords).

bm25s precomputes the BM25 score matrix at index time, so a query is a sparse row lookup
(well under a millisecond for 10k passages). The tokenizer's vocabulary is saved beside the
index: queries must be mapped to the *same* ids, and words unseen at index time are dropped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from medmllm.rag.chunk import Chunk
from medmllm.rag.ranking import top_k
from medmllm.rag.retriever import RETRIEVERS, BaseRetriever, Hit

log = logging.getLogger(__name__)

_SUBDIR = "bm25"


def _stemmer(language: str):
    if not language:
        return None
    import Stemmer

    return Stemmer.Stemmer(language)


@RETRIEVERS.register("bm25")
class BM25Retriever(BaseRetriever):
    """BM25 over chunk text (title included) with ``bm25s``."""

    kind = "bm25"

    def __init__(self, config) -> None:
        super().__init__(config)
        self._bm25: Any = None  # bm25s.BM25 and its Tokenizer, built or loaded on demand
        self._tokenizer: Any = None

    def _new_tokenizer(self):
        from bm25s.tokenization import Tokenizer

        return Tokenizer(stemmer=_stemmer(self.config.stemmer), stopwords="en")

    def build(self, chunks: list[Chunk], *, progress: bool = True) -> None:
        import bm25s

        self.chunks = list(chunks)
        self._tokenizer = self._new_tokenizer()
        tokens = self._tokenizer.tokenize(
            [c.indexed_text for c in self.chunks], return_as="tuple", show_progress=progress
        )
        self._bm25 = bm25s.BM25(k1=self.config.k1, b=self.config.b)
        self._bm25.index(tokens, show_progress=progress)

    def query_ids(self, query: str) -> list[int]:
        """The query's known vocabulary ids (unknown words dropped)."""
        assert self._tokenizer is not None, "build() or load() first"
        ids = self._tokenizer.tokenize(
            [query], update_vocab=False, return_as="ids", show_progress=False
        )[0]
        return list(ids)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk (zeros if no query word is in the vocabulary)."""
        assert self._bm25 is not None, "build() or load() first"
        ids = self.query_ids(query)
        if not ids:
            return np.zeros(len(self.chunks), dtype=np.float32)
        return self._bm25.get_scores(ids)

    def _search(self, query: str, k: int) -> list[Hit]:
        scores = self.scores(query)
        return [Hit.of(self.chunks[i], scores[i]) for i in top_k(scores, k) if scores[i] > 0]

    def save(self, folder: Path) -> list[str]:
        assert self._bm25 is not None and self._tokenizer is not None
        target = folder / _SUBDIR
        self._bm25.save(str(target), show_progress=False)
        self._tokenizer.save_vocab(str(target))
        self._tokenizer.save_stopwords(str(target))
        (target / "medmllm.json").write_text(json.dumps({"chunks": len(self.chunks)}))
        return sorted(f"{_SUBDIR}/{p.name}" for p in target.iterdir())

    def load(self, folder: Path, chunks: list[Chunk]) -> None:
        import bm25s

        target = folder / _SUBDIR
        self.chunks = list(chunks)
        self._bm25 = bm25s.BM25.load(str(target), show_progress=False)
        self._tokenizer = self._new_tokenizer()
        self._tokenizer.load_vocab(str(target))
        self._tokenizer.load_stopwords(str(target))
