"""An on-disk (SQLite) cache of every model call, which makes evaluation resumable.

Each call is keyed by a SHA-256 of (model key, call kind, request) — the model key hashes the
generator's canonical load options (:func:`model_key`), and each batch is
committed as soon as it is computed. A run killed at any point therefore keeps everything it
had finished; re-running the same command recomputes only what is missing, and a finished run
re-runs for free. SQLite (in WAL mode) is in the standard library, survives a SIGKILL mid-write
without corruption, and lets several processes share one cache file.

Example:
    >>> from medmllm.eval.cache import CallCache, CachedGenerator  # doctest: +SKIP
    >>> model = CachedGenerator(load_generator(), CallCache(path))  # doctest: +SKIP
    >>> model.loglikelihood(requests)  # computed once, then read from disk  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medmllm.errors import DataFormatError
from medmllm.models.generator import (
    Completion,
    Generator,
    ImageInput,
    LoglikelihoodRequest,
    Message,
    StreamChunk,
    Usage,
)


def model_key(load_options: dict[str, Any]) -> str:
    """The cache's model identity: a hash of the generator's canonical load options.

    :meth:`~medmllm.models.generator.BaseGenerator.load_options` holds the backend, the model,
    its local files' sizes and times, and every option that changes outputs (dtype, device,
    model args, server URL), so a bf16 or 4-bit re-run, another server answering to the same
    model name, or retrained weights at the same path never read another model's answers.
    ``v2``: keys of the older backend+model scheme simply miss.
    """
    blob = json.dumps(load_options, sort_keys=True, ensure_ascii=False, default=repr)
    return "v2:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def _key(fingerprint: str, kind: str, payload: Any) -> str:
    blob = json.dumps([fingerprint, kind, payload], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CallCache:
    """A key → JSON value store in one SQLite file, with hit/miss counters.

    Args:
        path: the database file (created with its folder); ``None`` keeps it in memory.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                str(self.path) if self.path else ":memory:", check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, kind TEXT, value TEXT)"
            )
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise DataFormatError(
                f"eval cache {self.path} is not a usable SQLite database ({exc})",
                hint="delete the file or pass --cache to another path",
            ) from None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """Stored values of those ``keys`` that are present."""
        found: dict[str, Any] = {}
        with self._lock:
            for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, value FROM calls WHERE key IN ({marks})", chunk
                ).fetchall()
                found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put_many(self, kind: str, items: dict[str, Any]) -> None:
        """Store values and commit at once, so a kill right after loses nothing."""
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO calls (key, kind, value) VALUES (?, ?, ?)",
                [(k, kind, json.dumps(v)) for k, v in items.items()],
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self)}

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedGenerator:
    """Wraps a Generator: the same calls, answered from the cache when possible.

    Only :meth:`loglikelihood` and :meth:`chat` are cached (they are what evaluation calls);
    :meth:`stream` passes through, so a cached generator is itself a
    :class:`~medmllm.models.generator.Generator`. ``model_calls`` counts requests that really
    reached the model.
    """

    def __init__(self, generator: Generator, cache: CallCache) -> None:
        self.generator = generator
        self.cache = cache
        self.load = generator.load_options()
        self.fingerprint = model_key(self.load)
        self.backend: str = generator.backend
        self.model_id: str = generator.model_id
        self.supports_images: bool = generator.supports_images
        self.model_calls = 0

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        """Scores from the cache; the misses go to the model in one call, in request order."""
        keys = [_key(self.fingerprint, "loglikelihood", _ll_payload(r)) for r in requests]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.cache.hits += len(requests) - len(missing)
        self.cache.misses += len(missing)
        if missing:
            # Deduplicate while keeping order: same-context requests stay adjacent, which the
            # backends rely on to reuse the context's KV cache.
            todo = list(dict.fromkeys(keys[i] for i in missing))
            first = {keys[i]: i for i in reversed(missing)}
            scores = self.generator.loglikelihood([requests[first[k]] for k in todo])
            self.model_calls += len(todo)
            new = dict(zip(todo, (float(s) for s in scores), strict=True))
            self.cache.put_many("loglikelihood", new)
            found.update(new)
        return [float(found[k]) for k in keys]

    def chat(
        self,
        messages: Sequence[Message | dict[str, str]],
        images: Sequence[ImageInput] | None = None,
        **sampling: Any,
    ) -> Completion:
        """A reply from the cache, else from the model (then stored)."""
        msgs = [Message.coerce(m).to_dict() for m in messages]
        image_ids = [_image_id(i) for i in images or []]
        key = _key(self.fingerprint, "chat", [msgs, image_ids, sorted(sampling.items())])
        found = self.cache.get_many([key])
        if key in found:
            self.cache.hits += 1
            v = found[key]
            return Completion(
                text=v["text"],
                finish_reason=v["finish_reason"],
                usage=Usage(**v["usage"]),
                latency_s=0.0,
                model=self.model_id,
                backend=self.backend,
            )
        self.cache.misses += 1
        self.model_calls += 1
        completion = self.generator.chat(messages, images, **sampling)
        usage = completion.usage
        value = {
            "text": completion.text,
            "finish_reason": completion.finish_reason,
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
            },
        }
        self.cache.put_many("chat", {key: value})
        return completion

    def stream(
        self,
        messages: Sequence[Message | dict[str, str]],
        images: Sequence[ImageInput] | None = None,
        **sampling: Any,
    ) -> Iterator[StreamChunk]:
        """Not cached: streaming is for people watching, not for evaluation."""
        self.model_calls += 1
        return self.generator.stream(messages, images, **sampling)

    def context_window(self) -> int | None:
        return self.generator.context_window()

    def load_options(self) -> dict[str, Any]:
        return self.load

    def count_tokens(self, messages: Sequence[Message | dict[str, str]]) -> int | None:
        return self.generator.count_tokens(messages)

    def close(self) -> None:
        self.generator.close()


def _ll_payload(request: LoglikelihoodRequest) -> list[Any]:
    """A scoring request's key: its images (by content) are part of it; text-only requests keep
    the key they always had, so existing caches still hit."""
    payload: list[Any] = [request.context, request.continuation]
    if request.images:
        payload.append([_image_id(i) for i in request.images])
    return payload


def _image_id(image: Any) -> str:
    """Images enter the key by file content hash (paths may move, content must match)."""
    if isinstance(image, str | Path) and Path(image).is_file():
        return hashlib.sha256(Path(image).read_bytes()).hexdigest()
    return repr(image)
