"""Grounded answering: retrieve for the question, prompt with numbered passages, cite, check.

The flow (DESIGN.md "ask"): ``search(question)`` → prompt with delimited, numbered passages →
``generator.chat`` → ``[n]`` citations parsed from the answer → grounding score per sentence
against the cited passages (all retrieved ones when the model cited none). Only the question is
used for retrieval: earlier turns would drag the search off topic.

Example:
    >>> from medmllm.rag import answer, open_index
    >>> from medmllm.models.generator import load_generator
    >>> result = answer("What is the first-line drug for type 2 diabetes?",
    ...                 index=open_index("starter"), generator=load_generator())  # doctest: +SKIP
    >>> result.extra["citations"][0]["title"]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from medmllm.answers import Answer
from medmllm.models.generator import Generator
from medmllm.rag.citations import extract_citations, grounded_extra, retrieve
from medmllm.rag.retriever import Retriever

__all__ = ["answer", "extract_citations", "grounded_extra", "retrieve"]


def answer(
    question: str,
    *,
    index: Retriever,
    generator: Generator,
    k: int = 3,
    **sampling: Any,
) -> Answer:
    """Answer ``question`` from ``index`` with ``generator``; see the module docstring.

    Args:
        question: the question (also the search query).
        index: an opened index (:func:`~medmllm.rag.index.open_index`) or a retriever.
        generator: any Generator.
        k: passages placed in the prompt.
        **sampling: ``max_tokens``, ``temperature``, ``seed``.

    Returns:
        An :class:`~medmllm.assistant.Answer` whose ``extra`` holds ``citations``, ``passages``
        and ``grounding``.
    """
    from medmllm.assistant import Assistant  # the assistant sits above rag: imported on use

    return Assistant(generator, retriever=index, k=k).ask(question, **sampling)
