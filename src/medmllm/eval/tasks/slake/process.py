"""SLAKE rows → VQA items; only English questions (``q_lang == "en"``) are kept."""

from __future__ import annotations

from typing import Any


def process_row(row: dict[str, Any], index: int) -> dict[str, Any] | None:
    """Map one SLAKE question; Chinese questions are filtered out."""
    if row.get("q_lang", "en") != "en":
        return None
    return {
        "id": str(row.get("qid", index)),
        "question": row["question"],
        "answer": str(row["answer"]),
        "image": row["img_name"],
        "meta": {
            "answer_type": str(row.get("answer_type", "OPEN")).upper(),
            "modality": row.get("modality"),
        },
    }
