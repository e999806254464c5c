"""A Generator that de-identifies every prompt before the wrapped model sees it.

The one place where model *input* is scrubbed: :meth:`medmllm.safety.guard.Guard.protect` wraps
a generator in it when the configuration says so (always, or by default only when the backend
sends text to another server), and the server builds its generator once through it, so no
route (chat, completions, apps, ask, agent) can reach the model around it. Every message of
every role is scrubbed (a client may put a note in a system turn), and so is every
log-likelihood context and continuation.

Scrubbing costs a Presidio analysis per distinct text; results are memoised (LRU), so a system
prompt or a conversation's earlier turns are analysed once, not on every request.

Example:
    >>> from medmllm.safety.guard import Guard, GuardConfig
    >>> gen = Guard(GuardConfig(deidentify_model_input=True)).protect(gen)  # doctest: +SKIP
    >>> gen.chat([{"role": "user", "content": "John Smith, MRN 1234567: chest pain"}])
    ...  # the model received "<NAME>, MRN <MRN>: chest pain"  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from medmllm.models.generator import (
    Completion,
    Generator,
    ImageInput,
    LoglikelihoodRequest,
    Message,
    StreamChunk,
)

CACHE_SIZE = 512


class ScrubbingGenerator:
    """Wraps a :class:`~medmllm.models.generator.Generator`; the inner model sees scrubbed text.

    Args:
        inner: the model.
        scrub: text -> text with PHI removed (``Guard.scrub``); must be deterministic.
    """

    def __init__(self, inner: Generator, scrub: Callable[[str], str]) -> None:
        self.inner = inner
        self.scrub = functools.lru_cache(maxsize=CACHE_SIZE)(scrub)
        self.backend = inner.backend
        self.model_id = inner.model_id
        self.supports_images = inner.supports_images

    def scrub_messages(self, messages: Sequence[Message | dict[str, str]]) -> list[Message]:
        """Every message with its content scrubbed (any role)."""
        out = []
        for m in messages:
            msg = Message.coerce(m)
            out.append(Message(msg.role, self.scrub(msg.content) if msg.content else msg.content))
        return out

    def chat(
        self,
        messages: Sequence[Message | dict[str, str]],
        images: Sequence[ImageInput] | None = None,
        **sampling: Any,
    ) -> Completion:
        return self.inner.chat(self.scrub_messages(messages), images, **sampling)

    def stream(
        self,
        messages: Sequence[Message | dict[str, str]],
        images: Sequence[ImageInput] | None = None,
        **sampling: Any,
    ) -> Iterator[StreamChunk]:
        return self.inner.stream(self.scrub_messages(messages), images, **sampling)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        scrubbed = []
        for req in requests:
            if not isinstance(req, LoglikelihoodRequest):
                req = LoglikelihoodRequest(*req)  # (context, continuation), as BaseGenerator
            scrubbed.append(
                dataclasses.replace(
                    req,
                    context=self.scrub(req.context) if req.context else req.context,
                    continuation=self.scrub(req.continuation),
                )
            )
        return self.inner.loglikelihood(scrubbed)

    def context_window(self) -> int | None:
        return self.inner.context_window()

    def count_tokens(self, messages: Sequence[Message | dict[str, str]]) -> int | None:
        return self.inner.count_tokens(self.scrub_messages(messages))

    def close(self) -> None:
        self.inner.close()

    def load_options(self) -> dict[str, Any]:
        """The inner model's, marked scrubbed: the model sees other text, so other answers."""
        return {**self.inner.load_options(), "scrubbed": True}
