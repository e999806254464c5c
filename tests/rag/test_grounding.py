"""Grounding check: the contract evaluation relies on, sentence splitting, real-model behaviour."""

from __future__ import annotations

import pytest

from medmllm.rag.grounding import (
    DEFAULT_THRESHOLD,
    GroundingResult,
    SentenceSupport,
    check_grounding,
    split_sentences,
)

PASSAGES = [
    "Metformin is the usual first medicine for type 2 diabetes. It lowers blood glucose.",
    "Asthma inhalers with corticosteroids reduce airway inflammation.",
]


def test_split_sentences() -> None:
    text = "First claim here [1]. Second one? Yes!\n- a list item\nLast (ok)."
    assert split_sentences(text) == [
        "First claim here [1].",
        "Second one?",
        "Yes!",
        "a list item",
        "Last (ok).",
    ]


def test_contract_shape_and_ranges(fake_encoder) -> None:
    result = check_grounding(
        "Metformin lowers blood glucose in type 2 diabetes [1]. Zebras sing opera on Mars.",
        PASSAGES,
    )
    assert isinstance(result, GroundingResult) and 0.0 <= result.score <= 1.0
    assert all(isinstance(s, SentenceSupport) for s in result.sentences)
    first, second = result.sentences
    assert first.supported and first.best_passage == 0 and 0 <= first.support <= 1
    assert not second.supported and result.score == 0.5
    assert result.unsupported == [second]
    assert result.threshold == DEFAULT_THRESHOLD


def test_threshold_and_edge_cases(fake_encoder) -> None:
    strict = check_grounding("Metformin lowers blood glucose.", PASSAGES, threshold=1.01)
    assert strict.score == 0.0
    assert check_grounding("", PASSAGES).score == 1.0  # nothing claimed
    none = check_grounding("Metformin lowers blood glucose.", [])
    assert none.score == 0.0 and none.sentences[0].best_passage is None


@pytest.mark.slow
def test_real_minilm_separates_supported_from_unsupported() -> None:
    result = check_grounding(
        "Metformin is usually the first drug for type 2 diabetes. "
        "Asthma is cured permanently by antibiotics taken for one day.",
        PASSAGES,
    )
    supported, unsupported = result.sentences
    assert supported.supported and supported.support > unsupported.support
    assert not unsupported.supported
