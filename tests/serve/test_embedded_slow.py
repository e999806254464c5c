"""The server around the embedded model, driven by real clients (slow)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from medmllm.models.generator import BaseGenerator, LoglikelihoodRequest
from tests.serve.conftest import live_server, make_app

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def hf_generator() -> Iterator[BaseGenerator]:
    from medmllm.models.generator import load_generator

    gen = load_generator("hf")
    yield gen
    gen.close()


@pytest.fixture(scope="module")
def server(hf_generator: BaseGenerator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("serve")
    with live_server(make_app(hf_generator, tmp)) as base:
        yield base + "/v1"


def test_official_openai_client(server: str) -> None:
    import openai

    client = openai.OpenAI(base_url=server, api_key="none", max_retries=0)
    model = client.models.list().data[0].id
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is hypertension?"}],
        max_tokens=12,
        logprobs=True,
        top_logprobs=2,
    )
    assert reply.choices[0].message.content
    lps = reply.choices[0].logprobs.content
    assert lps and all(t.logprob <= 0 for t in lps) and len(lps[0].top_logprobs) == 2
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Name one symptom of anaemia."}],
        max_tokens=12,
        stream=True,
    )
    deltas = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(deltas) > 1  # really streamed, token by token
    done = client.completions.create(
        model=model, prompt="The heart has four", max_tokens=3, logprobs=1
    )
    assert done.choices[0].text and len(done.choices[0].logprobs.token_logprobs) >= 1
    echo = client.completions.create(
        model=model, prompt="1, 2, 3, 4, 5, 6", max_tokens=0, echo=True, logprobs=1
    )
    lp = echo.choices[0].logprobs
    assert echo.choices[0].text == "1, 2, 3, 4, 5, 6"
    assert lp.token_logprobs[0] is None and lp.text_offset[0] == 0
    assert sum(lp.token_logprobs[-4:]) / 4 > -2.0  # aligned: counting is predictable


def test_scrubbed_echo_scores_the_deidentified_prompt(
    hf_generator: BaseGenerator, tmp_path: Path
) -> None:
    """With --scrub-phi the model scores (and echo returns) the de-identified prompt, with
    offsets into that text; raw completion continues it."""
    from medmllm.safety.guard import GuardConfig

    prompt = "John Smith, MRN 12345678, phone 617-555-1234, has chest pain because"
    app = make_app(hf_generator, guard=GuardConfig(deidentify_model_input=True))
    with live_server(app) as base:
        r = httpx.post(
            base + "/v1/completions",
            json={
                "model": "default",
                "prompt": prompt,
                "max_tokens": 4,
                "echo": True,
                "logprobs": 0,
            },
            timeout=300,
        )
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    text, lp = choice["text"], choice["logprobs"]
    assert all(v not in text for v in ("John Smith", "12345678", "617-555-1234"))
    assert text.startswith("<NAME>, MRN <MRN>")
    for token, offset in zip(lp["tokens"], lp["text_offset"], strict=True):
        assert text[offset : offset + len(token)] == token


def test_deadline_stops_raw_generation(
    hf_generator: BaseGenerator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transformers' generate behind /v1/completions stops at the deadline (stopping criteria)
    instead of running to max_tokens on the model thread after the client got its 504."""
    import threading

    model = hf_generator.model  # type: ignore[attr-defined]
    real = model.generate
    generated: list[int] = []
    done = threading.Event()

    def spy(**kwargs):
        try:
            out = real(**kwargs)
            generated.append(out.sequences.shape[1] - kwargs["input_ids"].shape[1])
            return out
        finally:
            done.set()

    monkeypatch.setattr(model, "generate", spy)
    app = make_app(hf_generator, tmp_path, request_timeout_s=2.0)
    with live_server(app) as base:
        r = httpx.post(
            base + "/v1/completions",
            json={"model": "default", "prompt": "1, 2, 3, 4, 5, 6,", "max_tokens": 1500},
            timeout=300,
        )
        assert r.status_code == 504, r.text
        assert done.wait(900)
    assert generated and generated[0] < 1500, generated


def test_openai_backend_scores_like_local(server: str, hf_generator: BaseGenerator) -> None:
    from medmllm.models.generator import load_generator

    remote = load_generator("openai", base_url=server)
    reqs = [
        LoglikelihoodRequest("Question: Which organ produces insulin?\nAnswer:", " pancreas"),
        LoglikelihoodRequest("Question: Which organ produces insulin?\nAnswer:", " liver"),
        LoglikelihoodRequest("The capital of France is", " Paris"),
    ]
    local = hf_generator.loglikelihood(reqs)
    served = remote.loglikelihood(reqs)
    remote.close()
    for a, b in zip(local, served, strict=True):
        assert math.isclose(a, b, abs_tol=1e-3), (local, served)


@pytest.mark.heavy
@pytest.mark.timeout(2400)
def test_eval_through_server_matches_local(
    server: str, hf_generator: BaseGenerator, shared_data: Path, tmp_path: Path
) -> None:
    """`medmllm eval --backend openai` on 50 MedMCQA questions: same predictions as local."""
    import json

    from medmllm.eval.runner import EvalOptions, run_eval

    local = run_eval(["medmcqa"], hf_generator, EvalOptions(limit=50), cache_path=":memory:")
    out = tmp_path / "served"
    # --timeout 600: on a loaded host requests queue behind each other for over a minute
    cmd = [sys.executable, "-m", "medmllm.cli.main", "eval", "-t", "medmcqa", "--limit", "50",
           "-o", str(out), "--no-cache", "-q", "--backend", "openai",
           "--base-url", server, "--timeout", "600"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=2300)
    assert res.returncode == 0, res.stderr[-2000:]
    served = json.loads((out / "results.json").read_text())
    local_preds = [row.get("pred") for row in local["tasks"]["medmcqa"]["items"]]
    served_preds = [row.get("pred") for row in served["tasks"]["medmcqa"]["items"]]
    assert len(local_preds) == 50 and local_preds == served_preds
    assert httpx.get(server.removesuffix("/v1") + "/healthz").status_code == 200


def test_medmllm_serve_cli_with_api_key(tmp_path: Path) -> None:
    """`medmllm serve` as users run it; the official client streams an answer with a key."""
    import openai

    from tests.engines import free_port

    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    env = {**os.environ, "MEDMLLM_API_KEYS": "team-key-1,team-key-2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "medmllm.cli.main", "serve", "--backend", "hf", "--port",
         str(port), "--audit", str(tmp_path / "audit.jsonl"), "--no-web"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "serve.log"
            ).read_text()[-2000:]
            time.sleep(0.5)
        assert httpx.get(base + "/v1/models").status_code == 401
        client = openai.OpenAI(base_url=base + "/v1", api_key="team-key-2", max_retries=0)
        stream = client.chat.completions.create(
            model=client.models.list().data[0].id,
            messages=[{"role": "user", "content": "What is a normal resting heart rate?"}],
            max_tokens=16,
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text.strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    logged = (tmp_path / "serve.log").read_text() + (tmp_path / "audit.jsonl").read_text()
    assert "team-key" not in logged
