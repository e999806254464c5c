"""What the server's routes share: config, API-key check, error shape, SSE, the state.

A module below :mod:`medmllm.serve.app` and the routers, so that they import it and not each other.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from medmllm.models.generator import Generator
from medmllm.rag.retriever import Retriever
from medmllm.safety.guard import Guard, GuardConfig
from medmllm.safety.scrub import ScrubbingGenerator
from medmllm.serve.runtime import CancellableGenerator, ModelRunner

log = logging.getLogger("medmllm.serve")


class ServeConfig(BaseModel):
    """Settings of one server process."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field("", description="Name served in /v1/models (default: the model id).")
    api_keys: list[str] = Field(
        default_factory=list, description="Plain API keys; hashed at start-up, never kept."
    )
    api_key_hashes: list[str] = Field(
        default_factory=list, description="SHA-256 hex digests of accepted API keys."
    )
    max_body_bytes: int = Field(8_000_000, ge=1_024, description="Largest request body (413).")
    body_timeout_s: float = Field(10.0, gt=0, description="Time to receive a body (408).")
    max_image_bytes: int = Field(5_000_000, ge=1_024, description="Largest decoded image.")
    max_image_pixels: int = Field(25_000_000, ge=1, description="Most pixels per image (bombs).")
    max_images: int = Field(4, ge=0, description="Images per request.")
    request_timeout_s: float = Field(120.0, gt=0, description="Deadline of one request (504).")
    max_inflight: int = Field(32, ge=1, description="Requests admitted at once; more get 429.")
    max_tokens_limit: int = Field(2048, ge=1, description="Upper bound on max_tokens.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Allowed browser origins; empty = CORS off."
    )
    index: str | None = Field(None, description="Retrieval index used by /v1/ask (None: no RAG).")
    top_k: int = Field(3, ge=1, le=20, description="Passages retrieved per /v1/ask question.")
    web_ui: bool = Field(True, description="Serve the web UI at /.")
    docs: bool = Field(
        False,
        description="Serve /docs, /redoc and /openapi.json (public, without an API key).",
    )
    guard: GuardConfig = Field(
        default_factory=GuardConfig, description="Crisis check, PHI scrubbing and audit log."
    )

    def key_hashes(self) -> list[str]:
        return [hash_key(k) for k in self.api_keys] + [h.lower() for h in self.api_key_hashes]


def check_max_tokens(state: ServerState, max_tokens: int) -> int:
    """``max_tokens`` if within the server's ``max_tokens_limit``, else a 400."""
    if max_tokens > state.config.max_tokens_limit:
        raise ApiError(
            400, f"max_tokens {max_tokens} over the limit {state.config.max_tokens_limit}"
        )
    return max_tokens


def hash_key(key: str) -> str:
    """How API keys are stored: the hex SHA-256 of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiError(Exception):
    """An error answered as OpenAI-style JSON."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", **headers: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers


def error_response(status: int, message: str, kind: str, headers: dict[str, str] | None = None):
    body = {"error": {"message": message, "type": kind, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


class ServerState:
    """What the routes share: config, the model, runner, guard, metrics.

    The model is wrapped once, here, and routes only ever see the wrapped one: every token
    checks the request's cancel token (:class:`~medmllm.serve.runtime.CancellableGenerator`),
    and when the guard scrubs model input (always, or for a remote backend by default) every
    prompt is de-identified first (:class:`~medmllm.safety.scrub.ScrubbingGenerator`).
    """

    def __init__(self, config: ServeConfig, generator: Generator, guard: Guard) -> None:
        self.config = config
        self.guard = guard
        self.scrubs_model_input = guard.scrubs_model_input(generator)  # decided on the backend
        model: Generator = CancellableGenerator(generator)
        self.generator: Generator = (
            ScrubbingGenerator(model, guard.scrub) if self.scrubs_model_input else model
        )
        self.model_name = config.model_name or generator.model_id
        self.runner = ModelRunner(config.max_inflight, config.request_timeout_s)
        self.key_hashes = config.key_hashes()
        self._retriever: Retriever | None = None
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "medmllm_requests",
            "Requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "medmllm_request_seconds", "Request latency", ["route"], registry=self.registry
        )
        self.tokens = Counter(
            "medmllm_generated_tokens", "Completion tokens generated", registry=self.registry
        )
        self.inflight = Gauge("medmllm_inflight", "Admitted requests", registry=self.registry)
        self.inflight.set_function(lambda: self.runner.inflight)
        self.crisis = Counter(
            "medmllm_crisis_flags", "Crisis-flagged turns", registry=self.registry
        )

    def retriever(self) -> Retriever | None:
        """The /v1/ask index, opened on first use (on the model thread: it may take seconds)."""
        if self.config.index is None:
            return None
        if self._retriever is None:
            from medmllm.rag.index import indexes_root, open_index
            from medmllm.rag.starter import STARTER_INDEX, build_starter_index

            if self.config.index == STARTER_INDEX and not (indexes_root() / STARTER_INDEX).exists():
                build_starter_index(progress=False)
            self._retriever = open_index(self.config.index)
        return self._retriever


# -- security ---------------------------------------------------------------------------------
def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def require_key(request: Request) -> str | None:
    """The caller's key hash (for the audit log) or 401; constant-time over every stored hash."""
    state: ServerState = request.app.state.medmllm
    if not state.key_hashes:
        return None
    key = _presented_key(request)
    if not key:
        raise ApiError(401, "missing API key (Authorization: Bearer KEY)", "authentication_error")
    digest = hash_key(key)
    ok = False
    for stored in state.key_hashes:  # no early exit: timing does not reveal which one matched
        ok |= hmac.compare_digest(digest, stored)
    if not ok:
        log.warning("rejected API key sha256:%s", digest[:12])
        raise ApiError(401, "invalid API key", "authentication_error")
    return digest


async def sse(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Server-sent events: one ``data:`` line per JSON event, then ``[DONE]``."""
    async for event in events:
        yield b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def sse_response(events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    return StreamingResponse(
        sse(events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
