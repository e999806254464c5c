"""Running a blocking Generator under an async server: one model thread, slots, deadlines.

* One worker thread owns the model (most engines are not safe to call from several threads at
  once); requests queue for it.
* :meth:`ModelRunner.admit` hands out a *slot* per request; beyond ``max_inflight`` (running +
  queued) the server answers 429 with ``Retry-After`` instead of queueing forever.
* :meth:`ModelRunner.iterate` bridges a blocking iterator (a token stream) to an async one with
  a deadline; when the client goes away or the deadline passes, the producer stops at the next
  token and closes the model's stream, so the model thread is free again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class TooBusyError(Exception):
    """All slots are taken (answered 429)."""


class DeadlineError(Exception):
    """The request ran past its time limit (answered 504)."""


class Slot:
    """One admitted request; release exactly once (a context manager)."""

    def __init__(self, runner: ModelRunner) -> None:
        self._runner = runner
        self._released = False

    def release(self) -> None:
        with self._runner._lock:
            if not self._released:
                self._released = True
                self._runner.inflight -= 1

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ModelRunner:
    """The model thread and the admission counter of one server process.

    Args:
        max_inflight: requests admitted at once (running + waiting for the model).
        timeout_s: deadline of one request, from admission to its last token.
    """

    def __init__(self, max_inflight: int, timeout_s: float) -> None:
        self.max_inflight = max_inflight
        self.timeout_s = timeout_s
        self.inflight = 0
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:  # (re)created on demand: an app may be started and stopped repeatedly
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="medmllm-model"
                )
            return self._executor

    def admit(self) -> Slot:
        with self._lock:
            if self.inflight >= self.max_inflight:
                raise TooBusyError
            self.inflight += 1
        return Slot(self)

    async def call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Run ``fn(*args)`` on the model thread with a deadline."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool(), fn, *args)
        try:
            return await asyncio.wait_for(fut, timeout or self.timeout_s)
        except TimeoutError:
            raise DeadlineError from None

    async def iterate(
        self, factory: Callable[[], Iterator[T]], timeout: float | None = None
    ) -> AsyncIterator[T]:
        """Items of ``factory()`` (run on the model thread) as they come."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def put(kind: str, item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, (kind, item))

        def produce() -> None:
            if cancel.is_set():  # given up while waiting for the model thread
                put("done", None)
                return
            it: Iterator[T] | None = None
            try:
                it = factory()
                for item in it:
                    if cancel.is_set():
                        break
                    put("item", item)
            except BaseException as exc:  # handed to the consumer
                put("error", exc)
            finally:
                if isinstance(it, Generator):
                    with contextlib.suppress(Exception):
                        it.close()  # the backend stops generating (hf: its cancel event)
                put("done", None)

        loop.run_in_executor(self._pool(), produce)
        deadline = loop.time() + (timeout or self.timeout_s)
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise DeadlineError
                try:
                    kind, item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    raise DeadlineError from None
                if kind == "done":
                    return
                if kind == "error":
                    raise item
                yield item
        finally:
            cancel.set()

    def shutdown(self) -> None:
        with self._lock:
            pool, self._executor = self._executor, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
