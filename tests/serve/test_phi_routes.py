"""With model-input scrubbing on, planted PHI reaches the model through no route (over HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from faker import Faker

from medmllm.safety.guard import GuardConfig
from medmllm.serve.app import create_app
from medmllm.serve.state import ServeConfig
from tests.fakes import FakeGenerator
from tests.serve.conftest import live_server

pytestmark = pytest.mark.integration


def planted(seed: int) -> tuple[dict[str, str], str]:
    """Synthetic identifiers (Faker, seeded) and a clinical question that carries them."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    values = {
        "name": fake.name(),
        "ssn": fake.ssn(),
        "mrn": fake.numerify("%######"),
        "phone": fake.numerify("(%##) %##-####"),
        "dob": fake.date_of_birth(minimum_age=30, maximum_age=80).strftime("%m/%d/%Y"),
        "email": fake.email(),
    }
    text = (
        f"Patient {values['name']} (SSN {values['ssn']}, MRN {values['mrn']}, DOB "
        f"{values['dob']}, phone {values['phone']}, email {values['email']}) has had chest "
        "pain and fever for two days. What should we do?"
    )
    return values, text


def seen_by_model(gen: FakeGenerator) -> str:
    """Every text the backend received, whatever the call."""
    parts: list[str] = []
    for call in gen.calls:
        if call[0] == "chat":
            parts += [m["content"] if isinstance(m, dict) else m.content for m in call[1]]
        else:
            parts += [f"{r.context} {r.continuation}" for r in call[1]]
    return "\n".join(parts)


def test_planted_phi_reaches_the_model_through_no_route(tmp_path: Path) -> None:
    gen = FakeGenerator(["ok"], model="scripted")
    config = ServeConfig(guard=GuardConfig(deidentify_model_input=True), web_ui=False)
    texts: dict[str, str] = {}
    values: dict[str, str] = {}
    for seed, route in enumerate(
        [
            "chat",
            "chat-stream",
            "completions",
            "ask",
            "agent",
            "apps/mental_health",
            "apps/diagnosis",
            "apps/report",
        ]
    ):
        vals, text = planted(seed)
        values.update({f"{route}:{k}": v for k, v in vals.items()})
        texts[route] = text
    chat_messages = [
        {"role": "system", "content": "Context: " + texts["chat"]},
        {"role": "user", "content": texts["chat"]},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "And the next step?"},
    ]
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("chat", "/v1/chat/completions", {"model": "scripted", "messages": chat_messages}),
        (
            "chat-stream",
            "/v1/chat/completions",
            {
                "model": "scripted",
                "stream": True,
                "messages": [{"role": "user", "content": texts["chat-stream"]}],
            },
        ),
        (
            "completions",
            "/v1/completions",
            {"model": "scripted", "prompt": [texts["completions"], "A second prompt."]},
        ),
        ("ask", "/v1/ask", {"question": texts["ask"]}),
        ("agent", "/v1/agent", {"question": texts["agent"], "max_steps": 2}),
        ("apps/mental_health", "/v1/apps/mental_health", {"message": texts["apps/mental_health"]}),
        ("apps/diagnosis", "/v1/apps/diagnosis", {"case": texts["apps/diagnosis"]}),
        ("apps/report", "/v1/apps/report", {"text": texts["apps/report"]}),
    ]
    with live_server(create_app(config, generator=gen)) as base, httpx.Client(timeout=120) as c:
        for name, path, body in requests:
            before = len(gen.calls)
            r = c.post(base + path, json=body)
            # diagnosis/report want JSON the scripted "ok" is not: 400 after the model was asked
            assert r.status_code in (200, 400), (name, r.status_code, r.text[:200])
            assert len(gen.calls) > before, f"{name}: the model was never called"
    seen = seen_by_model(gen)
    assert "<NAME>" in seen and "<SSN>" in seen  # the model got the questions, de-identified
    leaked = {key: v for key, v in values.items() if v in seen}
    last_names = {k: v.split()[-1] for k, v in values.items() if k.endswith(":name")}
    leaked.update({k: v for k, v in last_names.items() if v in seen})
    assert not leaked, leaked
