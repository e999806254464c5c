"""The spine's shape: typed interfaces (no Any, no getattr for capabilities), no import circles."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from medmllm.assistant import Assistant
from medmllm.eval.cache import CachedGenerator, CallCache
from medmllm.eval.runner import Evaluator, run_eval
from medmllm.models.generator import Generator
from medmllm.rag.answer import answer
from medmllm.rag.index import Index
from medmllm.rag.retriever import Retriever
from tests.fakes import FakeGenerator

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "medmllm"


def test_generator_protocol_carries_what_callers_use() -> None:
    members = typing.get_type_hints(Generator)
    assert {"backend", "model_id", "supports_images"} <= set(members)
    for method in ("chat", "stream", "loglikelihood", "close"):
        assert callable(getattr(Generator, method))
    fake = FakeGenerator(supports_images=True)
    assert isinstance(fake, Generator)
    cached = CachedGenerator(fake, CallCache(None))
    assert isinstance(cached, Generator) and cached.supports_images is True


def test_retriever_protocol_is_met_by_an_index() -> None:
    assert callable(Retriever.search)
    assert isinstance(Index.__new__(Index), Retriever)


@pytest.mark.parametrize(
    ("fn", "param", "expected"),
    [
        (Assistant.__init__, "generator", Generator),
        (Assistant.__init__, "retriever", Retriever | None),
        (run_eval, "generator", Generator),
        (run_eval, "retriever", Retriever | None),
        (Evaluator.__init__, "retriever", Retriever | None),
        (CachedGenerator.__init__, "generator", Generator),
        (answer, "generator", Generator),
        (answer, "index", Retriever),
    ],
)
def test_consumers_are_typed_against_the_protocols(fn, param, expected) -> None:
    assert typing.get_type_hints(fn)[param] == expected


def test_no_capability_read_with_getattr() -> None:
    offenders = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if 'getattr(generator, "' in p.read_text() or '"supports_images"' in p.read_text()
    ]
    assert offenders == []


def test_no_type_checking_back_imports() -> None:
    """Shared types live below their users: no ``if TYPE_CHECKING:`` import of our own modules.

    (A type-only import of a heavy third-party library, e.g. transformers, is fine.)
    """
    import ast

    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                for sub in ast.walk(node):
                    if (
                        isinstance(sub, ast.ImportFrom)
                        and (sub.level or (sub.module or "").startswith("medmllm"))
                    ) or (
                        isinstance(sub, ast.Import)
                        and any(a.name.startswith("medmllm") for a in sub.names)
                    ):
                        offenders.append(path.name)
    assert offenders == []


def test_no_import_circles() -> None:
    data = os.environ.get("MEDMLLM_SHARED_DATA")
    shared = Path(data).parent if data else REPO.parent / "shared"
    hook = shared / "hooks" / "import_cycles.py"
    if not hook.is_file():
        msg = f"import-cycle checker not found at {hook}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    out = subprocess.run(
        [sys.executable, str(hook), str(REPO / "src")], capture_output=True, text=True, check=True
    )
    assert out.stdout == ""


def test_importing_the_package_in_any_order_works() -> None:
    """The assistant uses rag helpers and rag.answer uses the assistant: no partial imports."""
    for first in ("medmllm.assistant", "medmllm.rag", "medmllm.rag.answer", "medmllm.eval.bias"):
        code = f"import {first}; import medmllm, medmllm.rag, medmllm.eval.runner"
        subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
