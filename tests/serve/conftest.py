"""Server test helpers: apps around scripted generators, a live uvicorn server in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from medmllm.models.generator import StreamChunk, Usage
from medmllm.safety.guard import GuardConfig
from medmllm.serve.app import ServeConfig, create_app
from tests.engines import free_port
from tests.fakes import FakeGenerator


class TextScripted(FakeGenerator):
    """The one test double (tests/fakes.py), text-only, replying "ok" unless scripted."""

    def __init__(self, replies: list[str] | None = None) -> None:
        super().__init__(replies or ["ok"], model="scripted", supports_images=False)


class ImageScripted(FakeGenerator):
    def __init__(self, replies: list[str] | None = None) -> None:
        super().__init__(replies or ["ok"], model="scripted", supports_images=True)


class SlowScripted(TextScripted):
    """Streams one word every ``delay`` seconds; counts streams closed early."""

    supports_images = False

    def __init__(self, words: int = 50, delay: float = 0.05) -> None:
        super().__init__(replies=[" ".join(f"w{i}" for i in range(words))])
        self.delay = delay
        self.closed_early = 0
        self.active = 0
        self._lock = threading.Lock()

    def stream(self, messages, images=None, **sampling) -> Iterator[StreamChunk]:
        with self._lock:
            self.active += 1
        finished = False
        try:
            text = self.replies[0]  # type: ignore[index]
            for word in text.split(" "):
                time.sleep(self.delay)
                yield StreamChunk(word + " ")
            finished = True
            yield StreamChunk("", finish_reason="stop", usage=Usage(1, len(text.split())))
        finally:
            with self._lock:
                self.active -= 1
                if not finished:
                    self.closed_early += 1


class Endless(TextScripted):
    """Streams a token every few ms until its stream is closed; ``stopped`` is set then.

    ``words`` bounds each reply (None: endless). Runs on the engine side of the Generator
    interface (``_stream``), as a real backend does, so what stops it is the server's cancel.
    """

    def __init__(self, words: int | None = None, delay: float = 0.005) -> None:
        super().__init__()
        self.words = words
        self.token_delay = delay
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.finished = 0
        self._pace = threading.Event()  # never set: wait() paces tokens without a busy loop

    def _stream(self, messages, images, params) -> Iterator[StreamChunk]:
        self.started.set()
        n = 0
        try:
            while self.words is None or n < self.words:
                self._pace.wait(self.token_delay)
                n += 1
                yield StreamChunk(f"w{n} ")
            self.finished += 1
            yield StreamChunk("", finish_reason="stop", usage=Usage(1, n))
        finally:
            if self.words is None or n < self.words:
                self.stopped.set()


class Boom(TextScripted):
    def stream(self, messages, images=None, **sampling):
        raise RuntimeError("secret internal detail /etc/passwd")


def make_app(generator: Any, tmp_path=None, **config: Any):
    guard = config.pop("guard", None)
    if guard is None and tmp_path is not None:
        guard = GuardConfig(audit_path=tmp_path / "audit.jsonl")
    cfg = ServeConfig(**config, **({"guard": guard} if guard else {}))
    return create_app(cfg, generator=generator)


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """uvicorn on 127.0.0.1 in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=2)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("server did not start")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
