"""The one test double of the Generator interface, for unit tests and CLI subprocess tests.

``FakeGenerator`` is a real :class:`~medmllm.models.generator.BaseGenerator` subclass, so every
argument check of the real backends applies to it too. It answers from scripts or, without
scripts, deterministically from a hash of its input (a resumed run must reproduce scores
exactly):

* ``replies``: chat replies, used in turn, or a function of the last user message; default
  ``"The answer is X."`` with X from a hash of the last message;
* ``scores``: a ``{continuation: score}`` map (missing continuations score -1.0) or a function
  of the request; default a hash of (context, continuation) in [-5, 0];
* ``calls`` records ``("chat", messages, sampling)`` and ``("loglikelihood", requests)``,
  ``images`` the images of each chat;
  ``n_scored`` counts scored requests; ``fail_after=N`` raises ``KeyboardInterrupt`` after N
  (a simulated kill).

In a subprocess: ``medmllm eval --backend tests.fakes:FakeGenerator`` with the repository on
``PYTHONPATH``; ``FAKE_DELAY`` (seconds per request), ``FAKE_CALL_LOG`` (a file that gets one
line per real call), ``FAKE_IMAGES=1`` (accept images) and ``FAKE_REPLY`` (every chat reply)
configure it from the environment. ``FAKE_BLOCK_AFTER=N`` makes the call after the N-th block
until the process is signalled (it logs ``blocked 0`` first): a run that cannot finish before a
test's Ctrl-C or SIGKILL, however fast the machine, with exactly N calls done and cached.

A ``model`` that is a local path enters the load options (and so the eval cache key) by its
files, as the real backends' weights do; ``FAKE_DTYPE`` adds a dtype to them and
``load_options`` any other option (e.g. a ``base_url``).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from medmllm.models.generator import (
    BaseGenerator,
    ImageInput,
    LoglikelihoodRequest,
    Message,
    SamplingParams,
    StreamChunk,
    Usage,
)

Scores = Mapping[str, float] | Callable[[LoglikelihoodRequest], float]


def hashed_score(request: LoglikelihoodRequest) -> float:
    """A deterministic pseudo log-likelihood in [-5, 0]."""
    digest = hashlib.sha256(f"{request.context}\x00{request.continuation}".encode()).digest()
    return -int.from_bytes(digest[:4], "big") / 2**32 * 5.0


class FakeGenerator(BaseGenerator):
    """Scripted or hash-based replies and scores; see the module docstring."""

    backend = "fake"

    def __init__(
        self,
        replies: Sequence[str] | Callable[[str], str] | None = None,
        scores: Scores | None = None,
        *,
        model: str | None = None,
        supports_images: bool | None = None,
        fail_after: int | None = None,
        load_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model_id=model or "fake-model")
        if replies is None and os.environ.get("FAKE_REPLY"):
            replies = [os.environ["FAKE_REPLY"]]
        self.replies = replies if replies is None or callable(replies) else list(replies)
        self.scores = scores
        self.supports_images = (
            os.environ.get("FAKE_IMAGES") == "1" if supports_images is None else supports_images
        )
        self.fail_after = fail_after
        self.delay = float(os.environ.get("FAKE_DELAY", "0"))
        self.block_after = int(os.environ.get("FAKE_BLOCK_AFTER", "0")) or None
        self.dtype = os.environ.get("FAKE_DTYPE")
        self.extra_load = dict(load_options or {})
        self.log = os.environ.get("FAKE_CALL_LOG")
        self.n_calls = 0
        self.calls: list[tuple[Any, ...]] = []
        self.images: list[Sequence[ImageInput] | None] = []
        self.n_chats = 0
        self.n_scored = 0

    # -- recording (public methods, so tests see what callers passed) ---------------------------
    def stream(
        self,
        messages: Sequence[Message | dict[str, str]],
        images: Sequence[ImageInput] | None = None,
        **sampling: Any,
    ) -> Iterator[StreamChunk]:
        self.calls.append(("chat", list(messages), sampling))
        self.images.append(images)
        return super().stream(messages, images, **sampling)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        self.calls.append(("loglikelihood", list(requests)))
        return super().loglikelihood(requests)

    def _record(self, kind: str, n: int) -> None:
        if self.log:
            with open(self.log, "a", encoding="utf-8") as fh:
                fh.write(f"{kind} {n}\n")

    def _call(self, kind: str, n: int) -> None:
        """Count a real call; past ``FAKE_BLOCK_AFTER`` calls, wait here for a signal."""
        self.n_calls += 1
        if self.block_after is not None and self.n_calls > self.block_after:
            self._record("blocked", 0)
            while True:  # Ctrl-C raises KeyboardInterrupt out of the sleep; SIGKILL just ends
                time.sleep(0.05)
        self._record(kind, n)

    def _output_options(self) -> dict[str, Any]:
        return {**({"dtype": self.dtype} if self.dtype else {}), **self.extra_load}

    # -- the engine ------------------------------------------------------------------------------
    def _score(self, request: LoglikelihoodRequest) -> float:
        if self.scores is None:
            return hashed_score(request)
        if callable(self.scores):
            return float(self.scores(request))
        return float(self.scores.get(request.continuation, -1.0))

    def _loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[float]:
        time.sleep(self.delay * len(requests))
        self._call("loglikelihood", len(requests))
        out = []
        for request in requests:
            self.n_scored += 1
            if self.fail_after is not None and self.n_scored > self.fail_after:
                raise KeyboardInterrupt("simulated kill")
            out.append(self._score(request))
        return out

    def _stream(
        self,
        messages: list[Message],
        images: Sequence[ImageInput] | None,
        params: SamplingParams,
    ) -> Iterator[StreamChunk]:
        time.sleep(self.delay)
        self._call("chat", 1)
        self.n_chats += 1
        if callable(self.replies):
            text = self.replies(messages[-1].content)
        elif self.replies:
            text = self.replies[(self.n_chats - 1) % len(self.replies)]
        else:
            digest = hashlib.sha256(messages[-1].content.encode()).hexdigest()
            text = f"The answer is {'ABCD'[int(digest[:2], 16) % 4]}."
        words = text.split(" ")
        for i, word in enumerate(words):
            yield StreamChunk(word + (" " if i < len(words) - 1 else ""))
        yield StreamChunk("", finish_reason="stop", usage=Usage(1, len(words)))
