"""ICD-10-CM code lookup and text search, over ``simple-icd-10-cm`` (ICD-10-CM April 2026).

Search ranks codes by how many query words (prefix-matched, case-folded) their description
holds, then prefers billable leaves and shorter descriptions — good enough to find candidate
codes for a coder to confirm; it is not an autocoder.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from medmllm.agent.tools.base import TOOLS, Tool
from medmllm.errors import MissingDependencyError, ToolInputError

_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"of", "the", "and", "with", "without", "in", "a", "an", "to", "or", "due", "other"}


def _cm() -> Any:
    try:
        import simple_icd_10_cm as cm  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependencyError(
            "ICD-10-CM lookup needs simple-icd-10-cm", hint="pip install simple-icd-10-cm"
        ) from None
    return cm


@functools.cache
def _catalogue() -> tuple[list[tuple[str, str, bool]], dict[str, set[int]]]:
    """(code, description, billable) rows and an inverted index word -> row numbers."""
    cm = _cm()
    rows: list[tuple[str, str, bool]] = []
    inverted: dict[str, set[int]] = {}
    for code in cm.get_all_codes(False):
        if cm.is_chapter_or_block(code):
            continue
        desc = cm.get_description(code)
        for word in set(_WORD.findall(desc.lower())):
            inverted.setdefault(word, set()).add(len(rows))
        rows.append((code, desc, bool(cm.is_leaf(code))))
    return rows, inverted


def lookup(code: str) -> dict[str, Any]:
    """Description, billable flag, parent and children of an ICD-10-CM code."""
    cm = _cm()
    raw = code.strip().upper()
    if not cm.is_valid_item(raw):
        raise ToolInputError(
            f"{code!r} is not an ICD-10-CM code",
            hint="use icd10_search with words from the diagnosis to find the code",
        )
    dotted = cm.add_dot(raw) if not cm.is_chapter_or_block(raw) else raw
    parent = cm.get_parent(raw)
    return {
        "code": dotted,
        "description": cm.get_description(raw),
        "billable": bool(cm.is_leaf(raw)),
        "parent": parent or None,
        "parent_description": cm.get_description(parent) if parent else None,
        "children": cm.get_children(raw)[:20],
        "excludes1": cm.get_excludes1(raw)[:10],
        "source": "ICD-10-CM (simple-icd-10-cm)",
    }


def search(query: str, k: int = 5) -> list[dict[str, Any]]:
    """Codes whose descriptions best match ``query``."""
    words = [w for w in _WORD.findall(query.lower()) if w not in _STOP]
    if not words:
        raise ToolInputError(f"icd10_search needs words to search for, got {query!r}")
    rows, inverted = _catalogue()
    hits: dict[int, int] = {}
    for word in words:
        matched: set[int] = set()
        for token in (t for t in inverted if t.startswith(word)):  # prefix match
            matched |= inverted[token]
        for row in matched:
            hits[row] = hits.get(row, 0) + 1
    ranked = sorted(hits, key=lambda r: (-hits[r], not rows[r][2], len(rows[r][1])))
    cm = _cm()
    return [
        {"code": cm.add_dot(rows[r][0]), "description": rows[r][1], "billable": rows[r][2]}
        for r in ranked[:k]
    ]


def _lookup_tool(arguments: dict[str, Any]) -> dict[str, Any]:
    code = arguments.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ToolInputError("icd10_lookup needs 'code', e.g. 'E11.9'")
    return lookup(code)


def _search_tool(arguments: dict[str, Any]) -> dict[str, Any]:
    query = arguments.get("query")
    if not isinstance(query, str):
        raise ToolInputError("icd10_search needs 'query', the diagnosis in words")
    k = arguments.get("k", 5)
    if not isinstance(k, int) or not 1 <= k <= 20:
        raise ToolInputError(f"icd10_search 'k' must be an integer 1-20, got {k!r}")
    return {"results": search(query, k), "source": "ICD-10-CM (simple-icd-10-cm)"}


TOOLS.register(
    "icd10_lookup",
    Tool(
        "icd10_lookup",
        "Look up an ICD-10-CM code: description, billable or not, parent, children.",
        {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "ICD-10-CM code, e.g. E11.9"}},
            "required": ["code"],
            "additionalProperties": False,
        },
        _lookup_tool,
    ),
)
TOOLS.register(
    "icd10_search",
    Tool(
        "icd10_search",
        "Find ICD-10-CM codes for a diagnosis described in words.",
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Diagnosis in words."},
                "k": {"type": "integer", "description": "How many codes (1-20).", "default": 5},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        _search_tool,
    ),
)
