"""The FastAPI application behind ``medmllm serve``: OpenAI routes, /v1/ask, /v1/deid, web UI.

Hardening, all configurable in :class:`ServeConfig`: API keys stored as SHA-256 hashes and
compared in constant time; a request-body limit (FastAPI's ``max_body_size``: 413) and a deadline
for receiving the body (408, so a slow client cannot hold a worker); image size / pixel limits;
admission control on every route that runs a model (429 + ``Retry-After``) and one deadline per
request that also stops the model (504); CORS off unless origins are listed; /docs, /redoc and
/openapi.json off unless ``docs=True``; errors as OpenAI-style JSON without stack traces or
echoed input (prompts may hold PHI). Every answered request is audited through
:class:`~medmllm.safety.guard.Guard` (hashed user, scrubbed prompt), and with a remote backend
(or ``deidentify_model_input=True``) the model only ever receives de-identified text.

Example:
    >>> from medmllm.serve.app import ServeConfig, create_app
    >>> app = create_app(ServeConfig(api_keys=["secret"]), generator=my_generator)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi import HTTPException as FastAPIHTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from medmllm.errors import MedMLLMError, UnsupportedInputError
from medmllm.models.generator import Generator
from medmllm.safety.guard import Guard
from medmllm.serve.runtime import DeadlineError, TooBusyError
from medmllm.serve.state import (  # noqa: F401 - re-exported
    ApiError,
    ServeConfig,
    ServerState,
    error_response,
    hash_key,
    require_key,
    sse,
    sse_response,
)
from medmllm.validation import validation_message

log = logging.getLogger("medmllm.serve")

WEB_DIR = Path(__file__).with_name("web")


class _SlowBodyMiddleware:
    """Pure ASGI: a body that does not arrive within ``timeout_s`` is answered 408.

    The deadline covers only reading the request body, so a slow (or malicious) client cannot
    hold a worker; streaming responses are not affected. Size limits are FastAPI's own
    ``max_body_size`` (413).
    """

    def __init__(self, app: Any, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        done = False

        async def timed_receive() -> dict:
            nonlocal done
            if done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except TimeoutError:
                raise FastAPIHTTPException(408, "request body not received in time") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        await self.app(scope, timed_receive, send)


class _MetricsMiddleware:
    """Pure ASGI (no body buffering): request counts and latency by route template."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def tracking_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "other")
            self.state.requests.labels(path, str(status[0])).inc()
            self.state.latency.labels(path).observe(time.perf_counter() - start)


# -- app --------------------------------------------------------------------------------------
def create_app(
    config: ServeConfig | None = None,
    *,
    generator: Generator,
    guard: Guard | None = None,
) -> FastAPI:
    """Build the application around one generator (from ``load_generator``)."""
    config = config or ServeConfig()
    guard = guard or Guard(config.guard)
    state = ServerState(config, generator, guard)
    log.info(
        "model input is %s", "de-identified" if state.scrubs_model_input else "sent as written"
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(guard.warm_up, generator)
        yield
        # The audit log stays open: every record is already fsync'd, and an app may restart.
        state.runner.shutdown()

    app = FastAPI(
        lifespan=lifespan,
        max_body_size=config.max_body_bytes,
        docs_url="/docs" if config.docs else None,
        redoc_url="/redoc" if config.docs else None,
        openapi_url="/openapi.json" if config.docs else None,
        title="medmllm",
        version="1",
        description="OpenAI-compatible medical LLM server with grounding, de-identification and "
        "crisis safety.",
    )
    app.state.medmllm = state

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.kind, exc.headers or None)

    @app.exception_handler(TooBusyError)
    async def _busy(request: Request, exc: TooBusyError) -> JSONResponse:
        return error_response(
            429, "server busy, retry shortly", "rate_limit_error", {"Retry-After": "1"}
        )

    @app.exception_handler(DeadlineError)
    async def _deadline(request: Request, exc: DeadlineError) -> JSONResponse:
        return error_response(504, "request timed out", "timeout_error")

    @app.exception_handler(UnsupportedInputError)
    async def _unsupported(request: Request, exc: UnsupportedInputError) -> JSONResponse:
        return error_response(400, str(exc), "invalid_request_error")

    @app.exception_handler(MedMLLMError)
    async def _medmllm(request: Request, exc: MedMLLMError) -> JSONResponse:
        return error_response(400, str(exc), "invalid_request_error")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo the input (it may hold PHI): location and message only.
        problems = validation_message(exc, limit=5, quote_keys=False)
        return error_response(400, "invalid request: " + problems, "invalid_request_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        return error_response(exc.status_code, detail, kind)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s: %s", request.url.path, type(exc).__name__)
        return error_response(500, "internal server error", "server_error")

    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        )

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        """Liveness and load."""
        return {
            "status": "ok",
            "model": state.model_name,
            "inflight": state.runner.inflight,
            "max_inflight": state.runner.max_inflight,
        }

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus metrics."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)

    from medmllm.serve.openai_api import build_router
    from medmllm.serve.routes import build_medmllm_router

    app.include_router(build_router(state), dependencies=[Depends(require_key)])
    app.include_router(build_medmllm_router(state), dependencies=[Depends(require_key)])

    if config.web_ui and WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")

    app.add_middleware(_MetricsMiddleware, state=state)
    app.add_middleware(_SlowBodyMiddleware, timeout_s=config.body_timeout_s)
    return app
