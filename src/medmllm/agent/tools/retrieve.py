"""A tool that searches a retrieval index (``medmllm.rag``) and returns numbered passages."""

from __future__ import annotations

from typing import Any

from medmllm.agent.tools.base import Tool
from medmllm.errors import ToolInputError
from medmllm.rag.retriever import Retriever


def retrieval_tool(index: Retriever, *, name: str = "search_corpus", max_chars: int = 600) -> Tool:
    """Wrap an index or retriever (anything with ``search(query, k)``) as an agent tool."""

    def run(arguments: dict[str, Any]) -> dict[str, Any]:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolInputError(f"{name} needs 'query', a search phrase; got {query!r}")
        k = arguments.get("k", 3)
        if not isinstance(k, int) or not 1 <= k <= 10:
            raise ToolInputError(f"{name} 'k' must be an integer 1-10, got {k!r}")
        hits = index.search(query, k)
        return {
            "passages": [
                {
                    "n": i,
                    "text": h.chunk.text[:max_chars],
                    "source": h.source,
                    "doc_id": h.doc_id,
                    "score": round(h.score, 4),
                }
                for i, h in enumerate(hits, 1)
            ]
        }

    return Tool(
        name,
        "Search the medical reference corpus; returns numbered passages to cite as [n].",
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look up."},
                "k": {"type": "integer", "description": "Passages to return (1-10).", "default": 3},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        run,
        group="retrieval",
    )
