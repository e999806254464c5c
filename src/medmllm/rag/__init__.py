"""Grounded answers: corpora, chunking, retrievers (bm25, dense, hybrid), indexes, grounding.

See ``docs/rag.md``. Heavy libraries (torch, sentence-transformers, faiss) load only when a
dense retriever or the grounding check is first used.
"""

from medmllm.rag.answer import answer
from medmllm.rag.chunk import Chunk, ChunkConfig, chunk_document, chunk_documents
from medmllm.rag.citations import extract_citations, grounded_extra, retrieve
from medmllm.rag.corpus import LOADERS, Document, LoadReport, load_corpus
from medmllm.rag.grounding import GroundingResult, SentenceSupport, check_grounding
from medmllm.rag.index import (
    BuildReport,
    Index,
    IndexManifest,
    build_index,
    list_indexes,
    open_index,
    read_manifest,
    remove_index,
)
from medmllm.rag.retriever import (
    RETRIEVERS,
    BaseRetriever,
    Hit,
    Retriever,
    RetrieverConfig,
    build_retriever,
)
from medmllm.rag.starter import STARTER_INDEX, build_starter_index, starter_path

__all__ = [
    "LOADERS",
    "RETRIEVERS",
    "STARTER_INDEX",
    "BaseRetriever",
    "BuildReport",
    "Chunk",
    "ChunkConfig",
    "Document",
    "GroundingResult",
    "Hit",
    "Index",
    "IndexManifest",
    "LoadReport",
    "Retriever",
    "RetrieverConfig",
    "SentenceSupport",
    "answer",
    "build_index",
    "build_retriever",
    "build_starter_index",
    "check_grounding",
    "chunk_document",
    "chunk_documents",
    "extract_citations",
    "grounded_extra",
    "list_indexes",
    "load_corpus",
    "open_index",
    "read_manifest",
    "remove_index",
    "retrieve",
    "starter_path",
]
