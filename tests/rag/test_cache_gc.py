"""``index gc``: orphaned embedding-cache vectors are counted (dry run) and removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from medmllm.rag.cache_gc import collect_garbage
from medmllm.rag.chunk import chunk_documents
from medmllm.rag.corpus import Document
from medmllm.rag.embed import EmbeddingCache
from medmllm.rag.index import build_index, open_index
from medmllm.rag.retriever import RetrieverConfig


def test_gc_removes_only_orphans(docs, fake_encoder, isolated_home: Path) -> None:
    config = RetrieverConfig(kind="dense", embedding_model="fake-encoder")
    build_index("g", docs, retriever=config, progress=False)
    cache = EmbeddingCache("fake-encoder", 256)
    cache.put(["orphan-a", "orphan-b"], np.ones((2, 64), dtype=np.float32))
    changed = Document(id="gout", title="Gout", text="Colchicine treats acute gout flares.")
    build_index("g", [changed], progress=False)  # the old gout chunk's vector is now unused
    other = EmbeddingCache("some-removed-model", 256)
    other.put(["x"], np.ones((1, 8), dtype=np.float32))

    dry = collect_garbage(dry_run=True)
    assert dry.dry_run and dry.orphaned == 4  # 2 planted + old gout + the removed model's
    assert dry.kept == len(docs) and dry.bytes_freed > 0
    assert collect_garbage(dry_run=True).orphaned == 4  # the dry run removed nothing

    done = collect_garbage()
    assert not done.dry_run and done.orphaned == 4 and done.folders_removed
    assert not other.folder.exists()
    again = collect_garbage(dry_run=True)
    assert again.orphaned == 0 and again.kept == len(docs)
    index = open_index("g")
    assert index.search("colchicine gout", 1)[0].doc_id == "gout"
    fresh = EmbeddingCache("fake-encoder", 256)
    chunks = chunk_documents([*docs[:4], changed])
    assert len(fresh.get([c.hash for c in chunks])) == len(chunks)  # every used vector survived


def test_gc_refuses_to_delete_with_a_broken_index(docs, fake_encoder, isolated_home) -> None:
    config = RetrieverConfig(kind="dense", embedding_model="fake-encoder")
    report = build_index("g", docs, retriever=config, progress=False)
    assert report.folder is not None
    (report.folder / "manifest.json").write_text("{broken")
    result = collect_garbage()
    assert result.dry_run and result.skipped_indexes == ["g"]
    assert any(EmbeddingCache("fake-encoder", 256).folder.glob("*.npz"))


def test_gc_cli_dry_run_counts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = home / "cache" / "embeddings" / "old-model-L256"
    folder.mkdir(parents=True)
    with (folder / "1.npz").open("wb") as fh:
        np.savez(fh, hashes=np.array(["a", "b", "c"]), vectors=np.zeros((3, 4), np.float32))
    env = {**os.environ, "MEDMLLM_HOME": str(home)}
    cli = [sys.executable, "-m", "medmllm.cli.main", "index", "gc"]
    dry = subprocess.run([*cli, "--dry-run"], capture_output=True, text=True, env=env, check=False)
    assert dry.returncode == 0, dry.stderr
    assert "would remove 3 orphaned vectors" in dry.stdout
    assert (folder / "1.npz").exists()
    real = subprocess.run([*cli, "--json"], capture_output=True, text=True, env=env, check=False)
    assert json.loads(real.stdout)["orphaned"] == 3 and not folder.exists()
