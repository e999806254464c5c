"""``medmllm index migrate NAME --to pgvector``: copy a local index into PostgreSQL.

The local index's chunk vectors are reused (read back from its faiss file; a bm25-only index is
embedded through the embedding cache), so nothing is re-embedded. Documents are copied in
batches, one transaction each, and a document whose content hash already matches in the database
is skipped: a migration killed at any point (even ``kill -9``) is completed by running it again,
without duplicates. Documents no longer in the local index are deleted at the end, then the HNSW
index is built (faster once than row by row) and the index marked complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from medmllm.errors import InvalidRequestError
from medmllm.rag.chunk import Chunk
from medmllm.rag.dense import DenseRetriever
from medmllm.rag.hybrid import HybridRetriever
from medmllm.rag.index import check_name, open_index
from medmllm.rag.pgvector import PgVectorRetriever, _doc_hash, describe_dsn
from medmllm.rag.retriever import RetrieverConfig


@dataclass
class MigrateReport:
    """Summary of a migration."""

    name: str
    target: str
    where: str
    docs_copied: int = 0
    docs_skipped: int = 0
    docs_deleted: int = 0
    chunks: int = 0
    vectors_reused: bool = True
    seconds: float = 0.0


def local_vectors(name: str) -> tuple[list[Chunk], np.ndarray | None, RetrieverConfig]:
    """(chunks, their vectors or None for bm25-only, the retriever config) of a local index."""
    index = open_index(name)
    retriever = index.retriever
    dense = retriever.dense if isinstance(retriever, HybridRetriever) else retriever
    vectors = dense.vectors() if isinstance(dense, DenseRetriever) else None
    return retriever.chunks, vectors, index.manifest.retriever


def open_pg_index(
    name: str, *, dsn: str | None = None, mode: str | None = None, exact: bool = False
) -> PgVectorRetriever:
    """The database copy of ``name`` with its stored settings, ready to search.

    Raises:
        IndexNotFoundError: no such index in the database.
        IndexMismatchError: the query model's dimension differs from the stored vectors.
    """
    if mode is not None and mode not in ("hybrid", "dense", "lexical"):
        raise InvalidRequestError(f"unknown search mode {mode!r}", hint="hybrid, dense or lexical")
    probe = PgVectorRetriever(RetrieverConfig(kind="pgvector", pg_index=check_name(name)), dsn)
    stored = probe.stored_config()
    config = RetrieverConfig.model_validate(stored) if stored else probe.config
    config = config.model_copy(update={"pg_mode": mode or config.pg_mode, "pg_exact": exact})
    retriever = PgVectorRetriever(RetrieverConfig.model_validate(config.model_dump()), dsn)
    retriever.attach()
    return retriever


def migrate_index(
    name: str,
    *,
    dsn: str | None = None,
    target: str | None = None,
    replace: bool = False,
    batch_docs: int = 200,
    progress: bool = True,
) -> MigrateReport:
    """Copy local index ``name`` into PostgreSQL as ``target`` (default: the same name).

    Args:
        name: local index (``medmllm index list``).
        dsn: PostgreSQL DSN; default ``$MEDMLLM_PG_DSN``.
        target: index name in the database.
        replace: drop an existing database index of that name first.
        batch_docs: documents per transaction (a kill loses at most one batch).
        progress: show a progress bar.
    """
    start = time.perf_counter()
    check_name(name)
    if batch_docs < 1:
        raise InvalidRequestError(f"batch_docs must be >= 1, got {batch_docs}", hint="e.g. 200")
    chunks, vectors, config = local_vectors(name)
    if config.kind == "pgvector":
        raise InvalidRequestError(
            f"index {name!r} already lives in PostgreSQL", hint="nothing to do"
        )
    target = check_name(target or name)
    pg = PgVectorRetriever(config.model_copy(update={"kind": "pgvector", "pg_index": target}), dsn)
    report = MigrateReport(name, target, describe_dsn(pg.dsn), vectors_reused=vectors is not None)
    pg.stored_dim()  # reach the database (or fail in one line) before any embedding work
    if vectors is None:
        vectors = pg.embed(chunks)
    pg.create(int(vectors.shape[1]) if len(vectors) else pg.encoder.dim, replace=replace)
    stored = pg.doc_hashes()
    by_doc: dict[str, list[int]] = {}
    for i, chunk in enumerate(chunks):
        by_doc.setdefault(chunk.doc_id, []).append(i)
    todo = []
    for doc_id, rows in by_doc.items():
        if stored.get(doc_id) == _doc_hash([chunks[i] for i in rows]):
            report.docs_skipped += 1
        else:
            todo.append(doc_id)
    with Progress(
        TextColumn("copying to PostgreSQL"), BarColumn(), MofNCompleteColumn(),
        TextColumn("documents"), disable=not progress,
    ) as bar:  # fmt: skip
        task = bar.add_task("copy", total=len(todo))
        for b in range(0, len(todo), batch_docs):
            rows = [i for doc_id in todo[b : b + batch_docs] for i in by_doc[doc_id]]
            report.docs_copied += pg.add_chunks([chunks[i] for i in rows], vectors[rows])
            bar.update(task, completed=min(b + batch_docs, len(todo)))
    gone = sorted(set(stored) - set(by_doc))
    if gone:
        report.docs_deleted = pg.delete(gone)
    pg.finish()
    report.chunks = pg.count()[1]
    report.seconds = time.perf_counter() - start
    return report
