"""Retrieval for a question, ``[n]`` citations and the grounding fields of a grounded answer.

Shared by :class:`medmllm.assistant.Assistant` (``ask``/``chat`` with an index) and
:func:`medmllm.rag.answer.answer`; it imports neither, so both can import it.
"""

from __future__ import annotations

import re
from typing import Any

from medmllm.errors import InvalidRequestError
from medmllm.rag.grounding import check_grounding
from medmllm.rag.retriever import Hit, Retriever

_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def retrieve(index: Retriever, question: str, k: int = 3) -> list[Hit]:
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
