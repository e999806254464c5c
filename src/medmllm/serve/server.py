"""Run the app with uvicorn: the library function behind ``medmllm serve``.

A server bound to an address other people can reach must check who calls it: without API keys
on a non-loopback host, :func:`serve` refuses to start (``insecure=True`` overrides it, with a
warning on every start).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Any

from medmllm.errors import ConfigError
from medmllm.serve.app import ServeConfig, create_app

log = logging.getLogger("medmllm.serve")


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


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_exposure(config: ServeConfig, host: str, *, insecure: bool = False) -> None:
    """Refuse a non-loopback ``host`` without API keys, unless ``insecure`` (then warn)."""
    if is_loopback(host) or config.key_hashes():
        return
    if not insecure:
        raise ConfigError(
            f"refusing to serve on {host!r} without API keys: anyone who can reach it could "
            "use the model and read its answers",
            hint="set MEDMLLM_API_KEYS or --api-key-file, or bind 127.0.0.1 behind an "
            "authenticating proxy, or pass --insecure to accept the risk",
        )
    log.warning(
        "WARNING: serving on %s WITHOUT API KEYS (--insecure): every route, the model included, "
        "is open to anyone who can reach this address",
        host,
    )


def serve(
    config: ServeConfig,
    *,
    backend: str | None = None,
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    insecure: bool = False,
    **generator_options: Any,
) -> None:
    """Load the generator and serve until interrupted.

    Args:
        insecure: allow a non-loopback ``host`` without API keys (refused otherwise).

    Example:
        >>> serve(ServeConfig(api_keys=["k"]), host="0.0.0.0", port=8000)  # doctest: +SKIP
    """
    import uvicorn

    from medmllm.models.generator import load_generator
    from medmllm.safety.guard import Guard

    # Refusals first, before the model takes seconds to load: an open bind, a bad salt.
    check_exposure(config, host, insecure=insecure)
    guard = Guard(config.guard)

    generator = load_generator(backend, model, **generator_options)
    app = create_app(config, generator=generator, guard=guard)
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
