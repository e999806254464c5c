"""PubMedQA rows → yes/no/maybe items (the options are fixed; the abstract is the context)."""

from __future__ import annotations

from typing import Any

OPTIONS = {"A": "yes", "B": "no", "C": "maybe"}
LETTER = {v: k for k, v in OPTIONS.items()}


def from_hub(row: dict[str, Any], index: int) -> dict[str, Any]:
    """``qiaojin/PubMedQA`` (pqa_labeled) row → the local row schema."""
    return {
        "pmid": str(row.get("pubid", index)),
        "question": row["question"],
        "contexts": list(row["context"]["contexts"]),
        "final_decision": row["final_decision"],
    }


def process_row(row: dict[str, Any], index: int) -> dict[str, Any]:
    """Map one PubMedQA row; ``final_decision`` is the gold label."""
    decision = str(row["final_decision"]).strip().lower()
    return {
        "id": str(row.get("pmid", row.get("id", index))),
        "question": row["question"],
        "context": " ".join(row["contexts"]),
        "options": OPTIONS,
        # An unknown label is passed through so that the loader reports it with its row number.
        "answer": LETTER.get(decision, decision),
    }
