"""Answer extraction from messy generations; no answer → None (counted invalid)."""

from __future__ import annotations

import pytest

from medmllm.eval.extract import extract, extract_free, extract_letter, extract_yesno

OPTS = {"A": "Cingulum", "B": "Mamelons", "C": "Incisal edge", "D": "Incisal ridge"}


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        ("B. Mamelons", "B"),
        ("(C)", "C"),
        ("The answer is D.", "D"),
        ("Let's think. A seems wrong... so the final answer is (C).", "C"),
        ("Answer: b", "B"),
        ("I think it is Mamelons.", "B"),
        ("It is the incisal ridge", "D"),
        ("a lot of reasons exist", None),
        ("I don't know", None),
        ("", None),
        ("The answer is E", None),
    ],
)
def test_extract_letter(text: str, letter: str | None) -> None:
    assert extract_letter(text, OPTS) == letter


def test_extract_yesno() -> None:
    opts = {"A": "yes", "B": "no", "C": "maybe"}
    assert extract_yesno("No, it does not.", opts) == "B"
    assert extract_yesno("Evidence is mixed; the answer is maybe.", opts) == "C"
    assert extract_yesno("Unclear.", opts) is None


def test_extract_free_and_dispatch() -> None:
    assert extract_free("Answer: right lung\nmore") == "right lung"
    assert extract("free", "  \n", None) is None
    assert extract("letter", "C", OPTS) == "C"
