"""The site's secret salt for every keyed hash: audit pseudonyms, ``hash`` PHI, surrogate seeds.

An unsalted (or publicly known) salt makes those hashes reversible by enumeration: there are
only 10^9 SSNs, a few million MRNs and ~40,000 birth dates, so ``sha256(value)`` of each can be
tabulated in minutes. Every hash in medmllm therefore takes a secret salt, resolved here:

1. ``MEDMLLM_HASH_SALT`` when set (at least :data:`MIN_SALT_CHARS` characters), e.g. from the
   hospital's secret store, shared by every machine of the site;
2. else the file ``$MEDMLLM_HOME/secrets/hash_salt``: generated once (256 random bits) with mode
   0600 in a 0700 folder and reused by every later run, so hashes stay stable across runs.

An explicit empty or short salt is refused (:class:`~medmllm.errors.ConfigError`), as is a salt
file that other users can read.

Example:
    >>> from medmllm.safety.salt import site_salt
    >>> salt = site_salt()  # env, else the site's file (created on first use)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from medmllm.config import Settings, get_settings
from medmllm.errors import ConfigError

SALT_ENV = "MEDMLLM_HASH_SALT"
MIN_SALT_CHARS = 16


def salt_path(settings: Settings | None = None) -> Path:
    """Where the generated site salt lives: ``$MEDMLLM_HOME/secrets/hash_salt``."""
    settings = settings or get_settings()
    return settings.home.expanduser() / "secrets" / "hash_salt"


def check_salt(salt: str, source: str) -> str:
    """``salt`` if it is long enough to be a secret, else a :class:`ConfigError` naming it."""
    if len(salt.strip()) < MIN_SALT_CHARS:
        n = len(salt.strip())
        what = "empty" if not n else f"only {n} character{'s' if n > 1 else ''} long"
        raise ConfigError(
            f"the hash salt from {source} is {what}; hashes with a missing or short salt can be "
            "reversed by enumerating SSNs, MRNs and dates",
            hint=f"set {SALT_ENV} to a secret of at least {MIN_SALT_CHARS} characters (e.g. "
            f"`python -c 'import secrets; print(secrets.token_hex(32))'`), or unset it to use "
            "the site salt generated under MEDMLLM_HOME",
        )
    return salt.strip()


def site_salt(settings: Settings | None = None) -> str:
    """The site's salt: ``MEDMLLM_HASH_SALT``, else the salt file (generated on first use)."""
    settings = settings or get_settings()
    if settings.hash_salt is not None:
        return check_salt(settings.hash_salt.get_secret_value(), f"${SALT_ENV}")
    path = salt_path(settings)
    if not path.exists():
        _generate(path)
    return _read(path)


def resolve_salt(salt: str | None) -> str:
    """An explicit salt (checked), or the site's salt when ``salt`` is None."""
    return site_salt() if salt is None else check_salt(salt, "the configuration")


def _generate(path: Path) -> None:
    """Write a new random salt with mode 0600; a salt another process wrote first wins."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # atomic and never replaces: two first runs agree on one salt
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> str:
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"the site salt {path} is readable by other users (mode {mode:o})",
                hint=f"run `chmod 600 {path}`",
            )
    return check_salt(path.read_text(encoding="ascii"), str(path))
