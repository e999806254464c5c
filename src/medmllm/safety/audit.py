"""An append-only JSONL audit log without PHI: who (hashed), what (de-identified), how it went.

One line per answered request: time, hashed user, route, model, latency, the de-identified
prompt, citations, grounding score, crisis flag and status. Lines are written by the standard
library's :class:`~logging.handlers.RotatingFileHandler` (rotation by size, ``audit.jsonl.1`` …)
with an ``fsync`` after every record, so an acknowledged request is on disk even if the machine
loses power. Each record carries the SHA-256 of the previous one (``prev``), so a deleted or
edited line breaks the chain (:func:`verify_chain`). Users are pseudonymised with a keyed hash
under the site's secret salt (:mod:`medmllm.safety.salt`); an empty salt is refused, because an
unsalted hash of a user name or staff id is reversed by hashing the staff list.

Example:
    >>> from medmllm.safety.audit import AuditLog
    >>> log = AuditLog("audit/audit.jsonl")  # salted with the site salt  # doctest: +SKIP
    >>> log.record(user="dr.wong", prompt="<NAME> has chest pain")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from medmllm.errors import ConfigError
from medmllm.safety.salt import resolve_salt


class AuditConfig(BaseModel):
    """Where and how the audit log is written."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="The JSONL file (rotated copies get .1, .2 … suffixes).")
    max_bytes: int = Field(10_000_000, ge=1_000, description="Rotate when the file passes this.")
    backups: int = Field(20, ge=1, description="Rotated files kept.")
    salt: str | None = Field(
        None,
        description="Secret mixed into user hashes; None: the site salt (MEDMLLM_HASH_SALT or "
        "generated once under MEDMLLM_HOME). An empty or short salt is refused.",
    )
    fsync: bool = Field(True, description="fsync after every record (durable, slower).")


class _FsyncRotatingHandler(RotatingFileHandler):
    """RotatingFileHandler that forces each record to disk."""

    def __init__(self, *args: Any, fsync: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fsync = fsync

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if self._fsync and self.stream is not None:
            self.stream.flush()
            os.fsync(self.stream.fileno())


def hash_user(user: str | None, salt: str) -> str | None:
    """A stable pseudonym for a user or API key (16 hex digits of a salted SHA-256)."""
    if not salt:
        raise ConfigError(
            "refusing to hash a user without a salt (it could be reversed from a staff list)",
            hint="pass the site salt: medmllm.safety.salt.site_salt()",
        )
    if not user:
        return None
    return hashlib.sha256(f"{salt}\x00user\x00{user}".encode()).hexdigest()[:16]


class AuditLog:
    """The audit trail of one process (thread-safe).

    Args:
        path: the JSONL file, or an :class:`AuditConfig`.
        **options: other :class:`AuditConfig` fields.

    Callers pass *de-identified* text; the log never sees raw prompts (the guard scrubs them).
    """

    def __init__(self, path: str | Path | AuditConfig, **options: Any) -> None:
        self.config = path if isinstance(path, AuditConfig) else AuditConfig(path=path, **options)
        self._salt = resolve_salt(self.config.salt)  # before any file is touched
        self.config.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._prev = _last_hash(self.config.path)
        self._logger = logging.getLogger(f"medmllm.audit.{id(self)}")
        self._logger.propagate = False  # never into the app's ordinary logs
        self._logger.setLevel(logging.INFO)
        handler = _FsyncRotatingHandler(
            self.config.path,
            maxBytes=self.config.max_bytes,
            backupCount=self.config.backups,
            encoding="utf-8",
            fsync=self.config.fsync,
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._handler = handler
        self._logger.addHandler(handler)

    def record(
        self,
        *,
        user: str | None = None,
        prompt: str = "",
        model: str = "",
        route: str = "ask",
        latency_s: float | None = None,
        citations: list[Any] | None = None,
        grounding: float | None = None,
        crisis: bool = False,
        status: int | str = "ok",
        **extra: Any,
    ) -> dict[str, Any]:
        """Append one record (``prompt`` must already be de-identified); returns it."""
        entry: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "user": hash_user(user, self._salt),
            "route": route,
            "model": model,
            "latency_s": None if latency_s is None else round(latency_s, 4),
            "prompt": prompt,
            "citations": citations or [],
            "grounding": grounding,
            "crisis": crisis,
            "status": status,
            **extra,
        }
        with self._lock:
            entry["prev"] = self._prev
            line = json.dumps(entry, ensure_ascii=False, sort_keys=True, default=str)
            self._logger.info(line)
            self._prev = _sha(line)
        return entry

    def close(self) -> None:
        with self._lock:
            self._logger.removeHandler(self._handler)
            self._handler.close()


def _sha(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _last_hash(path: Path) -> str | None:
    """Hash of the last line already in the file (the chain continues across restarts)."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 65536))
        lines = [ln for ln in fh.read().splitlines() if ln.strip()]
    return _sha(lines[-1].decode("utf-8")) if lines else None


def read_audit(path: str | Path) -> list[dict[str, Any]]:
    """All records, oldest first, across rotated files (``.N`` … ``.1``, then the live file)."""
    path = Path(path)
    rotated = sorted(
        path.parent.glob(path.name + ".*"),
        key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
    )
    out: list[dict[str, Any]] = []
    for part in [*rotated, path]:
        if part.is_file():
            out += [json.loads(ln) for ln in part.read_text("utf-8").splitlines() if ln.strip()]
    return out


def verify_chain(path: str | Path) -> bool:
    """Whether every record's ``prev`` is the hash of the record before it."""
    path = Path(path)
    rotated = sorted(
        path.parent.glob(path.name + ".*"),
        key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
    )
    prev: str | None = None
    first = True
    for part in [*rotated, path]:
        if not part.is_file():
            continue
        for line in part.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            if not first and entry.get("prev") != prev:
                return False
            first = False
            prev = _sha(line)
    return True
