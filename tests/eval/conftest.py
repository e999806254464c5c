"""Fixtures for eval tests: synthetic benchmark folders (images drawn at run time)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"


def _image(path: Path, shade: int = 128) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (16, 16), shade).save(path)


@pytest.fixture()
def bench_dir(tmp_path: Path) -> Path:
    """A copy of the synthetic fixtures with their images."""
    root = tmp_path / "data"
    shutil.copytree(FIXTURES, root)
    _image(root / "slake/imgs/xmlab1/source.jpg", 90)
    _image(root / "slake/imgs/xmlab2/source.jpg", 200)
    _image(root / "pathvqa/images/test_0001.jpg", 50)
    _image(root / "pathvqa/images/test_0002.jpg", 150)
    _image(root / "iuxray/images/CXR1_IM-0001/0.png", 30)
    _image(root / "iuxray/images/CXR2_IM-0002/0.png", 60)
    return root


@pytest.fixture()
def mcqa_file(tmp_path: Path) -> Path:
    """Twelve synthetic 4-option questions; gold letters A×6, B×3, C×2, D×1."""
    import json

    golds = "AAAAAABBBCCD"
    path = tmp_path / "mcqa.jsonl"
    with path.open("w") as fh:
        for i, gold in enumerate(golds):
            row = {
                "id": f"q{i}",
                "question": f"A {30 + i}-year-old man has synthetic symptom {i}. Best next step?",
                "options": {k: f"option {k}{i}" for k in "ABCD"},
                "answer": gold,
            }
            fh.write(json.dumps(row) + "\n")
    return path
