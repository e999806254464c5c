"""MedMCQA hub rows (``opa``…``opd``, ``cop`` 0-3) → the local row schema."""

from __future__ import annotations

from typing import Any

LETTERS = "ABCD"


def from_hub(row: dict[str, Any], index: int) -> dict[str, Any]:
    """``openlifescienceai/medmcqa`` row → ``{id, question, options, answer}``."""
    return {
        "id": str(row.get("id", index)),
        "question": row["question"],
        "options": {letter: row[f"op{letter.lower()}"] for letter in LETTERS},
        "answer": LETTERS[int(row["cop"])] if 0 <= int(row["cop"]) < 4 else str(row["cop"]),
    }
