"""The medical assistant behind ``medmllm ask`` and ``medmllm chat``: prompt + model + answer.

Library first: the CLI only parses flags and prints what this module returns.

Example:
    >>> from medmllm import Assistant
    >>> bot = Assistant.load()  # embedded offline model  # doctest: +SKIP
    >>> bot.ask("What is the first-line drug for type 2 diabetes?").answer  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from medmllm.answers import Answer, check_question
from medmllm.models.context import pack, trim_history
from medmllm.models.generator import (
    Generator,
    ImageInput,
    Message,
    SamplingParams,
    Usage,
    load_generator,
)
from medmllm.prompts.rag import RAG_SYSTEM_PROMPT, build_rag_messages
from medmllm.prompts.system import MEDICAL_SYSTEM_PROMPT, build_messages
from medmllm.rag.citations import grounded_extra, retrieve
from medmllm.rag.retriever import Hit, Retriever
from medmllm.safety.advice import check_advice
from medmllm.safety.guard import Guard

__all__ = ["Answer", "Assistant", "check_question"]


class Assistant:
    """A generator with the medical system prompt and an optional conversation history.

    Args:
        generator: any :class:`~medmllm.models.generator.Generator`.
        system_prompt: replaces the default safety-framed medical prompt (with a retriever,
            the default becomes the grounded prompt of :mod:`medmllm.prompts.rag`).
        keep_history: remember turns (``medmllm chat``) or answer each question alone.
        retriever: any :class:`~medmllm.rag.retriever.Retriever` (an opened index too); when
            given, answers are grounded in the top-``k`` passages and carry citations and a
            grounding score.
        k: passages retrieved per question.
        guard: a :class:`~medmllm.safety.guard.Guard`: a crisis turn gets a safe-messaging reply
            instead of a model answer, every answer is audited without PHI, and the model gets
            de-identified text when the guard says so (:meth:`Guard.protect`).
        user: who asks (hashed in the audit log).
    """

    def __init__(
        self,
        generator: Generator,
        *,
        system_prompt: str | None = None,
        keep_history: bool = False,
        retriever: Retriever | None = None,
        k: int = 3,
        guard: Guard | None = None,
        user: str | None = None,
    ) -> None:
        self.generator = guard.protect(generator) if guard is not None else generator
        self.guard = guard
        self.user = user
        self.retriever = retriever
        self.k = k
        if system_prompt is None:
            system_prompt = MEDICAL_SYSTEM_PROMPT if retriever is None else RAG_SYSTEM_PROMPT
        self.system_prompt = system_prompt
        self.keep_history = keep_history
        self.history: list[Message] = []

    @classmethod
    def load(cls, backend: str | None = None, model: str | None = None, **kwargs: Any) -> Assistant:
        """Build the generator with :func:`~medmllm.models.generator.load_generator`."""
        return cls(load_generator(backend, model), **kwargs)

    def stream(
        self,
        question: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        images: Sequence[ImageInput] | None = None,
    ) -> Iterator[str | Answer]:
        """Yield text deltas, then the final :class:`Answer` (``images``: multimodal models)."""
        question = check_question(question)
        SamplingParams(max_tokens=max_tokens, temperature=temperature)  # validate before loading
        start = time.perf_counter()
        if self.guard is not None:
            verdict = self.guard.check(question)
            if verdict.reply is not None:
                yield verdict.reply
                yield self._guarded(question, verdict.reply, verdict.crisis, start)
                return
        hits: list[Hit] = []
        fitted: dict[str, int] = {}  # what was left out to fit the context window (counts)
        if self.retriever is not None:
            hits = retrieve(self.retriever, question, self.k)

            def build(kept: list[Any]) -> list[Message]:
                passages = [(h.chunk.title, h.chunk.text) for h in kept]
                return build_rag_messages(question, passages, self.history, self.system_prompt)

            fitted["history_dropped"] = self._trim(lambda _: build([]), max_tokens)
            hits, fitted["passages_dropped"] = pack(self.generator, hits, build, max_tokens)
            messages = build(hits)
        else:
            fitted["history_dropped"] = self._trim(
                lambda h: build_messages(question, h, self.system_prompt), max_tokens
            )
            messages = build_messages(question, self.history, self.system_prompt)
        ttft = None
        parts: list[str] = []
        usage, finish = Usage(), "stop"
        for chunk in self.generator.stream(
            messages, images, max_tokens=max_tokens, temperature=temperature, seed=seed
        ):
            if chunk.text:
                if ttft is None:
                    ttft = time.perf_counter() - start
                parts.append(chunk.text)
                yield chunk.text
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
        text = "".join(parts).strip()
        if self.keep_history:
            self.history += [Message("user", question), Message("assistant", text)]
        extra: dict[str, Any] = {}
        if self.retriever is not None:
            extra = grounded_extra(text, hits)
        extra.update({k: v for k, v in fitted.items() if v})
        extra["advice_check"] = check_advice(text).to_dict()
        if self.guard is not None:
            self.guard.audit(
                prompt=question,
                user=self.user,
                model=self.generator.model_id,
                latency_s=time.perf_counter() - start,
                citations=[c["n"] for c in extra.get("citations", [])],
                grounding=(extra.get("grounding") or {}).get("score"),
            )
        yield Answer(
            question=question,
            answer=text,
            model=self.generator.model_id,
            backend=self.generator.backend,
            usage=usage,
            latency_s=time.perf_counter() - start,
            ttft_s=ttft,
            finish_reason=finish,
            extra=extra,
        )

    def _trim(self, build: Any, max_tokens: int) -> int:
        """Drop the oldest turns (chat) until the prompt fits; a lone question is checked later."""
        return trim_history(self.generator, self.history, build, max_tokens)

    def _guarded(self, question: str, reply: str, crisis: Any, start: float) -> Answer:
        """The answer to a flagged turn: the safe-messaging reply, audited, never the model's."""
        assert self.guard is not None
        latency = time.perf_counter() - start
        self.guard.audit(
            prompt=question,
            user=self.user,
            model=self.generator.model_id,
            latency_s=latency,
            crisis=crisis,
            status="crisis",
        )
        return Answer(
            question=question,
            answer=reply,
            model=self.generator.model_id,
            backend=self.generator.backend,
            usage=Usage(),
            latency_s=latency,
            extra={"crisis": crisis.to_dict()},
        )

    def ask(self, question: str, **kwargs: Any) -> Answer:
        """Answer one question (see :meth:`stream` for the options)."""
        *_, final = self.stream(question, **kwargs)
        assert isinstance(final, Answer)
        return final

    def reset(self) -> None:
        """Forget the conversation."""
        self.history.clear()
