"""IU-Xray annotation rows → report items; the first view is the input image."""

from __future__ import annotations

from typing import Any


def process_row(row: dict[str, Any], index: int) -> dict[str, Any]:
    """Map one IU-Xray study; the reference report is the gold answer."""
    paths = row["image_path"]
    return {
        "id": str(row.get("id", index)),
        "question": "",
        "answer": str(row["report"]),
        "image": paths[0] if isinstance(paths, list) else paths,
        "meta": {"n_views": len(paths) if isinstance(paths, list) else 1},
    }
