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

import re
from typing import Any, Protocol

from medmllm.assistant import Answer, Assistant
from medmllm.errors import InvalidRequestError
from medmllm.models.generator import BaseGenerator
from medmllm.rag.grounding import check_grounding
from medmllm.rag.retriever import Hit

_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


class Searchable(Protocol):
    """Anything with ``search(query, k)``: an opened index or a bare retriever."""

    def search(self, query: str, k: int = 5) -> list[Hit]: ...


def retrieve(index: Searchable, question: str, k: int = 3) -> list[Hit]:
    """Top-``k`` passages for the question (one per chunk; duplicates of a chunk removed)."""
    if k < 1:
        raise InvalidRequestError(f"k must be >= 1, got {k}", hint="pass -k 3")
    return index.search(question, k)


def extract_citations(text: str, n_passages: int) -> list[int]:
    """Passage numbers cited as ``[n]`` / ``[n, m]``, in order of first use, within 1..n."""
    seen: list[int] = []
    for group in _CITE.findall(text):
        for part in re.split(r"[,;]", group):
            n = int(part.strip())
            if 1 <= n <= n_passages and n not in seen:
                seen.append(n)
    return seen


def grounded_extra(text: str, hits: list[Hit], *, threshold: float | None = None) -> dict[str, Any]:
    """The ``citations``, ``passages`` and ``grounding`` fields added to an answer.

    Citations the model wrote (``[n]``) come first with ``"by": "model"``. Small models often
    cite nothing; then each *supported* sentence's best passage is cited with
    ``"by": "grounding"`` (post-hoc attribution), so a reader still sees where the text comes from
    and unsupported sentences stay uncited. ``grounding.sentences[*].best_passage`` is a passage
    *number* (1-based, as cited).
    """
    cited = extract_citations(text, len(hits))
    checked = cited or list(range(1, len(hits) + 1))
    result = check_grounding(text, [hits[n - 1].chunk.text for n in checked], threshold=threshold)
    grounding = result.to_dict()
    for sentence in grounding["sentences"]:
        if sentence["best_passage"] is not None:
            sentence["best_passage"] = checked[sentence["best_passage"]]
    grounding["checked_passages"] = checked
    grounding["unsupported"] = [s["text"] for s in grounding["sentences"] if not s["supported"]]
    by = {n: "model" for n in cited}
    if not cited:
        for sentence in grounding["sentences"]:
            if sentence["supported"] and sentence["best_passage"] is not None:
                by.setdefault(sentence["best_passage"], "grounding")
    return {
        "citations": [
            {
                "n": n,
                "by": how,
                "doc_id": hits[n - 1].doc_id,
                "chunk_id": hits[n - 1].chunk.id,
                "title": hits[n - 1].chunk.title,
                "url": hits[n - 1].chunk.url,
                "source": hits[n - 1].source,
            }
            for n, how in by.items()
        ],
        "passages": [{"n": n, **hit.to_dict()} for n, hit in enumerate(hits, start=1)],
        "grounding": grounding,
    }


def answer(
    question: str,
    *,
    index: Searchable,
    generator: BaseGenerator,
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
    return Assistant(generator, retriever=index, k=k).ask(question, **sampling)
