"""The starter knowledge pack: short passages the project wrote, each citing a public guideline.

It exists so that ``medmllm ask --index starter`` and ``make demo`` work on a fresh machine with
no data. It is a summary for demonstration, not clinical guidance: each passage names the public
guideline it paraphrases in its ``url``/``reference`` so that readers check the source.
"""

from __future__ import annotations

from pathlib import Path

from medmllm.rag.index import BuildReport, build_index

STARTER_INDEX = "starter"


def starter_path() -> Path:
    """The pack's JSONL file (inside the installed package)."""
    return Path(__file__).with_name("knowledge.jsonl")


def build_starter_index(
    name: str = STARTER_INDEX, *, kind: str = "hybrid", progress: bool = True
) -> BuildReport:
    """(Re)build the starter pack as index ``name`` (idempotent: unchanged text costs nothing)."""
    from medmllm.rag.corpus import load_corpus
    from medmllm.rag.retriever import RetrieverConfig

    docs, _ = load_corpus(starter_path(), "jsonl", source_field="reference")
    return build_index(
        name,
        docs,
        retriever=RetrieverConfig(kind=kind),
        rebuild=True,
        sources=[str(starter_path())],
        progress=progress,
    )
