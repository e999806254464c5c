"""A deterministic, slow-able Generator for subprocess tests of `medmllm eval` (kill/resume).

Used as ``--backend fake_backend:FakeGenerator`` with ``tests/eval`` on PYTHONPATH. Scores are a
hash of (context, continuation), so a resumed run must reproduce them exactly; every real call
is appended to the file named by FAKE_CALL_LOG, so a test can count repeated calls.
"""

from __future__ import annotations

import hashlib
import os
import time

from medmllm.models.generator import BaseGenerator, StreamChunk, Usage


class FakeGenerator(BaseGenerator):
    backend = "fake"
    supports_images = True

    def __init__(self, model: str | None = None, **_: object) -> None:
        super().__init__(model_id=model or "fake-model")
        self.delay = float(os.environ.get("FAKE_DELAY", "0"))
        self.log = os.environ.get("FAKE_CALL_LOG")

    def _record(self, kind: str, n: int) -> None:
        if self.log:
            with open(self.log, "a", encoding="utf-8") as fh:
                fh.write(f"{kind} {n}\n")

    def _loglikelihood(self, requests):
        time.sleep(self.delay * len(requests))
        self._record("loglikelihood", len(requests))
        out = []
        for r in requests:
            digest = hashlib.sha256(f"{r.context}\x00{r.continuation}".encode()).digest()
            out.append(-int.from_bytes(digest[:4], "big") / 2**32 * 5.0)
        return out

    def _stream(self, messages, images, params):
        time.sleep(self.delay)
        self._record("chat", 1)
        digest = hashlib.sha256(messages[-1].content.encode()).hexdigest()
        letter = "ABCD"[int(digest[:2], 16) % 4]
        yield StreamChunk(f"The answer is {letter}.")
        yield StreamChunk("", finish_reason="stop", usage=Usage(10, 5))
