"""The ``openai`` backend against small local servers: timeouts, retries, concurrency, batching.

A fake OpenAI-compatible server (stdlib ``http.server``) scores every character of an echoed
prompt -0.1, so a continuation's log-likelihood is -0.1 x its length: exact expectations.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from medmllm.errors import BackendConnectionError
from medmllm.models.generator import LoglikelihoodRequest, load_generator
from tests.engines import free_port


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.fail_next: list[int] = []  # statuses to answer before succeeding
        self.delay = 0.0
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.prompts_per_call: list[int] = []
        self.accept_lists = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict | str, content_type: str = "application/json") -> None:
        data = body if isinstance(body, str) else json.dumps(body)
        raw = data.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def do_POST(self) -> None:
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            status = srv.fail_next.pop(0) if srv.fail_next else 200
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            time.sleep(srv.delay)
            if status != 200:
                self._send(status, {"error": {"message": f"fake {status}"}})
            elif self.path.endswith("/completions") and "chat" not in self.path:
                self._completions(body)
            else:
                self._chat(body)
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _completions(self, body: dict) -> None:
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        if not self.server.accept_lists:
            prompts = prompts[:1]  # like servers that only read the first prompt
        self.server.prompts_per_call.append(len(prompts))
        choices = []
        for i, prompt in enumerate(prompts):
            logprobs = {
                "tokens": list(prompt),
                "text_offset": list(range(len(prompt))),
                "token_logprobs": [None] + [-0.1] * (len(prompt) - 1),
                "top_logprobs": None,
            }
            choices.append(
                {"index": i, "text": prompt + "x", "logprobs": logprobs, "finish_reason": "length"}
            )
        self._send(
            200,
            {
                "id": "c",
                "object": "text_completion",
                "created": 0,
                "model": "fake",
                "choices": choices,
            },
        )

    def _chat(self, body: dict) -> None:
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "fake",
            "choices": [{"index": 0, "delta": {"content": "B"}, "finish_reason": "stop"}],
        }
        self._send(200, f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n", "text/event-stream")


@pytest.fixture()
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def silent_url() -> Iterator[str]:
    """A server that accepts TCP connections (kernel backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()


QUESTION = [{"role": "user", "content": "Which option?"}]


def test_silent_server_fails_within_the_timeout(silent_url):
    started = time.monotonic()
    with pytest.raises(BackendConnectionError, match=r"no answer .* within 1 s \(GET /models\)"):
        load_generator("openai", base_url=silent_url, timeout=1)
    gen = load_generator("openai", "served", base_url=silent_url, timeout=1)
    with pytest.raises(BackendConnectionError, match="within 1 s") as err:
        gen.chat(QUESTION, max_tokens=4)
    assert "--timeout" in (err.value.hint or "")
    assert time.monotonic() - started < 6  # two calls of 1 s each, no retries


def test_cli_timeout_gives_one_error_line(silent_url):
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "medmllm.cli.main",
            "ask",
            "What is HbA1c?",
            "--backend",
            "openai",
            "--base-url",
            silent_url,
            "--model",
            "m",
            "--timeout",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "within 1 s" in errors[0], result.stderr
    assert time.monotonic() - started < 60  # process start-up included


def test_refused_connection_fails_fast_even_with_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(BackendConnectionError, match="cannot reach"):
        load_generator("openai", base_url=url, max_retries=5, backoff_s=1.0)
    assert time.monotonic() - started < 1.0


def test_429_and_5xx_are_retried_with_backoff(server):
    gen = load_generator("openai", base_url=server.url, backoff_s=0.01)
    server.fail_next = [429, 503, 500]
    assert gen.chat(QUESTION, max_tokens=2).text == "B"
    assert gen.retries == 3


def test_4xx_is_not_retried_and_retries_run_out(server):
    gen = load_generator("openai", base_url=server.url, backoff_s=0.01, max_retries=2)
    server.fail_next = [400]
    with pytest.raises(BackendConnectionError, match="answered 400"):
        gen.chat(QUESTION, max_tokens=2)
    assert gen.retries == 0
    server.fail_next = [503, 503, 503]
    with pytest.raises(BackendConnectionError, match=r"answered 503 .* after 3 attempts"):
        gen.chat(QUESTION, max_tokens=2)


def _requests(n: int) -> list[LoglikelihoodRequest]:
    return [
        LoglikelihoodRequest(f"Question {i}: ?\nAnswer:", f" {'ABCD'[i % 4]}") for i in range(n)
    ]


def test_scoring_batches_prompts_and_bounds_concurrency(server):
    server.delay = 0.05
    gen = load_generator("openai", base_url=server.url, concurrency=3, prompts_per_request=4)
    scores = gen.loglikelihood(_requests(40))
    assert scores == pytest.approx([-0.2] * 40)  # " A": two characters at -0.1
    assert server.prompts_per_call[1:] == [4] * 10  # after the one-prompt alignment probe
    assert 2 <= server.max_in_flight <= 3


def test_servers_that_ignore_list_prompts_fall_back_to_one_per_call(server):
    server.accept_lists = False
    gen = load_generator("openai", base_url=server.url, prompts_per_request=4)
    assert gen.loglikelihood(_requests(6)) == pytest.approx([-0.2] * 6)
    assert not gen._list_prompts


def test_eval_gen_mode_runs_chats_concurrently(server, tmp_path):
    from medmllm.eval.runner import EvalOptions, run_eval
    from medmllm.eval.task import Task

    data = tmp_path / "q.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {"id": str(i), "question": f"Q{i}?", "options": {"A": "a", "B": "b"}, "answer": "B"}
            )
            + "\n"
            for i in range(12)
        )
    )
    task_file = tmp_path / "task.yaml"
    task_file.write_text(
        f"name: conc\noutput_type: multiple_choice\ndataset:\n  path: {data}\n"
        'prompt:\n  template: "{{ question }}\\n{{ options_text }}\\nAnswer:"\n'
        "metrics: [accuracy]\n"
    )
    server.delay = 0.1
    gen = load_generator("openai", base_url=server.url, concurrency=4)
    res = run_eval(
        [Task.from_file(task_file)],
        gen,
        EvalOptions(mode="gen", concurrency=4),
        cache_path=":memory:",
        report=False,
    )
    assert res["tasks"]["conc"]["metrics"]["accuracy"]["value"] == 1.0
    assert server.max_in_flight == 4
