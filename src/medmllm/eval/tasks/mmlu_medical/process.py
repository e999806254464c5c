"""MMLU CSV rows (question, A, B, C, D, answer) → items; the subject comes from the file name."""

from __future__ import annotations

from typing import Any


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
