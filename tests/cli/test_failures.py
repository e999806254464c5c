"""The one error mapper: OS errors, validation and context errors, interruption, --debug."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from pydantic import BaseModel, ValidationError

from medmllm.cli.failures import INTERRUPTED, debug_requested, describe
from medmllm.errors import ConfigError


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        (errno.ENOSPC, "no space left"),
        (errno.EACCES, "permission denied"),
        (errno.EISDIR, "is a folder"),
        (errno.ENOTDIR, "not a folder"),
        (errno.EROFS, "read-only"),
    ],
)
def test_os_errors_name_the_path(code, fragment):
    message, fix, rc = describe(OSError(code, os.strerror(code), "/data/out/results.json"))
    assert rc == 2 and fragment in message and "/data/out/results.json" in message and fix


def test_validation_error_names_the_field():
    class Cfg(BaseModel):
        n: int

    with pytest.raises(ValidationError) as info:
        Cfg(n="x")  # type: ignore[arg-type]
    message, _, rc = describe(info.value)
    assert rc == 2 and "n" in message and "'x'" in message


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("Requested tokens (5000) exceed context window of 2048"),
        RuntimeError("Input length of input_ids is 9000, but `max_length` ... n_ctx"),
    ],
)
def test_engine_context_errors_are_user_errors(exc):
    message, fix, rc = describe(exc)
    assert rc == 2 and "context window" in message and "-k" in (fix or "")


def test_our_errors_and_bugs():
    assert describe(ConfigError("bad", hint="do x")) == ("bad", "do x", 2)
    message, fix, rc = describe(ZeroDivisionError("division by zero"))
    assert rc == 1 and message.startswith("internal error") and "--debug" in (fix or "")


def test_debug_flag_is_removed_anywhere_but_after_double_dash(monkeypatch):
    monkeypatch.delenv("MEDMLLM_DEBUG", raising=False)
    assert debug_requested(["ask", "q", "--debug"]) == (True, ["ask", "q"])
    assert debug_requested(["ask", "--", "--debug"]) == (False, ["ask", "--", "--debug"])
    monkeypatch.setenv("MEDMLLM_DEBUG", "1")
    assert debug_requested(["ask"])[0] is True


def _sigint_default() -> None:
    """A shell without job control starts background jobs with SIGINT ignored (``cmd &`` in a
    script, nohup, some CI runners), and an ignored signal survives exec: the child would never
    see the Ctrl-C. Python installs its KeyboardInterrupt handler only over the default
    disposition, so give the child that back (a user's terminal always does)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


_SLEEPER = """
import sys, time
from medmllm.cli.main import app, main
@app.command("sleep-test")
def _sleep() -> None:
    print("ready", flush=True)
    time.sleep(60)
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_prints_one_line_and_exits_130():
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLEEPER, "sleep-test"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_default,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert INTERRUPTED in err and "Traceback" not in err + out


_BUG = """
import sys
from medmllm.cli.main import app, main
@app.command("bug-test")
def _bug() -> None:
    raise ZeroDivisionError("boom")
sys.exit(main(sys.argv[1:]))
"""


def test_tracebacks_only_with_debug():
    quiet = subprocess.run([sys.executable, "-c", _BUG, "bug-test"], capture_output=True, text=True)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    assert "internal error: ZeroDivisionError: boom" in quiet.stderr
    loud = subprocess.run(
        [sys.executable, "-c", _BUG, "bug-test", "--debug"], capture_output=True, text=True
    )
    assert loud.returncode == 1 and "Traceback" in loud.stderr


def test_ctrl_c_during_eval_says_interrupted_and_the_rerun_resumes(tmp_path) -> None:
    """The fake model blocks after 3 calls, so the run cannot finish before the Ctrl-C on any
    machine (it once raced the machine's speed: rc 0 instead of 130 on a fast one)."""
    from tests.cli.test_eval_cli import FAKE, REPO, _cli, _env, _task_file, _wait_blocked

    task = _task_file(tmp_path, 40)
    log = tmp_path / "calls.log"
    args = ["--task-file", str(task), "--backend", FAKE, "--batch-size", "4", "-q",
            "--cache", str(tmp_path / "cache.sqlite"), "--out", str(tmp_path / "run")]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "medmllm.cli.main", "eval", *args],
        env=_env(tmp_path, FAKE_BLOCK_AFTER="3", FAKE_CALL_LOG=str(log)),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_default,
    )
    _wait_blocked(proc, log)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert INTERRUPTED in err and "Traceback" not in out + err
    assert not (tmp_path / "run" / "results.json").exists()
    rerun = _cli(*args, env=_env(tmp_path))
    assert rerun.returncode == 0, rerun.stderr
    cache = json.loads((tmp_path / "run" / "results.json").read_text())["run"]["cache"]
    assert cache["hits"] == 3 * 4 * 4  # the 3 calls before the signal: 4 items x 4 options
    assert cache["misses"] == (40 - 12) * 4
