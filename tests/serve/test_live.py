"""A real uvicorn server: body limits, slow bodies, 429 under load, 64 streams dropped mid-way."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.serve.conftest import SlowScripted, TextScripted, live_server, make_app

pytestmark = pytest.mark.integration


def chat(text: str = "What is HbA1c?", **extra) -> dict:
    return {"model": "scripted", "messages": [{"role": "user", "content": text}], **extra}


def assert_healthy(base: str, *, idle: bool = True) -> None:
    deadline = time.monotonic() + 5
    while True:
        r = httpx.get(base + "/healthz", timeout=5)
        assert r.status_code == 200
        if not idle or r.json()["inflight"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if idle:
        assert r.json()["inflight"] == 0


def test_two_megabyte_body_is_413(tmp_path: Path) -> None:
    """FastAPI's max_body_size (fastapi>=0.164; older ones ignore or refuse it), with and without a
    Content-Length header."""
    app = make_app(TextScripted(), tmp_path, max_body_bytes=1_000_000)
    body = b'{"model": "scripted", "messages": [{"role": "user", "content": "' + b"x" * 2_000_000
    body += b'"}]}'

    def chunked() -> Iterator[bytes]:
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    with live_server(app) as base, httpx.Client(timeout=30) as client:
        headers = {"content-type": "application/json"}
        sized = client.post(base + "/v1/chat/completions", content=body, headers=headers)
        assert sized.status_code == 413
        streamed = client.post(base + "/v1/chat/completions", content=chunked(), headers=headers)
        assert streamed.status_code == 413
        assert_healthy(base)
        assert client.post(base + "/v1/chat/completions", json=chat()).status_code == 200


def test_slow_body_times_out_and_frees_the_worker(tmp_path: Path) -> None:
    app = make_app(TextScripted(), tmp_path, body_timeout_s=1.0)
    with live_server(app) as base:
        url = urlparse(base)
        sock = socket.create_connection((url.hostname, url.port), timeout=10)
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"model": '
        )
        start = time.monotonic()
        data = sock.recv(4096)
        elapsed = time.monotonic() - start
        sock.close()
        assert b" 408 " in data.split(b"\r\n", 1)[0]
        assert elapsed < 5
        assert_healthy(base)
        assert httpx.post(base + "/v1/chat/completions", json=chat(), timeout=10).status_code == 200


def test_concurrency_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    gen = SlowScripted(words=40, delay=0.05)
    with live_server(make_app(gen, tmp_path, max_inflight=1)) as base:
        with (
            httpx.Client(timeout=10) as client,
            client.stream("POST", base + "/v1/chat/completions", json=chat(stream=True)) as r,
        ):
            chunks = r.iter_bytes()  # keep a reference: a collected iterator hangs up
            next(chunks)
            busy = httpx.post(base + "/v1/chat/completions", json=chat(), timeout=10)
            assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
            for _ in chunks:
                pass
        assert_healthy(base)
        assert httpx.post(base + "/v1/chat/completions", json=chat(), timeout=10).status_code == 200


def test_64_streams_dropped_midway(tmp_path: Path) -> None:
    gen = SlowScripted(words=200, delay=0.01)
    with live_server(make_app(gen, tmp_path, max_inflight=128)) as base:
        errors: list[BaseException] = []

        def drop() -> None:
            try:
                with (
                    httpx.Client(timeout=30) as client,
                    client.stream(
                        "POST", base + "/v1/chat/completions", json=chat(stream=True)
                    ) as r,
                ):
                    assert r.status_code == 200
                    next(r.iter_bytes())  # read one event, then hang up
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=drop) for _ in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[:3]
        deadline = time.monotonic() + 60
        while (gen.active or httpx.get(base + "/healthz").json()["inflight"]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert gen.active == 0
        assert_healthy(base)
        # Streams queued behind the model were abandoned before they ran; none ran to the end.
        assert gen.closed_early <= 64
        r = httpx.post(base + "/v1/chat/completions", json=chat(), timeout=30)
        assert r.status_code == 200
