"""Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1 (one helper: tests, benchmarks).

The ``openai`` backend talks to any OpenAI-compatible server; on one machine the quickest such
server is ``python -m llama_cpp.server`` over a GGUF file (``medmllm[edge]``). The server is
started with the current interpreter, its log goes to a file (an unread pipe fills up and
blocks the server), and :func:`start_llama_server` returns once ``/v1/models`` answers.

Example:
    >>> from medmllm.models.llama_server import llama_server
    >>> with llama_server(resolve_model_path(None)) as server:  # doctest: +SKIP
    ...     gen = load_generator("openai", base_url=server.base_url)
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from medmllm.errors import BackendConnectionError, MissingDependencyError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaServer:
    """A running server: its process, URL and log file."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    _log: IO[bytes]

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the server (kill it if it does not exit in ``timeout`` s); idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if not self._log.closed:
            self._log.close()


def start_llama_server(
    model_path: str | Path,
    *,
    n_ctx: int = 2048,
    port: int | None = None,
    log_path: str | Path | None = None,
    timeout_s: float = 120.0,
    extra_args: tuple[str, ...] = (),
) -> LlamaServer:
    """Start ``python -m llama_cpp.server`` on 127.0.0.1 and wait until it answers.

    Raises:
        MissingDependencyError: llama-cpp-python is not installed.
        BackendConnectionError: the server exited or did not answer within ``timeout_s``
            (the message carries the end of its log).
    """
    if importlib.util.find_spec("llama_cpp") is None:
        raise MissingDependencyError(
            "the llama.cpp server needs llama-cpp-python", hint="pip install 'medmllm[edge]'"
        )
    import httpx

    port = port or free_port()
    if log_path is None:
        log_path = Path(tempfile.mkdtemp(prefix="medmllm-llama-server-")) / "server.log"
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        *extra_args,
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = LlamaServer(process, f"http://127.0.0.1:{port}/v1", log_path, log)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{server.base_url}/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            tail = server.log_tail()
            server.stop()
            raise BackendConnectionError(
                f"llama_cpp.server on port {port} did not start within {timeout_s:.0f} s: {tail}",
                hint="check the model path and that llama-cpp-python[server] is installed",
            )
        time.sleep(0.3)


@contextmanager
def llama_server(model_path: str | Path, **options: object) -> Iterator[LlamaServer]:
    """:func:`start_llama_server` as a context manager that always stops the server."""
    server = start_llama_server(model_path, **options)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
