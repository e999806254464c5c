"""Guard: crisis replies instead of answers, PHI scrubbed from audit and eval cache."""

from __future__ import annotations

from pathlib import Path

from medmllm.eval.cache import CachedGenerator
from medmllm.safety.guard import DeidCallCache, Guard, GuardConfig

PHI = ["John Smith", "12345678", "617-555-1234", "03/04/1956"]
QUESTION = "John Smith (MRN 12345678, DOB 03/04/1956, tel 617-555-1234) has chest pain. Why?"


def test_check_flags_crisis_and_gives_reply() -> None:
    guard = Guard()
    verdict = guard.check("I want to kill myself")
    assert verdict.blocked and "988" in (verdict.reply or "")
    assert not guard.check("What is HbA1c?").blocked
    off = Guard(GuardConfig(crisis_check=False))
    assert not off.check("I want to kill myself").blocked


def test_audit_is_scrubbed(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    guard = Guard(GuardConfig(audit_path=path, salt="guard-test-salt-0123456789"))
    entry = guard.audit(prompt=QUESTION, user="dr.wong", model="m", latency_s=0.1)
    guard.close()
    text = path.read_text()
    assert entry is not None and "<NAME>" in entry["prompt"]
    for value in [*PHI, "dr.wong"]:
        assert value not in text


def test_protect_scrubs_model_input_when_configured(scripted_generator) -> None:
    local = scripted_generator(replies=["ok"])
    assert Guard().protect(local) is local  # a local model sees the text as written
    assert Guard(GuardConfig(deidentify_model_input=False)).protect(local) is local
    guard = Guard(GuardConfig(deidentify_model_input=True))
    wrapped = guard.protect(local)
    assert guard.protect(wrapped) is wrapped  # idempotent: never scrubbed twice
    wrapped.chat(
        [{"role": "system", "content": "Note: " + QUESTION}, {"role": "user", "content": QUESTION}]
    )
    ((_, messages, _),) = local.calls
    seen = " ".join(m.content for m in messages)
    assert all(v not in seen for v in PHI) and "<NAME>" in seen


def test_remote_backends_are_scrubbed_by_default() -> None:
    from medmllm.models.backends.openai import OpenAIGenerator

    remote = OpenAIGenerator(model="hosted", base_url="http://127.0.0.1:9/v1")
    assert Guard().scrubs_model_input(remote)
    assert not Guard(GuardConfig(deidentify_model_input=False)).scrubs_model_input(remote)


def test_deid_call_cache_stores_no_phi(tmp_path: Path, scripted_generator) -> None:
    db = tmp_path / "calls.sqlite"
    gen = scripted_generator(replies=["Mr. John Smith (MRN 12345678) should call 617-555-1234."])
    cache = DeidCallCache(db, Guard())
    model = CachedGenerator(gen, cache)
    first = model.chat([{"role": "user", "content": QUESTION}])
    assert "John Smith" in first.text  # the caller gets the real reply
    again = model.chat([{"role": "user", "content": QUESTION}])
    assert "John Smith" not in again.text and "<NAME>" in again.text
    cache.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for value in PHI:
        assert value.encode() not in raw


def test_warm_up_loads_the_analyzer_only_when_every_turn_is_scrubbed(tmp_path: Path) -> None:
    """A server with an audit log builds the PHI analyzer at start-up, not in a user's request."""

    class Spy:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def analyze(self, text: str) -> list:
            self.calls.append(text)
            return []

    quiet, audited = Spy(), Spy()
    Guard(GuardConfig(), deidentifier=quiet).warm_up()  # type: ignore[arg-type]
    guard = Guard(GuardConfig(audit_path=tmp_path / "a.jsonl"), deidentifier=audited)  # type: ignore[arg-type]
    guard.warm_up()
    guard.close()
    assert quiet.calls == [] and len(audited.calls) == 1
