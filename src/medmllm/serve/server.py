"""Run the app with uvicorn: the library function behind ``medmllm serve``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medmllm.errors import ConfigError
from medmllm.serve.app import ServeConfig, create_app


def read_key_hashes(path: str | Path) -> list[str]:
    """SHA-256 hex digests, one per line (``#`` comments allowed); see ``--hash-key``."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    hashes = [ln.split("#", 1)[0].strip().lower() for ln in lines]
    hashes = [h for h in hashes if h]
    bad = [
        h[:8] + "…" for h in hashes if len(h) != 64 or any(c not in "0123456789abcdef" for c in h)
    ]
    if bad:
        raise ConfigError(
            f"{path}: {len(bad)} line(s) are not SHA-256 hex digests ({bad[:3]})",
            hint="write one `medmllm serve --hash-key KEY` output per line",
        )
    return hashes


def keys_from_env(var: str = "MEDMLLM_API_KEYS") -> list[str]:
    """Plain keys from a comma-separated environment variable (hashed by the server)."""
    return [k.strip() for k in os.environ.get(var, "").split(",") if k.strip()]


def serve(
    config: ServeConfig,
    *,
    backend: str | None = None,
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    **generator_options: Any,
) -> None:
    """Load the generator and serve until interrupted.

    Example:
        >>> serve(ServeConfig(api_keys=["k"]), port=8000)  # doctest: +SKIP
    """
    import uvicorn

    from medmllm.models.generator import load_generator

    generator = load_generator(backend, model, **generator_options)
    app = create_app(config, generator=generator)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level,
            timeout_keep_alive=5,
            server_header=False,
            proxy_headers=True,
            forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        )
    finally:
        generator.close()
