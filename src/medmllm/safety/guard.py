"""The guard around every question: crisis check before the model, PHI-free audit after it.

:class:`Guard` is what the ask flow (:class:`~medmllm.assistant.Assistant`), the server and the
eval cache share:

* :meth:`Guard.check` — the crisis verdict on a user turn, and the safe-messaging reply to send
  *instead of* a model answer when it is flagged;
* :meth:`Guard.scrub` — PHI removed (type tags by default) from anything that will be stored;
* :meth:`Guard.protect` — the generator wrapped so that the model sees scrubbed text only
  (:class:`~medmllm.safety.scrub.ScrubbingGenerator`);
* :meth:`Guard.audit` — one audit record with the hashed user and the scrubbed prompt;
* :class:`DeidCallCache` — an eval call cache that stores model outputs de-identified.

What the model sees (``deidentify_model_input``): by default (``None``) the original text for a
model on this machine (it never leaves the site, and names and dates can matter clinically) and
scrubbed text for a backend that sends it to another server (``openai``: a hosted API, or vLLM
elsewhere); ``True`` scrubs for every backend, ``False`` for none.

Example:
    >>> from medmllm.safety.guard import Guard, GuardConfig
    >>> guard = Guard(GuardConfig(audit_path="audit/audit.jsonl"))  # doctest: +SKIP
    >>> verdict = guard.check("I want to end my life")  # doctest: +SKIP
    >>> verdict.reply  # safe-messaging text with crisis lines  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from medmllm.eval.cache import CallCache
from medmllm.models.generator import Generator
from medmllm.safety.audit import AuditConfig, AuditLog
from medmllm.safety.crisis import CrisisConfig, CrisisDetector, CrisisResult
from medmllm.safety.phi import Deidentifier, Operator
from medmllm.safety.scrub import ScrubbingGenerator

log = logging.getLogger(__name__)


class GuardConfig(BaseModel):
    """What the guard does around each request."""

    model_config = ConfigDict(extra="forbid")

    audit_path: Path | None = Field(None, description="Audit JSONL file; None: no audit log.")
    audit_max_bytes: int = Field(10_000_000, ge=1_000, description="Rotate the audit log here.")
    salt: str | None = Field(
        None,
        description="Secret for user and PHI hashes; None: the site salt (MEDMLLM_HASH_SALT or "
        "generated once under MEDMLLM_HOME). Empty or short: refused.",
    )
    scrub_operator: Operator = Field(
        "tag", description="How PHI is removed from stored text: mask | tag | hash | surrogate."
    )
    crisis: CrisisConfig = Field(
        default_factory=CrisisConfig, description="Crisis detection and its resources."
    )
    crisis_check: bool = Field(True, description="Check user turns for self-harm / violence.")
    deidentify_model_input: bool | None = Field(
        None,
        description="Send the model de-identified text: None = only when the backend sends it "
        "to another server (openai), True = always, False = never.",
    )


@dataclass(frozen=True)
class Verdict:
    """The guard's decision on one user turn."""

    crisis: CrisisResult
    reply: str | None  # the safe-messaging reply to send instead of a model answer

    @property
    def blocked(self) -> bool:
        return self.reply is not None


class Guard:
    """PHI scrub + crisis check + audit, shared by the ask flow, the server and evaluation.

    Args:
        config: see :class:`GuardConfig`.
        classifier: an optional generator the crisis detector asks about unflagged turns.
        deidentifier: a ready :class:`Deidentifier` (else built from the config, lazily).
    """

    def __init__(
        self,
        config: GuardConfig | None = None,
        *,
        classifier: Generator | None = None,
        deidentifier: Deidentifier | None = None,
    ) -> None:
        self.config = config or GuardConfig()
        self.detector = CrisisDetector(self.config.crisis, classifier=classifier)
        self._deid = deidentifier
        self._deid_lock = threading.Lock()
        self.audit_log = (
            AuditLog(
                AuditConfig(
                    path=self.config.audit_path,
                    max_bytes=self.config.audit_max_bytes,
                    salt=self.config.salt,
                )
            )
            if self.config.audit_path is not None
            else None
        )

    @property
    def deidentifier(self) -> Deidentifier:
        with self._deid_lock:
            if self._deid is None:
                self._deid = Deidentifier(
                    operator=self.config.scrub_operator, salt=self.config.salt
                )
            return self._deid

    def warm_up(self, generator: Generator | None = None) -> None:
        """Load the PHI analyzer (spaCy + Presidio, seconds) now when this configuration scrubs
        every turn (an audit log, or model input to ``generator``), not in the first request."""
        scrubs_input = generator is not None and self.scrubs_model_input(generator)
        if self.audit_log is not None or scrubs_input:
            self.deidentifier.analyze("warm-up")

    def scrubs_model_input(self, generator: Generator) -> bool:
        """Whether :meth:`protect` scrubs what ``generator`` receives (see the module doc)."""
        if isinstance(generator, ScrubbingGenerator):
            return True
        if self.config.deidentify_model_input is not None:
            return self.config.deidentify_model_input
        from medmllm.models.backends.openai import OpenAIGenerator

        return isinstance(generator, OpenAIGenerator)

    def protect(self, generator: Generator) -> Generator:
        """``generator`` wrapped so that the model receives de-identified text, when this
        configuration scrubs its input; else ``generator`` itself. Idempotent."""
        if isinstance(generator, ScrubbingGenerator) or not self.scrubs_model_input(generator):
            return generator
        return ScrubbingGenerator(generator, self.scrub)

    def check(self, text: str) -> Verdict:
        """Crisis verdict on one user turn; ``reply`` is set when the model must not answer."""
        if not self.config.crisis_check:
            return Verdict(CrisisResult(flagged=False), None)
        result = self.detector.detect(text)
        return Verdict(result, self.detector.reply(result) if result.flagged else None)

    def scrub(self, text: str) -> str:
        """``text`` with PHI removed (for logs, audit, caches)."""
        if not text:
            return text
        return self.deidentifier.deidentify(text).text

    def audit(
        self,
        *,
        prompt: str,
        user: str | None = None,
        model: str = "",
        route: str = "ask",
        latency_s: float | None = None,
        citations: list[Any] | None = None,
        grounding: float | None = None,
        crisis: CrisisResult | None = None,
        status: int | str = "ok",
        **extra: Any,
    ) -> dict[str, Any] | None:
        """Write one audit record; the prompt is scrubbed here, never stored raw."""
        if self.audit_log is None:
            return None
        return self.audit_log.record(
            user=user,
            prompt=self.scrub(prompt),
            model=model,
            route=route,
            latency_s=latency_s,
            citations=citations,
            grounding=grounding,
            crisis=bool(crisis and crisis.flagged),
            crisis_level=crisis.level if crisis else "none",
            status=status,
            **extra,
        )

    def close(self) -> None:
        if self.audit_log is not None:
            self.audit_log.close()


class DeidCallCache(CallCache):
    """An eval call cache that de-identifies generated text before storing it.

    Keys are already SHA-256 hashes of the requests (prompts are never stored); this also keeps
    PHI a model may repeat out of the cached replies.
    """

    def __init__(self, path: str | Path | None, guard: Guard) -> None:
        super().__init__(path)
        self.guard = guard

    def put_many(self, kind: str, items: dict[str, Any]) -> None:
        if kind == "chat":
            items = {
                k: {**v, "text": self.guard.scrub(v["text"])} if isinstance(v, dict) else v
                for k, v in items.items()
            }
        super().put_many(kind, items)
