"""MMLU CSV rows (question, A, B, C, D, answer) → items; the subject comes from the file name."""

from __future__ import annotations

from typing import Any


def from_hub(row: dict[str, Any], index: int) -> dict[str, Any]:
    """``cais/mmlu`` row (``choices`` list, ``answer`` 0-3) → the CSV row schema."""
    return {
        "question": row["question"],
        **{letter: str(text) for letter, text in zip("ABCD", row["choices"], strict=True)},
        "answer": "ABCD"[int(row["answer"])],
        "_source": f"{row.get('_source') or row.get('subject', '')}_test",
    }


def process_row(row: dict[str, Any], index: int) -> dict[str, Any]:
    """Map one MMLU row; ``_source`` is the CSV stem, e.g. ``anatomy_test``."""
    subject = str(row.get("_source", "")).removesuffix("_test").removesuffix("_dev")
    return {
        "id": f"{subject}-{index}",
        "question": row["question"],
        "options": {letter: row[letter] for letter in "ABCD"},
        "answer": row["answer"].strip(),
        "meta": {"subject": subject},
    }
