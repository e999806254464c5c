"""Helpers for tests that start real model engines (the starter itself is library code)."""

from __future__ import annotations

import importlib.util
import os

import pytest

from medmllm.models.llama_server import free_port

__all__ = ["free_port", "require_llama_cpp"]


def require_llama_cpp() -> None:
    """Skip without llama-cpp-python on a user's machine; in CI its absence is a failure."""
    if importlib.util.find_spec("llama_cpp") is None:
        msg = "llama-cpp-python not installed: pip install 'medmllm[edge]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
