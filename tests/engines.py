"""Helpers for tests that start real model engines."""

from __future__ import annotations

import importlib.util
import os
import socket

import pytest


def require_llama_cpp() -> None:
    """Skip without llama-cpp-python on a user's machine; in CI its absence is a failure."""
    if importlib.util.find_spec("llama_cpp") is None:
        msg = "llama-cpp-python not installed: pip install 'medmllm[edge]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
