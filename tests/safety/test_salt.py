"""The site salt: from the environment or generated once (0600) and reused; no empty salt."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from medmllm.errors import ConfigError
from medmllm.safety.audit import AuditLog, hash_user
from medmllm.safety.phi import Deidentifier
from medmllm.safety.salt import SALT_ENV, salt_path, site_salt

SSN = "Patient SSN 123-45-6789."


@pytest.fixture()
def home(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(SALT_ENV, raising=False)
    return isolated_home


def test_generated_once_private_and_reused(home: Path) -> None:
    salt = site_salt()
    path = salt_path()
    assert path.is_relative_to(home) and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(salt) >= 32 and site_salt() == salt  # the same salt on every later run
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_concurrent_first_runs_agree_on_one_salt(home: Path) -> None:
    salts: list[str] = []
    barrier = threading.Barrier(8)

    def first_run() -> None:
        barrier.wait()
        salts.append(site_salt())

    threads = [threading.Thread(target=first_run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(salts) == 8 and len(set(salts)) == 1


def test_env_salt_wins_and_short_or_empty_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SALT_ENV, "a-site-secret-from-the-vault")
    assert site_salt() == "a-site-secret-from-the-vault"
    assert not salt_path().exists()  # nothing generated when the site gives one
    for bad in ("", "short"):
        monkeypatch.setenv(SALT_ENV, bad)
        with pytest.raises(ConfigError, match=SALT_ENV):
            site_salt()


def test_a_salt_file_others_can_read_is_refused(home: Path) -> None:
    site_salt()
    os.chmod(salt_path(), 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        site_salt()


def test_hashing_refuses_an_empty_salt(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Deidentifier(operator="hash", salt="")
    with pytest.raises(ConfigError):
        Deidentifier(operator="surrogate", salt="")
    with pytest.raises(ConfigError):
        AuditLog(tmp_path / "audit.jsonl", salt="")
    with pytest.raises(ConfigError):
        hash_user("dr.wong", "")
    assert not (tmp_path / "audit.jsonl").exists()  # refused before any file is written


def test_hashes_are_keyed_by_the_site_salt(home: Path) -> None:
    default = Deidentifier(operator="hash").deidentify(SSN).text
    assert "123-45-6789" not in default
    assert default == Deidentifier(operator="hash", salt=site_salt()).deidentify(SSN).text
    other = Deidentifier(operator="hash", salt="another-site-0123456789").deidentify(SSN).text
    assert other != default  # a different salt, a different hash: not a public lookup table
    # An unsalted SHA-256 of the SSN (what an empty salt gave) appears nowhere.
    unsalted = hashlib.sha256(b"\x00123456789").hexdigest()[:12]
    assert unsalted not in default


def test_audit_users_are_keyed_by_the_site_salt(home: Path, tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    entry = log.record(user="dr.wong", prompt="<NAME>")
    log.close()
    assert entry["user"] == hash_user("dr.wong", site_salt())
    assert entry["user"] != hash_user("dr.wong", "another-site-0123456789")


def test_deid_cli_refuses_an_empty_salt(home: Path) -> None:
    def deid(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "medmllm.cli.main", "deid", "-", "-q", *args],
            input=SSN,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **env},
        )

    empty = deid("--operator", "hash", **{SALT_ENV: ""})
    assert empty.returncode == 2 and "error:" in empty.stderr and SALT_ENV in empty.stderr
    missing = deid("--operator", "hash", "--salt-env", "NO_SUCH_SALT_VAR")
    assert missing.returncode == 2 and "NO_SUCH_SALT_VAR" in missing.stderr
    assert "Traceback" not in empty.stderr + missing.stderr
