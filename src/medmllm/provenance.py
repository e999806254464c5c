"""Provenance stamp: package versions, git commit, machine and load, recorded with every result.

One owner for this plumbing: eval results, training runs, experiments and benchmarks all call
:func:`environment` so that their JSON files are comparable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_DISTS = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "llama_cpp_python",
    "sentence-transformers",
    "numpy",
    "scipy",
    "scikit-learn",
    "sacrebleu",
    "nltk",
    "rouge-score",
    "lm_eval",
)


def config_hash(payload: Any) -> str:
    """A short stable hash of a JSON-able config (sorted keys): the identity of a run."""
    import hashlib
    import json

    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def environment(extra: Sequence[str] = ()) -> dict[str, Any]:
    """Versions, git commit, date and machine facts recorded with every result.

    Args:
        extra: more distributions whose versions matter to this result (e.g. ``("bm25s",)``).
    """
    import platform
    import subprocess
    from importlib import metadata

    from medmllm import __version__

    versions = {"medmllm": __version__, "python": platform.python_version()}
    for dist in dict.fromkeys((*_DISTS, *extra)):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    commit = None
    try:
        repo = Path(__file__).resolve().parents[2]
        proc = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if proc.returncode == 0:
            commit = proc.stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            commit += "-dirty" if dirty.stdout.strip() else ""
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "git_commit": commit,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def cpu_seconds() -> float:
    """User + system CPU time of this process so far: the cost figure of a run on a shared
    machine, where wall time measures the other jobs as much as this one."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
