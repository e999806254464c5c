"""Named retrieval indexes on disk: ``MEDMLLM_HOME/indexes/<name>/`` with a manifest.

An index folder holds ``manifest.json`` (schema version, retriever and chunking config, embedding
model, counts, a SHA-256 of every file), ``chunks.jsonl`` (the passages with provenance) and the
retriever's own files. It is always written whole into a temporary folder and swapped in by
renames, so a reader (or a killed build) sees the old index or the new one, never a mix.

Writers are serialised: ``build_index`` and ``remove_index`` hold an exclusive lock on
``MEDMLLM_HOME/locks/index-<name>.lock`` (``fcntl.flock``, the writer's pid inside) for the whole
read-merge-write, so two builds adding documents at once both land — no lost update. A second
writer waits (with a message) up to ``lock_timeout`` seconds, then fails with
:class:`IndexLockedError`. The kernel drops the lock when a writer dies, so a stale lock file
(dead pid) never blocks anyone. Each write is a complete version folder
``MEDMLLM_HOME/index-versions/<name>@<id>`` and ``indexes/<name>`` is a symlink to the newest,
replaced by one atomic rename: a reader resolves it once and reads one complete version while a
writer works on the next (the previous version is kept for readers still opening it).

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

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from medmllm import __version__
from medmllm.config import get_settings
from medmllm.errors import (
    EmptyCorpusError,
    IndexCorruptError,
    IndexLockedError,
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
LOCK_TIMEOUT_S = 600.0
log = logging.getLogger(__name__)


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
    ids_disambiguated: int = 0


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


def _current(name: str) -> Path:
    """The folder holding the current complete version of ``name`` (symlink resolved once)."""
    root = indexes_root()
    _recover(root, check_name(name))
    for _ in range(_RETRIES):
        folder = (root / name).resolve()
        if folder.is_dir():
            return folder
        if (root / name).resolve() == folder:  # not a version switch in between: missing
            break
    raise _not_found(name)


_RETRIES = 5


def _switched(name: str, folder: Path) -> bool:
    """Whether ``name`` now points at another version than ``folder`` (a writer finished)."""
    return (indexes_root() / name).resolve() != folder


def read_manifest(name: str, folder: Path | None = None) -> IndexManifest:
    """Parse and validate an index's manifest (schema version included)."""
    folder = folder or _current(name)
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
    for attempt in range(_RETRIES):
        folder = _current(name)  # one version for the whole read, whatever a writer does
        try:
            return _open_version(name, folder, embedding_model, verify)
        except (IndexNotFoundError, IndexCorruptError, OSError):
            # two writes finished while we read: our version was pruned; read the new one
            if attempt == _RETRIES - 1 or not _switched(name, folder):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _open_version(name: str, folder: Path, embedding_model: str | None, verify: bool) -> Index:
    manifest = read_manifest(name, folder)
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


def remove_index(name: str, *, lock_timeout: float = LOCK_TIMEOUT_S) -> Path:
    """Delete an index (waits for a writer of the same index); returns the removed path."""
    root = indexes_root()
    folder = root / check_name(name)
    with write_lock(name, timeout=lock_timeout):
        if not folder.is_dir():
            raise _not_found(name)
        trash = folder.with_name(f".rm-{name}-{uuid.uuid4().hex[:8]}")
        os.replace(folder, trash)  # atomic disappearance, then the slow delete
        if trash.is_symlink():
            trash.unlink()
            for version in _versions_root().glob(f"{name}@*"):
                shutil.rmtree(version, ignore_errors=True)
        else:
            shutil.rmtree(trash, ignore_errors=True)
    return folder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _lock_path(name: str) -> Path:
    # outside indexes/: a lock file must outlive `index rm` (deleting a held lock file would
    # let a third writer lock a new inode while the second still waits on the old one)
    folder = get_settings().home.expanduser() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"index-{check_name(name)}.lock"


def lock_holder(name: str) -> int | None:
    """The pid written in ``name``'s lock file, if that process is alive."""
    try:
        text = _lock_path(name).read_text().strip()
        pid = int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _pid_alive(pid) else None


@contextlib.contextmanager
def write_lock(
    name: str,
    *,
    timeout: float = LOCK_TIMEOUT_S,
    on_wait: Callable[[int | None], None] | None = None,
) -> Iterator[None]:
    """Hold the exclusive writer lock of index ``name`` (see the module docstring).

    Args:
        name: the index.
        timeout: seconds to wait for another writer; then :class:`IndexLockedError`.
        on_wait: called once with the holder's pid when we have to wait (the CLI prints it).
    """
    path = _lock_path(name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(timeout, 0.0)
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = lock_holder(name)
                if time.monotonic() >= deadline:
                    raise IndexLockedError(
                        f"index {name!r} is being written by another process "
                        f"(pid {holder if holder is not None else 'unknown'})",
                        hint="wait for that build to finish and rerun, or stop that process",
                    ) from None
                if not waited:
                    waited = True
                    if on_wait is not None:
                        on_wait(holder)
                    else:
                        log.warning("index %r is locked by pid %s; waiting", name, holder)
                time.sleep(0.05)
        # a stale pid from a dead writer is simply overwritten: flock died with it
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {_now()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def _merge(
    old_chunks: list[Chunk], docs: list[Document], chunking: ChunkConfig, report: BuildReport
) -> list[Chunk]:
    """Existing chunks with ``docs`` added (new ids) or replaced (changed text), in order."""
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in old_chunks:
        by_doc.setdefault(chunk.doc_id, []).append(chunk)
    for doc in docs:
        doc = _unique_per_file(doc, by_doc, report)
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


def _unique_per_file(
    doc: Document, by_doc: dict[str, list[Chunk]], report: BuildReport
) -> Document:
    """Two files with the same relative path (folderA/doc1.txt, folderB/doc1.txt) stay two docs.

    Folder documents carry their file's ``file://`` url; the same id from *another* file gets a
    stable suffix from that url instead of silently replacing the first document.
    """
    old = by_doc.get(doc.id)
    if not old or not doc.url.startswith("file://"):
        return doc
    old_url = old[0].url
    if not old_url.startswith("file://") or old_url == doc.url:
        return doc
    report.ids_disambiguated += 1
    suffix = hashlib.sha256(doc.url.encode()).hexdigest()[:8]
    return replace(doc, id=f"{doc.id}@{suffix}")


def build_index(
    name: str,
    docs: list[Document],
    *,
    retriever: RetrieverConfig | None = None,
    chunking: ChunkConfig | None = None,
    rebuild: bool = False,
    sources: list[str] | None = None,
    progress: bool = True,
    lock_timeout: float = LOCK_TIMEOUT_S,
    on_wait: Callable[[int | None], None] | None = None,
) -> BuildReport:
    """Create ``name``, or add ``docs`` to it; written atomically under the writer lock.

    Args:
        name: index name (folder under ``MEDMLLM_HOME/indexes``).
        docs: documents to index (see :mod:`medmllm.rag.corpus`).
        retriever: retriever settings; None keeps an existing index's, else the default (hybrid).
        chunking: chunking settings; None keeps an existing index's, else the default.
        rebuild: ignore any existing index of that name and build from ``docs`` alone.
        sources: where the documents came from (recorded in the manifest).
        progress: show progress bars.
        lock_timeout: seconds to wait for another writer of ``name``.
        on_wait: called with the other writer's pid when we have to wait.

    Raises:
        EmptyCorpusError: ``docs`` is empty.
        IndexMismatchError: adding with settings other than the existing index's.
        IndexLockedError: another writer held the index for longer than ``lock_timeout``.
    """
    check_name(name)
    if not docs:
        raise EmptyCorpusError(
            f"no documents to index into {name!r}", hint="check --from and --format"
        )
    with write_lock(name, timeout=lock_timeout, on_wait=on_wait):
        return _build_locked(name, docs, retriever, chunking, rebuild, sources, progress)


def _build_locked(
    name: str,
    docs: list[Document],
    retriever: RetrieverConfig | None,
    chunking: ChunkConfig | None,
    rebuild: bool,
    sources: list[str] | None,
    progress: bool,
) -> BuildReport:
    start = time.perf_counter()
    root = indexes_root()
    _recover(root, name)
    target = root / name
    old_chunks: list[Chunk] = []
    old: IndexManifest | None = None
    if target.exists() and not rebuild:
        current = _current(name)
        old = read_manifest(name, current)
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
        old_chunks = _read_chunks(current, name)
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


def _versions_root() -> Path:
    folder = get_settings().home.expanduser() / "index-versions"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _swap(tmp: Path, target: Path) -> None:
    """Make the complete folder ``tmp`` the current version of ``target`` (module docstring).

    ``tmp`` moves to ``index-versions/<name>@<id>`` and the symlink ``target`` is replaced by one
    atomic rename. An index from before versioned folders (a real folder) is moved aside first.
    """
    versions = _versions_root()
    version = versions / f"{target.name}@{uuid.uuid4().hex[:12]}"
    os.replace(tmp, version)
    previous = target.resolve() if target.is_symlink() else None
    legacy = None
    if target.exists() and not target.is_symlink():
        legacy = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
        os.replace(target, legacy)  # readers wait out this one-time gap (_recover undoes a crash)
    link = target.with_name(f".link-{target.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.symlink(os.path.relpath(version, target.parent), link)
        os.replace(link, target)  # the one step readers can observe
    except BaseException:
        link.unlink(missing_ok=True)
        shutil.rmtree(version, ignore_errors=True)
        raise
    if legacy is not None:
        shutil.rmtree(legacy, ignore_errors=True)
    for old in versions.glob(f"{target.name}@*"):
        if old != version and old.resolve() != previous:
            shutil.rmtree(old, ignore_errors=True)
