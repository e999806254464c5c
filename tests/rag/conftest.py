"""Fixtures for the rag tests: synthetic corpora and a fast stand-in for the MiniLM encoder."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from medmllm.rag.corpus import Document

DOCS = [
    (
        "asthma",
        "Asthma care",
        "Asthma causes wheezing and breathlessness. Inhaled corticosteroids "
        "reduce airway inflammation and prevent attacks.",
    ),
    (
        "diabetes",
        "Type 2 diabetes",
        "Metformin is the usual first medicine for type 2 diabetes. "
        "It lowers blood glucose and rarely causes hypoglycaemia.",
    ),
    (
        "hypertension",
        "High blood pressure",
        "Hypertension is treated with lifestyle change and "
        "medicines such as ACE inhibitors, calcium channel blockers or thiazide diuretics.",
    ),
    (
        "migraine",
        "Migraine",
        "Migraine attacks cause throbbing headache with nausea and light "
        "sensitivity. Triptans taken early relieve attacks.",
    ),
    (
        "gout",
        "Gout",
        "Gout causes sudden painful swelling of the big toe joint. Allopurinol lowers "
        "serum urate to prevent attacks.",
    ),
]


def synthetic_docs() -> list[Document]:
    """Five short, invented passages (no real patient data)."""
    return [Document(id=i, title=t, text=x, url=f"https://example.org/{i}") for i, t, x in DOCS]


@pytest.fixture()
def docs() -> list[Document]:
    return synthetic_docs()


@pytest.fixture()
def docs_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text(
        "".join(json.dumps({"id": i, "title": t, "text": x}) + "\n" for i, t, x in DOCS)
    )
    return path


class FakeEncoder:
    """Bag-of-words hashing vectors: deterministic, instant, similar texts → similar vectors."""

    model_id = "fake-encoder"
    dim = 64

    def _vec(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in re.findall(r"[a-z]{3,}", text.lower()):
            vec[int(hashlib.md5(word[:5].encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = np.linalg.norm(vec)
        return vec / norm if norm else vec

    def encode_passages(self, texts, batch_size: int = 32) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim))

    def encode_queries(self, texts) -> np.ndarray:
        return self.encode_passages(texts)

    def encode_query(self, text: str) -> np.ndarray:
        return self._vec(text)


@pytest.fixture()
def fake_encoder(monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> FakeEncoder:
    """Replace the MiniLM encoder everywhere it is looked up (dense retrieval and grounding)."""
    from medmllm.rag import embed, grounding

    encoder = FakeEncoder()
    monkeypatch.setattr(embed, "get_encoder", lambda *a, **k: encoder)
    monkeypatch.setattr(grounding, "_CACHE", grounding._VectorCache())
    return encoder
