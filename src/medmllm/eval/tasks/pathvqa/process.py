"""PathVQA records → VQA items; an image id without extension means ``<id>.jpg``."""

from __future__ import annotations

from typing import Any


def process_row(row: dict[str, Any], index: int) -> dict[str, Any]:
    """Map one PathVQA record; closed questions are those answered yes/no."""
    image = str(row["image"])
    if "." not in image.rsplit("/", 1)[-1]:
        image += ".jpg"
    answer = str(row["answer"])
    closed = answer.strip().lower() in ("yes", "no")
    return {
        "id": str(row.get("id", index)),
        "question": row["question"],
        "answer": answer,
        "image": image,
        "meta": {"answer_type": "CLOSED" if closed else "OPEN"},
    }
