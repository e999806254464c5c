"""One owner per piece of plumbing: version stamp, server starter, top-k, error formatter."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

from medmllm.errors import ConfigError
from medmllm.provenance import environment
from medmllm.rag.ranking import top_k
from medmllm.validation import config_error, validation_message

REPO = Path(__file__).resolve().parents[1]
CODE = [
    p
    for d in ("src", "bench", "tests")
    for p in (REPO / d).rglob("*.py")
    if p != Path(__file__).resolve()
]


def _files_with(pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return sorted(str(p.relative_to(REPO)) for p in CODE if rx.search(p.read_text()))


def test_one_version_and_commit_stamp() -> None:
    assert _files_with(r"def environment\(") == [
        "bench/_common.py",  # a thin wrapper over medmllm.provenance
        "src/medmllm/provenance.py",
    ]
    assert _files_with(r"rev-parse") == ["src/medmllm/provenance.py"]
    env = environment(extra=("pytest",))
    assert env["versions"]["pytest"] and env["date"] and "git_commit" in env


def test_one_llama_server_starter() -> None:
    assert _files_with(r"\"llama_cpp\.server\",") == ["src/medmllm/models/llama_server.py"]


def test_one_top_k() -> None:
    assert _files_with(r"np\.(arg)?partition\(") == ["src/medmllm/rag/ranking.py"]


def test_top_k_matches_a_stable_sort() -> None:
    rng = np.random.default_rng(0)
    for n, k in [(50, 5), (7, 7), (7, 20), (1, 1), (0, 3)]:
        scores = rng.integers(0, 5, size=n).astype(float)  # many ties
        expected = np.argsort(-scores, kind="stable")[:k]
        assert top_k(scores, k).tolist() == expected.tolist()


def test_one_validation_error_formatter() -> None:
    assert _files_with(r"\.errors\(\)") == ["src/medmllm/validation.py"]

    class Cfg(BaseModel):
        model_config = ConfigDict(extra="forbid")
        k: int = Field(1, ge=1, description="k")
        name: str = Field("x", description="name")

    with pytest.raises(Exception) as info:
        Cfg.model_validate({"k": 0, "name": 3, "typo": 1, "other": 2})
    message = validation_message(info.value)
    assert message.startswith("key 'k': Input should be greater than or equal to 1")
    assert "key 'name'" in message and "(+1 more)" in message
    err = config_error(info.value, "test config", hint="fix it")
    assert isinstance(err, ConfigError) and str(err).startswith("invalid test config: key 'k'")


def test_tests_share_one_generator_double() -> None:
    doubles = _files_with(r"def loglikelihood\(|def _loglikelihood\(")
    assert [p for p in doubles if p.startswith("tests/")] == [
        "tests/fakes.py",
        "tests/models/test_generator.py",  # EchoGenerator tests BaseGenerator itself
    ]
    assert (REPO / "tests/eval/__init__.py").is_file()
    assert [p for p in _files_with(r"sys\.path\.insert") if p.startswith("tests/")] == []
