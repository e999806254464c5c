"""A closed server: admission on every model route, deadlines that stop the model, token bounds,
no public API docs, no unauthenticated non-loopback bind."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from medmllm.errors import ConfigError
from medmllm.serve.app import ServeConfig
from medmllm.serve.server import check_exposure, is_loopback
from tests.serve.conftest import Endless, TextScripted, make_app

QUESTION = "What is HbA1c?"

# Every route that runs a model (or the PHI model), with a valid body.
MODEL_ROUTES = [
    (
        "/v1/chat/completions",
        {"model": "scripted", "messages": [{"role": "user", "content": "Hi"}]},
    ),
    ("/v1/completions", {"model": "scripted", "prompt": "Hi", "max_tokens": 4}),
    ("/v1/ask", {"question": QUESTION}),
    ("/v1/agent", {"question": "BMI of a 70 kg man, 175 cm tall?"}),
    ("/v1/apps/mental_health", {"message": "I feel stressed about exams"}),
    ("/v1/deid", {"text": "John Smith, MRN 12345678"}),
]


@pytest.mark.parametrize(("route", "body"), MODEL_ROUTES, ids=[r for r, _ in MODEL_ROUTES])
def test_every_model_route_is_admitted(tmp_path: Path, route: str, body: dict) -> None:
    gen = TextScripted()
    app = make_app(gen, tmp_path, max_inflight=1)
    with TestClient(app) as c:
        held = app.state.medmllm.runner.admit()  # the one slot is taken
        r = c.post(route, json=body)
        assert r.status_code == 429, r.text
        assert r.headers["retry-after"] == "1"
        held.release()
        assert c.post(route, json=body).status_code == 200


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/completions", {"model": "scripted", "prompt": "Hi", "max_tokens": 8}),
        ("/v1/apps/mental_health", {"message": "I feel stressed about exams"}),
        ("/v1/agent", {"question": "BMI of a 70 kg man, 175 cm tall?"}),
        ("/v1/ask", {"question": QUESTION}),
    ],
    ids=["completions", "apps", "agent", "ask"],
)
def test_deadline_stops_the_model(tmp_path: Path, route: str, body: dict) -> None:
    """A generation that would never end is stopped at the deadline; the model thread is free."""
    gen = Endless()
    with TestClient(make_app(gen, tmp_path, request_timeout_s=1.0)) as c:
        r = c.post(route, json=body)
        assert r.status_code == 504, r.text
        assert gen.stopped.wait(60), "the generator was never told to stop"
        gen.words = 2  # the next request gets a short, finite reply
        again = c.post("/v1/chat/completions", json=MODEL_ROUTES[0][1])
        assert again.status_code == 200, again.text  # the model thread is not stuck
        assert c.get("/healthz").json()["inflight"] == 0


def test_one_deadline_for_all_prompts_of_a_completion(tmp_path: Path) -> None:
    """32 prompts that each fit the deadline but not together: 504, and generation stops."""
    gen = Endless(words=40, delay=0.01)  # each prompt ~0.4 s; 32 of them ~13 s
    with TestClient(make_app(gen, tmp_path, request_timeout_s=2.0)) as c:
        r = c.post(
            "/v1/completions",
            json={"model": "scripted", "prompt": [f"Q{i}" for i in range(32)], "max_tokens": 64},
        )
        assert r.status_code == 504, r.text
        assert gen.stopped.wait(60)
    assert gen.finished < 32


def test_ask_is_bounded_by_max_tokens_limit(tmp_path: Path) -> None:
    with TestClient(make_app(TextScripted(), tmp_path, max_tokens_limit=64)) as c:
        r = c.post("/v1/ask", json={"question": QUESTION, "max_tokens": 65})
        assert r.status_code == 400 and "64" in r.json()["error"]["message"]
        assert c.post("/v1/ask", json={"question": QUESTION, "max_tokens": 64}).status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_api_docs_are_off_by_default(tmp_path: Path, path: str) -> None:
    with TestClient(make_app(TextScripted(), tmp_path, web_ui=False)) as c:
        assert c.get(path).status_code == 404
    with TestClient(make_app(TextScripted(), tmp_path, web_ui=False, docs=True)) as c:
        assert c.get(path).status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("medmllm.hospital.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_non_loopback_host_needs_keys_or_insecure(caplog: pytest.LogCaptureFixture) -> None:
    check_exposure(ServeConfig(), "127.0.0.1")
    check_exposure(ServeConfig(api_keys=["k-123456"]), "0.0.0.0")
    with pytest.raises(ConfigError, match="API keys") as err:
        check_exposure(ServeConfig(), "0.0.0.0")
    assert err.value.hint is not None and "--insecure" in err.value.hint
    with caplog.at_level(logging.WARNING, logger="medmllm.serve"):
        check_exposure(ServeConfig(), "0.0.0.0", insecure=True)
    assert "WITHOUT API KEYS" in caplog.text


def test_cli_refuses_open_bind_before_loading_the_model(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MEDMLLM_API_KEYS"}
    res = subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", "serve", "--host", "0.0.0.0", "--port", "9"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert res.returncode == 2, res.stderr
    assert "error:" in res.stderr and "API keys" in res.stderr and "--insecure" in res.stderr
    assert "Traceback" not in res.stderr
