"""The starter knowledge pack ships with the package and indexes on a fresh machine."""

from __future__ import annotations

import json

from medmllm.rag.index import open_index
from medmllm.rag.starter import build_starter_index, starter_path


def test_pack_has_40_referenced_passages() -> None:
    rows = [json.loads(line) for line in starter_path().read_text().splitlines()]
    assert len(rows) >= 40
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert row["text"].strip() and row["title"].strip()
        assert row["reference"].strip() and row["url"].startswith("https://")


def test_starter_index_builds_and_finds_topics(isolated_home) -> None:
    report = build_starter_index(kind="bm25", progress=False)
    assert report.doc_count >= 40
    hits = open_index("starter").search("asthma attack what to do", k=3)
    assert hits[0].doc_id == "asthma-attack" and hits[0].source.startswith("https://")
