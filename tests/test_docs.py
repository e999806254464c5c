"""docs/architecture.md is what README points to, and it names only files that exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCH = REPO / "docs" / "architecture.md"


def test_readme_links_the_architecture_page_not_a_file_users_lack() -> None:
    readme = (REPO / "README.md").read_text()
    assert "docs/architecture.md" in readme
    assert "../shared/DESIGN.md" not in readme


def test_architecture_names_existing_modules_and_registries() -> None:
    text = ARCH.read_text()
    src = REPO / "src" / "medmllm"
    named = set(re.findall(r"([a-z_]+(?:/[a-z_]+)*\.py)", text))
    roots = (
        src,
        src / "eval" / "tasks" / "pubmedqa",
        REPO,
        REPO / "tests",
        REPO / "tests" / "eval",
    )
    missing = [n for n in sorted(named) if not any((r / n).is_file() for r in roots)]
    assert missing == []
    for heading in ("## Rooms", "## The interfaces", "## Main flows", "## Where to add"):
        assert heading in text
    for what in ("A backend", "A retriever", "A task", "A metric"):
        assert f"**{what}.**" in text
    for registry in ("BACKENDS", "RETRIEVERS", "LOADERS", "TASKS", "METRICS", "EXPERIMENTS"):
        assert registry in text
