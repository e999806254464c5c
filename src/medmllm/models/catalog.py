"""What models can be used right now: embedded packages, cached conversions, backends."""

from __future__ import annotations

import importlib.util
from typing import Any

from medmllm.config import get_settings
from medmllm.models.defaults import DEFAULT_MODEL, EMBEDDED_MODELS, INSTALL_DEFAULT
from medmllm.models.generator import BACKENDS, default_backend

# What each backend needs beyond the core install (import name, pip spec).
_BACKEND_NEEDS = {
    "hf": ("transformers", "medmllm"),
    "llamacpp": ("llama_cpp", "medmllm[edge]"),
    "openai": ("openai", "medmllm"),
}


def backend_status() -> list[dict[str, Any]]:
    rows = []
    for name in BACKENDS.names():
        module, extra = _BACKEND_NEEDS.get(name, (None, None))
        ok = module is None or importlib.util.find_spec(module) is not None
        rows.append({"name": name, "available": ok, "install": f"pip install '{extra}'"})
    return rows


def list_models() -> dict[str, Any]:
    """Embedded models (installed or not), converted-weight caches and backend availability."""
    settings = get_settings()
    rows: list[dict[str, Any]] = []
    for name, spec in EMBEDDED_MODELS.items():
        installed = spec.is_installed()
        rows.append(
            {
                "name": name,
                "kind": "embedded GGUF",
                "description": spec.description,
                "licence": spec.licence,
                "backends": ["llamacpp", "hf"],
                "installed": installed,
                "install": INSTALL_DEFAULT,
                "location": str(spec.path()) if installed else None,
                "default": name == DEFAULT_MODEL,
            }
        )
    cache = settings.home.expanduser() / "cache" / "hf"
    if cache.is_dir():
        for folder in sorted(p for p in cache.iterdir() if (p / "config.json").is_file()):
            rows.append(
                {
                    "name": folder.name,
                    "kind": "converted HF weights (cache)",
                    "description": "dequantised from GGUF for the hf backend",
                    "licence": "",
                    "backends": ["hf"],
                    "installed": True,
                    "location": str(folder),
                    "default": False,
                }
            )
    return {"models": rows, "backends": backend_status(), "default_backend": default_backend()}
