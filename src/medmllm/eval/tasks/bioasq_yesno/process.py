"""BioASQ questions → yes/no items; other question types (factoid, list, summary) are skipped."""

from __future__ import annotations

from typing import Any

OPTIONS = {"A": "yes", "B": "no"}


def process_row(row: dict[str, Any], index: int) -> dict[str, Any] | None:
    """Map one BioASQ question; ``None`` filters out non-yes/no questions."""
    if row.get("type") != "yesno":
        return None
    exact = row["exact_answer"]
    label = (exact[0] if isinstance(exact, list) else exact).strip().lower()
    snippets = [s.get("text", "") for s in row.get("snippets", [])]
    return {
        "id": str(row.get("id", index)),
        "question": row["body"],
        "context": " ".join(snippets),
        "options": OPTIONS,
        "answer": {"yes": "A", "no": "B"}.get(label, label),
    }
