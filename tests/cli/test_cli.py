"""The CLI as users run it: a subprocess, one-line errors with exit code 2, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engines import free_port, require_llama_cpp

CLI = [sys.executable, "-m", "medmllm.cli.main"]


def run(*args: str, code: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", code, *args] if code else [*CLI, *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"}
    )


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_console_script_is_installed():
    assert (Path(sys.executable).parent / "medmllm").exists()


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("medmllm ")


def test_models_lists_embedded_default():
    result = run("models", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    default = next(m for m in info["models"] if m["default"])
    assert default["name"] == "smollm2-135m-instruct" and default["installed"]
    assert default["location"].endswith(".gguf")
    assert {b["name"] for b in info["backends"]} >= {"hf", "llamacpp", "openai"}
    assert run("models").returncode == 0


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question(question):
    assert_user_error(run("ask", question), "question is empty")


def test_unknown_backend_lists_close_names():
    assert_user_error(
        run("ask", "What is HbA1c?", "--backend", "llamacp"), "Did you mean 'llamacpp'"
    )


def test_missing_model_path(tmp_path):
    missing = str(tmp_path / "nowhere.gguf")
    assert_user_error(run("ask", "What is HbA1c?", "--model", missing), "does not exist", missing)


@pytest.mark.parametrize("backend", ["llamacpp", "hf"])
def test_not_a_gguf(backend, tmp_path):
    if backend == "llamacpp":
        require_llama_cpp()
    fake = tmp_path / "notes.gguf"
    fake.write_text("these are notes, not weights")
    assert_user_error(run("ask", "What is HbA1c?", "-b", backend, "-m", str(fake)), "GGUF")


@pytest.mark.parametrize("value", ["0", "-5"])
def test_max_tokens_must_be_positive(value):
    assert_user_error(run("ask", "What is HbA1c?", "--max-tokens", value), "max_tokens")


def test_openai_unreachable_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = run("ask", "What is HbA1c?", "--backend", "openai", "--base-url", url, timeout=60)
    assert_user_error(result, "cannot reach", url)


def test_edge_extra_missing():
    code = (
        "import sys; sys.modules['llama_cpp'] = None; "
        "from medmllm.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    result = run("ask", "What is HbA1c?", "--backend", "llamacpp", code=code)
    assert_user_error(result, "medmllm[edge]")


def _ask_json(*extra: str) -> dict:
    result = run(
        "ask",
        "What is the first-line drug treatment for type 2 diabetes?",
        "--json",
        "--max-tokens",
        "48",
        *extra,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["answer"].strip()
    assert payload["usage"]["completion_tokens"] > 0
    assert payload["latency_s"] > 0
    return payload


@pytest.mark.slow
def test_ask_json_llamacpp():
    require_llama_cpp()
    payload = _ask_json("--backend", "llamacpp")
    assert payload["backend"] == "llamacpp" and payload["model"] == "smollm2-135m-instruct"


@pytest.mark.slow
def test_ask_json_hf():
    payload = _ask_json("--backend", "hf")
    assert payload["backend"] == "hf"


@pytest.mark.slow
def test_ask_json_openai(llama_server):
    payload = _ask_json("--backend", "openai", "--base-url", llama_server)
    assert payload["backend"] == "openai"


@pytest.mark.slow
def test_ask_streams_text():
    require_llama_cpp()
    result = run("ask", "What does HbA1c measure?", "--max-tokens", "24")
    assert result.returncode == 0, result.stderr
    assert "not a substitute for a clinician" in result.stdout


@pytest.mark.slow
def test_chat_multi_turn_then_exit():
    require_llama_cpp()
    proc = subprocess.run(
        [*CLI, "chat", "--max-tokens", "16"],
        input="What is asthma?\n/reset\nAnd what is COPD?\n/exit\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("assistant>") == 2
    assert "conversation cleared" in proc.stdout
