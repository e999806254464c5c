"""Running a blocking Generator under an async server: one model thread, slots, deadlines.

* One worker thread owns the model (most engines are not safe to call from several threads at
  once); requests queue for it.
* :meth:`ModelRunner.admit` hands out a *slot* per request; beyond ``max_inflight`` (running +
  queued) the server answers 429 with ``Retry-After`` instead of queueing forever. Every model
  call of a request goes through its slot (:meth:`ModelRunner.call`, :meth:`ModelRunner.iterate`),
  so no route can skip admission, and the slot carries the request's one deadline.
* At the deadline (or when the client goes away) the slot's :class:`CancelToken` is set. The
  model thread sees it through :class:`CancellableGenerator`, which the server puts around the
  model: the next token raises :class:`GenerationCancelled` and closes the backend's stream
  (transformers stops ``generate`` through its stopping criteria, llama.cpp and HTTP streams are
  closed), so an app, a 32-prompt completion or an agent loop stops within a token instead of
  holding the model thread after its client got a 504.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from medmllm.models.generator import (
    BaseGenerator,
    ImageInput,
    LoglikelihoodRequest,
    Message,
    SamplingParams,
    StreamChunk,
)
from medmllm.models.generator import Generator as ModelGenerator

T = TypeVar("T")


class TooBusyError(Exception):
    """All slots are taken (answered 429)."""


class DeadlineError(Exception):
    """The request ran past its time limit (answered 504)."""


class GenerationCancelled(Exception):
    """Raised on the model thread when the request's deadline passed or its client left."""


class CancelToken:
    """A cancel flag, optionally tied to a parent's (a stream inside a request)."""

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self._parent = parent

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.cancelled)


_CURRENT: contextvars.ContextVar[CancelToken | None] = contextvars.ContextVar(
    "medmllm_cancel", default=None
)


def cancel_requested() -> bool:
    """Whether the model thread's current request was cancelled (False outside a request)."""
    token = _CURRENT.get()
    return token is not None and token.cancelled


def check_cancelled() -> None:
    """Raise :class:`GenerationCancelled` if the model thread's current request was cancelled."""
    if cancel_requested():
        raise GenerationCancelled


def _run_with(token: CancelToken, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` with ``token`` as the current cancel token (on the model thread)."""
    if token.cancelled:  # given up while waiting for the model thread
        raise GenerationCancelled
    reset = _CURRENT.set(token)
    try:
        return fn(*args)
    finally:
        _CURRENT.reset(reset)


class Slot:
    """One admitted request: its deadline and cancel token; release exactly once."""

    def __init__(self, runner: ModelRunner, timeout_s: float) -> None:
        self._runner = runner
        self._released = False
        self.deadline = time.monotonic() + timeout_s
        self.token = CancelToken()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

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
        timeout_s: deadline of one request, from admission to its last token (all its calls).
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
        """A slot for one request (its deadline starts now), or :class:`TooBusyError`."""
        with self._lock:
            if self.inflight >= self.max_inflight:
                raise TooBusyError
            self.inflight += 1
        return Slot(self, self.timeout_s)

    async def call(self, slot: Slot, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model thread within the slot's deadline.

        Past the deadline the slot is cancelled (``fn``'s generation stops at its next token)
        and :class:`DeadlineError` is raised.
        """
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool(), _run_with, slot.token, fn, *args)
        try:
            return await asyncio.wait_for(fut, max(slot.remaining(), 0.0))
        except TimeoutError:
            slot.token.cancel()
            raise DeadlineError from None
        except GenerationCancelled:
            raise DeadlineError from None
        except asyncio.CancelledError:  # the handler itself was cancelled (shutdown)
            slot.token.cancel()
            raise

    async def iterate(self, slot: Slot, factory: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """Items of ``factory()`` (run on the model thread) as they come, within the deadline.

        When the consumer stops early (client gone) the producer stops at the next item and
        closes the model's stream; at the deadline the whole slot is cancelled.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        token = CancelToken(slot.token)

        def put(kind: str, item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, (kind, item))

        def produce() -> None:
            it: Iterator[T] | None = None
            try:
                it = factory()
                for item in it:
                    if token.cancelled:
                        break
                    put("item", item)
            except BaseException as exc:  # handed to the consumer
                put("error", exc)
            finally:
                if isinstance(it, Generator):
                    with contextlib.suppress(Exception):
                        it.close()  # the backend stops generating (hf: its cancel event)
                put("done", None)

        def run() -> None:
            try:
                _run_with(token, produce)
            except GenerationCancelled:
                put("done", None)

        loop.run_in_executor(self._pool(), run)
        try:
            while True:
                remaining = slot.remaining()
                if remaining <= 0:
                    slot.token.cancel()
                    raise DeadlineError
                try:
                    kind, item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    slot.token.cancel()
                    raise DeadlineError from None
                if kind == "done":
                    return
                if kind == "error":
                    if isinstance(item, GenerationCancelled):
                        raise DeadlineError
                    raise item
                yield item
        finally:
            token.cancel()

    def shutdown(self) -> None:
        with self._lock:
            pool, self._executor = self._executor, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class CancellableGenerator(BaseGenerator):
    """The server's model: every token checks the current request's cancel token.

    Wraps any :class:`~medmllm.models.generator.Generator`; ``chat`` is the base class's, built
    on :meth:`stream`, so a non-streaming call (apps, the agent, raw completions) is cancelled
    per token too. Outside a request (no current token) it is a plain pass-through.
    """

    def __init__(self, inner: ModelGenerator) -> None:
        super().__init__(inner.model_id)
        self.inner = inner
        self.backend = inner.backend
        self.supports_images = inner.supports_images

    def stream(
        self,
        messages: Sequence[Message | dict[str, str]],
        images: Sequence[ImageInput] | None = None,
        **sampling: Any,
    ) -> Iterator[StreamChunk]:
        check_cancelled()
        return self._watch(self.inner.stream(messages, images, **sampling))

    @staticmethod
    def _watch(chunks: Iterator[StreamChunk]) -> Iterator[StreamChunk]:
        try:
            for chunk in chunks:
                check_cancelled()
                yield chunk
        finally:
            if isinstance(chunks, Generator):
                chunks.close()  # the backend stops generating now, not at max_tokens

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        check_cancelled()
        return self.inner.loglikelihood(requests)

    def _stream(
        self,
        messages: list[Message],
        images: Sequence[ImageInput] | None,
        params: SamplingParams,
    ) -> Iterator[StreamChunk]:
        return self.stream(messages, images, **dataclasses.asdict(params))

    def _loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[float]:
        return self.loglikelihood(requests)

    def context_window(self) -> int | None:
        return self.inner.context_window()

    def count_tokens(self, messages: Sequence[Message | dict[str, str]]) -> int | None:
        return self.inner.count_tokens(messages)

    def close(self) -> None:
        self.inner.close()
