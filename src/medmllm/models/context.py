"""Fitting a prompt into a model's context window: trim chat history, pack RAG passages.

Counting happens before the model is called (:meth:`Generator.check_context` refuses a
prompt that leaves no room, with the limit in the message); these helpers decide *what* to leave
out first so that the prompt *and* ``max_tokens`` of reply fit:

* ``medmllm chat`` drops the **oldest** user/assistant turn pairs until the conversation fits
  (the system prompt and the new question always stay); the answer says how many were dropped;
* grounded answers keep the **best-ranked** passages that fit and drop the rest from the end of
  the ranking, reporting how many.

Generators that do not know their window (e.g. a remote OpenAI-compatible server) are left to
their own limits: nothing is trimmed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from medmllm.models.generator import Generator, Message

T = TypeVar("T")


def fits(generator: Generator, messages: Sequence[Message], max_tokens: int) -> bool:
    """Whether prompt + ``max_tokens`` fit the window (True when the window is unknown)."""
    if not isinstance(generator, Generator):  # duck-typed doubles know no window
        return True
    window = generator.context_window()
    if window is None:
        return True
    used = generator.count_tokens(messages)
    return used is None or used + max_tokens <= window


def trim_history(
    generator: Generator,
    history: list[Message],
    build: Callable[[list[Message]], list[Message]],
    max_tokens: int,
) -> int:
    """Drop the oldest turn pairs of ``history`` (in place) until ``build(history)`` fits.

    Returns:
        The number of messages dropped (0 when everything fit).
    """
    dropped = 0
    while history and not fits(generator, build(history), max_tokens):
        cut = 2 if len(history) >= 2 else 1  # a user turn and its answer leave together
        del history[:cut]
        dropped += cut
    return dropped


def pack(
    generator: Generator,
    ranked: Sequence[T],
    build: Callable[[list[T]], list[Message]],
    max_tokens: int,
) -> tuple[list[T], int]:
    """The longest prefix of ``ranked`` whose prompt fits; returns (kept, number dropped)."""
    kept = list(ranked)
    while kept and not fits(generator, build(kept), max_tokens):
        kept.pop()
    return kept, len(ranked) - len(kept)
