"""Hallucination rate: the share of generated sentences that no source supports.

When the RAG room's grounding check (:func:`medmllm.rag.grounding.check_grounding`) is
installed it is used, so ``ask`` and ``eval`` judge support the same way. Without it, a
sentence counts as supported when most of its content words occur in one source (ROUGE-1
precision from rouge-score ≥ :data:`LEXICAL_THRESHOLD`) — cruder, but it needs no model and
is stated in results.json (``hallucination_method``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

LEXICAL_THRESHOLD = 0.5
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Sentences with at least one word character (a regex split: no NLTK data needed)."""
    return [s.strip() for s in _SENTENCE.split(text or "") if re.search(r"\w", s or "")]


@lru_cache(maxsize=1)
def _rag_check() -> Any:
    try:
        from medmllm.rag.grounding import check_grounding
    except ImportError:
        return None
    return check_grounding


def method() -> str:
    """Which support check is in use: ``rag.grounding`` or ``lexical``."""
    return "rag.grounding" if _rag_check() is not None else "lexical"


@lru_cache(maxsize=1)
def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)


def unsupported_share(answer: str, sources: Sequence[str]) -> float:
    """Share of the answer's sentences not supported by any source (NaN for an empty answer)."""
    sentences = split_sentences(answer)
    if not sentences:
        return float("nan")
    check = _rag_check()
    if check is not None:
        result = check(answer, [s for s in sources if s])
        flags = [bool(s.supported) for s in result.sentences]
        return (len(flags) - sum(flags)) / len(flags) if flags else float("nan")
    scorer = _scorer()
    unsupported = 0
    for sentence in sentences:
        best = max(
            (scorer.score(src, sentence)["rouge1"].precision for src in sources if src),
            default=0.0,
        )
        unsupported += best < LEXICAL_THRESHOLD
    return unsupported / len(sentences)
