"""Garbage collection of the embedding cache: drop vectors that no local index uses any more.

The cache (:class:`medmllm.rag.embed.EmbeddingCache`) keeps every passage vector ever computed,
keyed by chunk content hash, so a rebuild of unchanged text is free. Replaced documents, removed
indexes and abandoned experiments leave vectors behind. :func:`collect_garbage` keeps exactly the
vectors whose hash appears in a chunk of some index built with that model and truncation length
(the cache folder's key), and rewrites or deletes the shards holding the rest.

Safety: shards are rewritten to a temp file and renamed (a killed gc leaves whole shards), and
only shards that existed when the scan started are touched. A build running at the same time may
lose vectors it has not yet referenced from a manifest; that costs recomputation, never a wrong
vector. Folders whose model no index uses are removed entirely.

Example:
    >>> from medmllm.rag.cache_gc import collect_garbage
    >>> collect_garbage(dry_run=True).orphaned  # doctest: +SKIP
    1204
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medmllm.config import get_settings
from medmllm.errors import MedMLLMError
from medmllm.rag.embed import cache_folder_name
from medmllm.rag.index import _read_chunks, indexes_root, list_indexes, read_manifest


@dataclass
class GcReport:
    """What a garbage collection found (and, unless dry-run, removed)."""

    dry_run: bool
    kept: int = 0
    orphaned: int = 0
    bytes_freed: int = 0
    shards_rewritten: int = 0
    shards_removed: int = 0
    folders_removed: list[str] = field(default_factory=list)
    skipped_indexes: list[str] = field(default_factory=list)


def referenced_hashes() -> tuple[dict[str, set[str]], list[str]]:
    """Chunk hashes used by local indexes, by cache folder name; and unreadable index names."""
    used: dict[str, set[str]] = {}
    skipped: list[str] = []
    for name in list_indexes():
        try:
            manifest = read_manifest(name)
            chunks = _read_chunks(indexes_root() / name, name)
        except MedMLLMError:
            skipped.append(name)
            continue
        config = manifest.retriever
        if not config.uses_embeddings():
            continue
        folder = cache_folder_name(config.embedding_model, config.max_seq_length)
        used.setdefault(folder, set()).update(c.hash for c in chunks)
    return used, skipped


def collect_garbage(*, dry_run: bool = False, root: Path | None = None) -> GcReport:
    """Remove embedding-cache vectors that no local index references.

    Args:
        dry_run: only count what would be removed.
        root: cache root; default ``MEDMLLM_HOME/cache/embeddings``.

    Returns:
        Counts of kept and orphaned vectors and the bytes freed (or that would be freed).

    An index that cannot be read protects nothing and is listed in ``skipped_indexes``; gc then
    refuses to delete anything (a broken manifest must not cost its vectors).
    """
    root = root or get_settings().cache_dir("embeddings")
    used, skipped = referenced_hashes()
    report = GcReport(dry_run=dry_run or bool(skipped), skipped_indexes=skipped)
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        keep = used.get(folder.name, set())
        shards = sorted(folder.glob("*.npz"))
        folder_orphans = 0
        for shard in shards:
            try:
                with np.load(shard) as data:
                    hashes, vectors = data["hashes"], data["vectors"]
            except Exception:  # a damaged shard is garbage too
                report.orphaned += 1
                report.bytes_freed += shard.stat().st_size
                if not report.dry_run:
                    shard.unlink(missing_ok=True)
                    report.shards_removed += 1
                continue
            mask = np.array([h in keep for h in hashes.tolist()], dtype=bool)
            n_orphans = int((~mask).sum())
            report.kept += int(mask.sum())
            report.orphaned += n_orphans
            folder_orphans += n_orphans
            if n_orphans == 0:
                continue
            size = shard.stat().st_size
            if not mask.any():
                report.bytes_freed += size
                if not report.dry_run:
                    shard.unlink(missing_ok=True)
                    report.shards_removed += 1
                continue
            report.bytes_freed += int(size * n_orphans / len(mask))
            if not report.dry_run:
                tmp = folder / f".{shard.stem}-{uuid.uuid4().hex[:8]}.tmp"
                with tmp.open("wb") as fh:
                    np.savez(fh, hashes=hashes[mask], vectors=vectors[mask])
                os.replace(tmp, shard)
                report.shards_rewritten += 1
        if folder.name not in used and folder_orphans and not report.dry_run:
            shutil.rmtree(folder, ignore_errors=True)
            report.folders_removed.append(folder.name)
    return report
