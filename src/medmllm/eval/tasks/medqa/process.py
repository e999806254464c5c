"""MedQA hub rows (``options``, ``answer_idx``) → the local row schema."""

from __future__ import annotations

from typing import Any


def from_hub(row: dict[str, Any], index: int) -> dict[str, Any]:
    """``GBaker/MedQA-USMLE-4-options`` row → ``{id, question, options, answer}``."""
    return {
        "id": str(row.get("id", index)),
        "question": row["question"],
        "options": dict(row["options"]),
        "answer": str(row["answer_idx"]).strip(),
    }
