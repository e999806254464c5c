"""What an answered question looks like: the :class:`Answer` record and the question check.

It lives below both users — :mod:`medmllm.assistant` (``ask``/``chat``) and
:mod:`medmllm.rag.answer` (grounded answers) — so neither imports the other for its types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medmllm.errors import InvalidRequestError
from medmllm.models.generator import Usage


@dataclass
class Answer:
    """One answered question, as printed by ``medmllm ask --json``."""

    question: str
    answer: str
    model: str
    backend: str
    usage: Usage
    latency_s: float
    ttft_s: float | None = None
    finish_reason: str = "stop"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "model": self.model,
            "backend": self.backend,
            "usage": self.usage.to_dict(),
            "latency_s": round(self.latency_s, 4),
            "ttft_s": None if self.ttft_s is None else round(self.ttft_s, 4),
            "finish_reason": self.finish_reason,
            **self.extra,
        }


def check_question(question: str) -> str:
    """Reject empty or whitespace-only questions with a clear error."""
    if not isinstance(question, str) or not question.strip():
        raise InvalidRequestError("the question is empty", hint='ask e.g. "What is HbA1c?"')
    return question.strip()
