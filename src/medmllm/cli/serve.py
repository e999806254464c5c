"""``medmllm serve``: the OpenAI-compatible API + web UI (uvicorn)."""

from __future__ import annotations

from pathlib import Path

import typer

KEY_FILE_OPT = typer.Option(
    None, "--api-key-file", help="File of SHA-256 key hashes, one per line."
)
AUDIT_OPT = typer.Option(None, "--audit", help="Audit log JSONL (no PHI).")
CORS_OPT = typer.Option(
    [], "--cors-origin", help="Allowed browser origin (repeatable; default: none)."
)


def serve(
    backend: str | None = typer.Option(None, "--backend", "-b", help="hf, llamacpp or openai."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model id/path (default: embedded)."
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Bind address; a non-loopback one (0.0.0.0) needs API keys or --insecure.",
    ),
    port: int = typer.Option(8000, "--port", "-p", help="Port."),
    name: str = typer.Option("", "--name", help="Model name in /v1/models (default: model id)."),
    api_key_env: str = typer.Option(
        "MEDMLLM_API_KEYS", "--api-key-env", help="Env var with comma-separated API keys."
    ),
    api_key_file: Path | None = KEY_FILE_OPT,
    index: str | None = typer.Option(None, "--index", "-i", help="Index for /v1/ask (RAG)."),
    audit: Path | None = AUDIT_OPT,
    max_inflight: int = typer.Option(32, "--max-inflight", help="Requests at once; more get 429."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds per request (504 after)."),
    max_body: int = typer.Option(8_000_000, "--max-body", help="Largest request body, bytes."),
    max_tokens_limit: int = typer.Option(
        2048, "--max-tokens-limit", help="Most tokens one request may ask for (every route)."
    ),
    cors_origin: list[str] = CORS_OPT,
    no_web: bool = typer.Option(False, "--no-web", help="Do not serve the web UI."),
    docs: bool = typer.Option(
        False, "--docs", help="Serve /docs, /redoc and /openapi.json (public; off by default)."
    ),
    scrub_phi: bool | None = typer.Option(
        None,
        "--scrub-phi/--no-scrub-phi",
        help="De-identify every prompt before the model sees it (default: only for the openai "
        "backend, whose text leaves this machine).",
    ),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="Allow a non-loopback --host without API keys (refused otherwise).",
    ),
    hash_key: str | None = typer.Option(
        None, "--hash-key", help="Print the SHA-256 of this key (for --api-key-file) and exit."
    ),
) -> None:
    """Serve the model over an OpenAI-compatible API with a web UI, PHI-safe audit and limits.

    Audit user pseudonyms and hashed PHI use the site salt: MEDMLLM_HASH_SALT, or a secret
    generated once under MEDMLLM_HOME/secrets (mode 0600).
    """
    from medmllm.serve.app import ServeConfig
    from medmllm.serve.app import hash_key as _hash

    if hash_key is not None:
        typer.echo(_hash(hash_key))
        return
    import os

    from medmllm.safety.guard import GuardConfig
    from medmllm.serve.server import keys_from_env, read_key_hashes
    from medmllm.serve.server import serve as run

    config = ServeConfig(
        model_name=name,
        api_keys=keys_from_env(api_key_env),
        api_key_hashes=read_key_hashes(api_key_file) if api_key_file else [],
        max_inflight=max_inflight,
        request_timeout_s=timeout,
        max_body_bytes=max_body,
        max_tokens_limit=max_tokens_limit,
        cors_origins=cors_origin,
        index=index,
        web_ui=not no_web,
        docs=docs,
        guard=GuardConfig(audit_path=audit, deidentify_model_input=scrub_phi),
    )
    base_url = os.environ.get("OPENAI_BASE_URL")
    run(
        config,
        backend=backend,
        model=model,
        host=host,
        port=port,
        insecure=insecure,
        **({"base_url": base_url} if backend == "openai" and base_url else {}),
    )


def register(app: typer.Typer) -> None:
    """Add ``medmllm serve``."""
    app.command("serve")(serve)
