"""Dense retrieval: sentence-transformers vectors in a faiss inner-product index.

Vectors are unit-normalised, so inner product is cosine similarity. The index is exact
(``IndexFlatIP``): for up to ~10⁵ chunks an exact search takes about a millisecond on a CPU,
far below the query-embedding cost, and it needs no training. Larger corpora belong in the
pgvector backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from medmllm.errors import IndexCorruptError, IndexMismatchError
from medmllm.rag.chunk import Chunk
from medmllm.rag.embed import (
    EmbeddingCache,
    Encoder,
    embed_with_cache,
    passage_encoder,
    query_encoder,
)
from medmllm.rag.retriever import RETRIEVERS, BaseRetriever, Hit

FAISS_FILE = "dense.faiss"
INFO_FILE = "dense.json"


@RETRIEVERS.register("dense")
class DenseRetriever(BaseRetriever):
    """Cosine similarity between the query and chunk embeddings (faiss, exact)."""

    kind = "dense"

    def __init__(self, config) -> None:
        super().__init__(config)
        self._index: Any = None  # a faiss index (faiss ships no type hints)
        self.cached = 0  # how many chunk vectors came from the cache in the last build

    @property
    def encoder(self) -> Encoder:
        """The passage encoder (also the query encoder unless ``query_embedding_model`` is set)."""
        return passage_encoder(self.config)

    @property
    def query_encoder(self) -> Encoder:
        """The encoder for queries (MedCPT-style retrievers have a separate one)."""
        return query_encoder(self.config)

    def embed_query(self, query: str) -> np.ndarray:
        """The query vector (from :attr:`query_encoder`)."""
        return self.query_encoder.encode_query(query)

    def build(self, chunks: list[Chunk], *, progress: bool = True) -> None:
        import faiss

        self.chunks = list(chunks)
        encoder = self.encoder
        cache = EmbeddingCache(self.config.embedding_model, self.config.max_seq_length)
        texts = [c.indexed_text for c in self.chunks]
        hashes = [c.hash for c in self.chunks]
        with Progress(
            TextColumn("embedding"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("chunks"),
            TimeRemainingColumn(),
            disable=not progress,
            transient=False,
        ) as bar:
            task = bar.add_task("embed", total=len(texts))
            vectors, self.cached = embed_with_cache(
                encoder,
                texts,
                hashes,
                cache,
                batch_size=self.config.batch_size,
                on_progress=lambda done, _total: bar.update(task, completed=done),
            )
        self._index = faiss.IndexFlatIP(encoder.dim)
        if len(vectors):
            self._index.add(vectors)

    def scores_for(self, query_vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, chunk positions) of the ``k`` nearest chunks."""
        import faiss

        assert self._index is not None, "build() or load() first"
        # One query is too little work to split: OpenMP threads spinning on a busy 2-core machine
        # took 24 ms p50 for 16k vectors vs 1.3 ms on one thread (bench/retrieval.py).
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = self._index.search(query_vector.reshape(1, -1), k)
        finally:
            faiss.omp_set_num_threads(before)
        return scores[0], ids[0]

    def vectors(self) -> np.ndarray:
        """The stored chunk vectors, in chunk order (reused by ``index migrate``)."""
        assert self._index is not None, "build() or load() first"
        return np.asarray(self._index.reconstruct_n(0, self._index.ntotal), dtype=np.float32)

    def _search(self, query: str, k: int) -> list[Hit]:
        scores, ids = self.scores_for(self.embed_query(query), k)
        return [Hit.of(self.chunks[i], s) for s, i in zip(scores, ids, strict=True) if i >= 0]

    def save(self, folder: Path) -> list[str]:
        import faiss

        assert self._index is not None
        faiss.write_index(self._index, str(folder / FAISS_FILE))
        info = {"embedding_model": self.config.embedding_model, "dim": int(self._index.d)}
        (folder / INFO_FILE).write_text(json.dumps(info))
        return [FAISS_FILE, INFO_FILE]

    def load(self, folder: Path, chunks: list[Chunk]) -> None:
        import faiss

        self.chunks = list(chunks)
        try:
            info = json.loads((folder / INFO_FILE).read_text())
            self._index = faiss.read_index(str(folder / FAISS_FILE))
        except (OSError, ValueError, RuntimeError) as exc:
            raise IndexCorruptError(
                f"dense index files in {folder} are unreadable ({exc})",
                hint="rebuild it: medmllm index build NAME --from PATH --rebuild",
            ) from None
        if self._index.ntotal != len(self.chunks):
            raise IndexCorruptError(
                f"dense index in {folder} holds {self._index.ntotal} vectors for "
                f"{len(self.chunks)} chunks",
                hint="rebuild it: medmllm index build NAME --from PATH --rebuild",
            )
        if info.get("embedding_model") != self.config.embedding_model:
            raise IndexMismatchError(
                f"index vectors were made by {info.get('embedding_model')!r}, "
                f"not {self.config.embedding_model!r}",
                hint="search with the model the index was built with, or rebuild with "
                "medmllm index build NAME --from PATH --rebuild --embedding-model MODEL",
            )
        if self.encoder.dim != self._index.d:
            raise IndexMismatchError(
                f"embedding model {self.config.embedding_model!r} makes {self.encoder.dim}-dim "
                f"vectors but the index holds {self._index.d}-dim vectors",
                hint="rebuild it: medmllm index build NAME --from PATH --rebuild",
            )
