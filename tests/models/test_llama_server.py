"""The one llama.cpp server starter: clear errors when it cannot start."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from medmllm.errors import BackendConnectionError, MissingDependencyError
from medmllm.models import llama_server


def test_missing_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match="llama-cpp-python") as info:
        llama_server.start_llama_server("model.gguf")
    assert "medmllm[edge]" in (info.value.hint or "")


def test_server_that_exits_reports_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    # an interpreter that exits at once stands in for a server that crashes on start
    monkeypatch.setattr(llama_server.sys, "executable", "false")
    with pytest.raises(BackendConnectionError, match="did not start"):
        llama_server.start_llama_server(tmp_path / "x.gguf", log_path=tmp_path / "log.txt")
