"""Named retrieval indexes on disk: ``MEDMLLM_HOME/indexes/<name>/`` with a manifest.

An index folder holds ``manifest.json`` (schema version, retriever and chunking config, embedding
model, counts, a SHA-256 of every file), ``chunks.jsonl`` (the passages with provenance) and the
retriever's own files. It is always written whole into a temporary folder and swapped in by
renames, so a reader (or a killed build) sees the old index or the new one, never a mix.

Building into an existing name *adds* documents: new ids are appended, changed ones replaced,
unchanged ones kept, and the embedding cache makes unchanged chunks free. ``rebuild=True`` starts
from the given documents only. Opening checks the schema, the checksums and the embedding model,
and every failure names the fix (``medmllm index build NAME --rebuild``).

Example:
    >>> from medmllm.rag.corpus import load_corpus
    >>> from medmllm.rag.index import build_index, open_index
    >>> docs, _ = load_corpus("guidelines/")  # doctest: +SKIP
    >>> build_index("guidelines", docs)  # doctest: +SKIP
    >>> open_index("guidelines").search("asthma step-up therapy", k=3)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from medmllm import __version__
from medmllm.config import get_settings
from medmllm.errors import (
    EmptyCorpusError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    InvalidRequestError,
)
from medmllm.rag.chunk import Chunk, ChunkConfig, chunk_document
from medmllm.rag.corpus import Document
from medmllm.rag.retriever import BaseRetriever, Hit, RetrieverConfig, build_retriever
from medmllm.validation import validation_message

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REBUILD_HINT = "rebuild it: medmllm index build {name} --from PATH --rebuild"


class IndexManifest(BaseModel):
    """What an index is and how it was made (``manifest.json``)."""

    schema_version: int = Field(description="Layout version; other versions must be rebuilt.")
    name: str = Field(description="The index name (its folder name).")
    retriever: RetrieverConfig = Field(description="Retriever settings used to build it.")
    chunking: ChunkConfig = Field(description="How documents were cut into chunks.")
    embedding_model: str | None = Field(
        None, description="Embedding model of dense/hybrid vectors; None for bm25."
    )
    doc_count: int = Field(description="Documents indexed.")
    chunk_count: int = Field(description="Chunks indexed.")
    sources: list[str] = Field(default_factory=list, description="Paths documents came from.")
    created_at: str = Field(description="UTC time of the first build.")
    updated_at: str = Field(description="UTC time of the last build or addition.")
    medmllm_version: str = Field(description="Toolkit version that wrote it.")
    checksums: dict[str, str] = Field(description="SHA-256 of every file, by relative path.")


@dataclass
class BuildReport:
    """The summary printed after a build."""

    name: str
    kind: str
    docs_added: int = 0
    docs_updated: int = 0
    docs_unchanged: int = 0
    doc_count: int = 0
    chunk_count: int = 0
    chunks_from_cache: int = 0
    seconds: float = 0.0
    folder: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)


def indexes_root() -> Path:
    """``MEDMLLM_HOME/indexes`` (created on demand)."""
    root = get_settings().home.expanduser() / "indexes"
    root.mkdir(parents=True, exist_ok=True)
    return root


def check_name(name: str) -> str:
    """Index names become folder names: letters, digits, '.', '_' and '-' only."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequestError(
            f"invalid index name {name!r}",
            hint="use letters, digits, '.', '_' or '-' (e.g. 'guidelines-2025'), ≤ 64 chars",
        )
    return name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _recover(root: Path, name: str) -> None:
    """Finish a swap that a crash cut between its two renames (old copy kept, new missing)."""
    target = root / name
    if target.exists():
        return
    olds = sorted(root.glob(f".old-{name}-*"), key=lambda p: p.stat().st_mtime)
    if olds and (olds[-1] / MANIFEST).is_file():
        os.replace(olds[-1], target)


def list_indexes() -> list[str]:
    """Names of the indexes under ``MEDMLLM_HOME/indexes``."""
    root = indexes_root()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _not_found(name: str) -> IndexNotFoundError:
    existing = list_indexes()
    listed = ", ".join(existing) if existing else "(none yet)"
    return IndexNotFoundError(
        f"no index named {name!r}; existing indexes: {listed}",
        hint=f"build it: medmllm index build {name} --from PATH",
    )


def read_manifest(name: str) -> IndexManifest:
    """Parse and validate an index's manifest (schema version included)."""
    root = indexes_root()
    _recover(root, check_name(name))
    folder = root / name
    if not folder.is_dir():
        raise _not_found(name)
    hint = REBUILD_HINT.format(name=name)
    try:
        raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(
            f"index {name!r} has no readable manifest ({exc})", hint=hint
        ) from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise IndexMismatchError(
            f"index {name!r} has schema version {version!r}; this medmllm reads {SCHEMA_VERSION}",
            hint=hint,
        )
    try:
        return IndexManifest.model_validate(raw)
    except ValidationError as exc:
        raise IndexCorruptError(
            f"index {name!r} manifest is invalid: {validation_message(exc)}", hint=hint
        ) from None


def _read_chunks(folder: Path, name: str) -> list[Chunk]:
    try:
        with (folder / CHUNKS).open(encoding="utf-8") as fh:
            return [Chunk.from_dict(json.loads(line)) for line in fh if line.strip()]
    except (OSError, ValueError, TypeError) as exc:
        raise IndexCorruptError(
            f"index {name!r}: {CHUNKS} is unreadable ({exc})", hint=REBUILD_HINT.format(name=name)
        ) from None


class Index:
    """An opened index: its manifest, chunks and a ready retriever.

    Use :func:`open_index` rather than the constructor.
    """

    def __init__(self, name: str, folder: Path, manifest: IndexManifest, retriever: BaseRetriever):
        self.name = name
        self.folder = folder
        self.manifest = manifest
        self.retriever = retriever

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` best chunks for ``query`` (see :meth:`Retriever.search`)."""
        return self.retriever.search(query, k)

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Index({self.name!r}, {m.retriever.kind}, {m.doc_count} docs, {m.chunk_count} chunks)"
        )


def open_index(name: str, *, embedding_model: str | None = None, verify: bool = True) -> Index:
    """Open a named index, checking schema, checksums and (if given) the embedding model.

    Args:
        name: index name.
        embedding_model: the model the caller wants to query with; a different one than the index
            was built with raises :class:`IndexMismatchError` (its vectors would be meaningless).
        verify: check file checksums (a few ms per MB).
    """
    manifest = read_manifest(name)
    folder = indexes_root() / name
    hint = REBUILD_HINT.format(name=name)
    if embedding_model is not None and manifest.embedding_model not in (None, embedding_model):
        raise IndexMismatchError(
            f"index {name!r} was built with embedding model {manifest.embedding_model!r}, "
            f"but {embedding_model!r} was requested",
            hint=f"drop --embedding-model, or rebuild: medmllm index build {name} --from PATH "
            f"--rebuild --embedding-model {embedding_model}",
        )
    if verify:
        for rel, expected in manifest.checksums.items():
            path = folder / rel
            if not path.is_file():
                raise IndexCorruptError(f"index {name!r} is missing {rel}", hint=hint)
            if _sha256(path) != expected:
                raise IndexCorruptError(f"index {name!r}: {rel} fails its checksum", hint=hint)
    chunks = _read_chunks(folder, name)
    if len(chunks) != manifest.chunk_count:
        raise IndexCorruptError(
            f"index {name!r} lists {manifest.chunk_count} chunks but holds {len(chunks)}", hint=hint
        )
    retriever = build_retriever(manifest.retriever)
    retriever.load(folder, chunks)
    return Index(name, folder, manifest, retriever)


def remove_index(name: str) -> Path:
    """Delete an index folder; returns the path that was removed."""
    folder = indexes_root() / check_name(name)
    if not folder.is_dir():
        raise _not_found(name)
    trash = folder.with_name(f".rm-{name}-{uuid.uuid4().hex[:8]}")
    os.replace(folder, trash)  # atomic disappearance, then the slow delete
    shutil.rmtree(trash, ignore_errors=True)
    return folder


def _merge(
    old_chunks: list[Chunk], docs: list[Document], chunking: ChunkConfig, report: BuildReport
) -> list[Chunk]:
    """Existing chunks with ``docs`` added (new ids) or replaced (changed text), in order."""
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in old_chunks:
        by_doc.setdefault(chunk.doc_id, []).append(chunk)
    for doc in docs:
        new = chunk_document(doc, chunking)
        old = by_doc.get(doc.id)
        if old is None:
            report.docs_added += 1
        elif [c.hash for c in old] == [c.hash for c in new] and old == new:
            report.docs_unchanged += 1
        else:
            report.docs_updated += 1
        by_doc[doc.id] = new
    return [chunk for chunks in by_doc.values() for chunk in chunks]


def build_index(
    name: str,
    docs: list[Document],
    *,
    retriever: RetrieverConfig | None = None,
    chunking: ChunkConfig | None = None,
    rebuild: bool = False,
    sources: list[str] | None = None,
    progress: bool = True,
) -> BuildReport:
    """Create ``name``, or add ``docs`` to it; written atomically.

    Args:
        name: index name (folder under ``MEDMLLM_HOME/indexes``).
        docs: documents to index (see :mod:`medmllm.rag.corpus`).
        retriever: retriever settings; None keeps an existing index's, else the default (hybrid).
        chunking: chunking settings; None keeps an existing index's, else the default.
        rebuild: ignore any existing index of that name and build from ``docs`` alone.
        sources: where the documents came from (recorded in the manifest).
        progress: show progress bars.

    Raises:
        EmptyCorpusError: ``docs`` is empty.
        IndexMismatchError: adding with settings other than the existing index's.
    """
    start = time.perf_counter()
    check_name(name)
    if not docs:
        raise EmptyCorpusError(
            f"no documents to index into {name!r}", hint="check --from and --format"
        )
    root = indexes_root()
    _recover(root, name)
    target = root / name
    old_chunks: list[Chunk] = []
    old: IndexManifest | None = None
    if target.exists() and not rebuild:
        old = read_manifest(name)
        for label, given, stored in (
            ("retriever settings", retriever, old.retriever),
            ("chunking settings", chunking, old.chunking),
        ):
            if given is not None and given != stored:
                raise IndexMismatchError(
                    f"index {name!r} exists with other {label} ({stored.model_dump()} vs "
                    f"{given.model_dump()})",
                    hint=f"add --rebuild to replace it: medmllm index build {name} --from PATH "
                    "--rebuild",
                )
        retriever, chunking = old.retriever, old.chunking
        old_chunks = _read_chunks(target, name)
    retriever = retriever or RetrieverConfig()
    chunking = chunking or ChunkConfig()

    report = BuildReport(name=name, kind=retriever.kind)
    chunks = _merge(old_chunks, docs, chunking, report)
    if not chunks:
        raise EmptyCorpusError(f"the documents for {name!r} contain no text", hint="check --from")
    engine = build_retriever(retriever)
    engine.build(chunks, progress=progress)
    report.chunks_from_cache = int(getattr(engine, "cached", 0))

    tmp = root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        with (tmp / CHUNKS).open("w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
        files = [CHUNKS, *engine.save(tmp)]
        now = _now()
        manifest = IndexManifest(
            schema_version=SCHEMA_VERSION,
            name=name,
            retriever=retriever,
            chunking=chunking,
            embedding_model=retriever.embedding_model if retriever.uses_embeddings() else None,
            doc_count=len({c.doc_id for c in chunks}),
            chunk_count=len(chunks),
            sources=sorted({*(old.sources if old else []), *(sources or [])}),
            created_at=old.created_at if old else now,
            updated_at=now,
            medmllm_version=__version__,
            checksums={rel: _sha256(tmp / rel) for rel in files},
        )
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        _swap(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.doc_count, report.chunk_count = manifest.doc_count, manifest.chunk_count
    report.seconds = time.perf_counter() - start
    report.folder = target
    return report


def _swap(tmp: Path, target: Path) -> None:
    """Put ``tmp`` in place of ``target`` with renames (the old copy survives a crash)."""
    if target.exists():
        old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
