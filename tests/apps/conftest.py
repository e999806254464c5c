"""Shared fixtures for app tests: a fake index returning fixed passages."""

from __future__ import annotations

import pytest

from medmllm.rag.chunk import Chunk
from medmllm.rag.retriever import Hit

PASSAGES = [
    "Acute coronary syndrome presents with chest pain radiating to the arm; obtain an ECG within "
    "10 minutes and serial troponins.",
    "Pulmonary embolism causes pleuritic chest pain and tachycardia; use Wells score and D-dimer.",
    "Before incision, confirm antibiotic prophylaxis was given within 60 minutes.",
]


class FakeIndex:
    def __init__(self, texts: list[str] = PASSAGES) -> None:
        self.texts = texts
        self.queries: list[str] = []

    def search(self, query: str, k: int = 5) -> list[Hit]:
        self.queries.append(query)
        return [
            Hit.of(
                Chunk(id=f"d{i}#0", doc_id=f"d{i}", text=t, start=0, end=len(t), source="guide"),
                1.0 / (i + 1),
            )
            for i, t in enumerate(self.texts[:k])
        ]


@pytest.fixture()
def fake_index() -> FakeIndex:
    return FakeIndex()
