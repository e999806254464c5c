"""VQA-RAD rows (MICCAI19-MedVQA format) → VQA items; ``answer_type`` splits closed/open."""

from __future__ import annotations

from typing import Any


def process_row(row: dict[str, Any], index: int) -> dict[str, Any]:
    """Map one VQA-RAD question; images are resolved against ``dataset.image_root``."""
    return {
        "id": str(row.get("qid", index)),
        "question": row["question"],
        "answer": str(row["answer"]),
        "image": row["image_name"],
        "meta": {
            "answer_type": str(row.get("answer_type", "OPEN")).upper(),
            "organ": row.get("image_organ"),
            # e.g. "MODALITY" or "PRES, POS": lets results be sliced per question type
            "question_type": row.get("question_type"),
        },
    }
