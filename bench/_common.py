"""Shared plumbing for benchmarks: atomic JSON results (the stamp is medmllm.provenance's)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def environment(packages: list[str] | None = None) -> dict[str, Any]:
    """:func:`medmllm.provenance.environment` (the one version/commit stamp), plus ``packages``."""
    from medmllm.provenance import environment as stamp

    return stamp(extra=tuple(packages or ()))


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>`` atomically (temp file + rename)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / name
    fd, tmp = tempfile.mkstemp(dir=RESULTS, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, target)
    return target
