"""Hybrid retrieval: BM25 and dense rankings fused by weighted reciprocal rank.

Lexical and dense retrieval fail differently (rare drug names and exact terms vs. paraphrases),
and reciprocal-rank fusion (Cormack et al., 2009) combines them without calibrating their scores:
``score(chunk) = Σ_r weight_r / (rrf_k + rank_r(chunk))`` over the two rankings, each cut at
``candidates`` hits. The weights and ``rrf_k`` live in the config (and so in the index manifest).
"""

from __future__ import annotations

from pathlib import Path

from medmllm.rag.bm25 import BM25Retriever
from medmllm.rag.chunk import Chunk
from medmllm.rag.dense import DenseRetriever
from medmllm.rag.ranking import top_k
from medmllm.rag.retriever import RETRIEVERS, BaseRetriever, Hit


def reciprocal_rank_fusion(
    rankings: list[list[int]], weights: list[float], rrf_k: int
) -> list[tuple[int, float]]:
    """Fuse rankings of item ids into one (id, score) list, best first.

    Example:
        >>> reciprocal_rank_fusion([[1, 2], [2, 3]], [1.0, 1.0], 60)[0][0]
        2
    """
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if weight == 0:
            continue
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (rrf_k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


@RETRIEVERS.register("hybrid")
class HybridRetriever(BaseRetriever):
    """``bm25`` + ``dense`` fused with weighted reciprocal-rank fusion."""

    kind = "hybrid"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.bm25 = BM25Retriever(config)
        self.dense = DenseRetriever(config)

    @property
    def cached(self) -> int:
        """Chunk vectors reused from the embedding cache in the last build."""
        return self.dense.cached

    def build(self, chunks: list[Chunk], *, progress: bool = True) -> None:
        self.chunks = list(chunks)
        self.bm25.build(self.chunks, progress=progress)
        self.dense.build(self.chunks, progress=progress)

    def _bm25_ranking(self, query: str, n: int) -> list[int]:
        scores = self.bm25.scores(query)
        return [int(i) for i in top_k(scores, n) if scores[i] > 0]

    def _search(self, query: str, k: int) -> list[Hit]:
        n = max(k, self.config.candidates)
        lexical = self._bm25_ranking(query, n)
        _, ids = self.dense.scores_for(self.dense.embed_query(query), min(n, len(self.chunks)))
        semantic = [int(i) for i in ids if i >= 0]
        fused = reciprocal_rank_fusion(
            [lexical, semantic],
            [self.config.bm25_weight, self.config.dense_weight],
            self.config.rrf_k,
        )
        return [Hit.of(self.chunks[i], score) for i, score in fused[:k]]

    def save(self, folder: Path) -> list[str]:
        return self.bm25.save(folder) + self.dense.save(folder)

    def load(self, folder: Path, chunks: list[Chunk]) -> None:
        self.chunks = list(chunks)
        self.bm25.load(folder, chunks)
        self.dense.load(folder, chunks)
