"""`medmllm eval` end to end in subprocesses (fake backend: fast, deterministic, killable)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE = "tests.fakes:FakeGenerator"
TASK = """\
name: synth
output_type: multiple_choice
dataset:
  path: {path}
prompt:
  template: |-
    Question: {{{{ question }}}}
    {{{{ options_text }}}}
    Answer:
metrics: [accuracy]
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["MEDMLLM_HOME"] = str(tmp_path / "home")
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", "eval", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        **kw,
    )


def _task_file(tmp_path: Path, n: int) -> Path:
    data = tmp_path / "q.jsonl"
    with data.open("w") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "id": f"q{i}",
                        "question": f"Synthetic question {i}?",
                        "options": {k: f"opt {k}{i}" for k in "ABCD"},
                        "answer": "ABCD"[i % 4],
                    }
                )
                + "\n"
            )
    path = tmp_path / "synth.yaml"
    path.write_text(TASK.format(path=data))
    return path


def test_list_and_metrics(tmp_path: Path) -> None:
    out = _cli("list", env=_env(tmp_path))
    assert out.returncode == 0 and "medmcqa" in out.stdout and "report_generation" in out.stdout
    out = _cli("list", "--metrics", env=_env(tmp_path))
    assert "rouge_l" in out.stdout and "vqa_closed_accuracy" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "medmcq"], "Did you mean 'medmcqa'"),
        (["--tasks", "medmcqa", "--mode", "zero"], "unknown eval mode"),
        (["--tasks", "medmcqa", "--limit", "0"], "--limit must be >= 1"),
        ([], "no task given"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    out = _cli(*args, "--backend", FAKE, env=_env(tmp_path))
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


def test_malformed_task_file_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("output_type: multiple_choice\ndataset: {path: x.jsonl}\nprompt: {templat: q}\n")
    out = _cli("--task-file", str(bad), "--backend", FAKE, env=_env(tmp_path))
    assert out.returncode == 2 and "prompt" in out.stderr and str(bad) in out.stderr
    assert "Traceback" not in out.stderr


def test_run_and_report(tmp_path: Path) -> None:
    task = _task_file(tmp_path, 8)
    out = _cli(
        "--task-file",
        str(task),
        "--backend",
        FAKE,
        "--out",
        str(tmp_path / "run"),
        "--debias",
        env=_env(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    assert "majority" in out.stdout and "synth" in out.stdout
    results = json.loads((tmp_path / "run/results.json").read_text())
    assert results["tasks"]["synth"]["debiased"]["rotations"] == 4
    (tmp_path / "run/report.html").unlink()
    out = _cli("report", str(tmp_path / "run"), env=_env(tmp_path))
    assert out.returncode == 0 and (tmp_path / "run/report.html").is_file()
    out = _cli("report", str(tmp_path / "nothing"), env=_env(tmp_path))
    assert out.returncode == 2 and "no results.json" in out.stderr


def test_killed_run_resumes_with_identical_results(tmp_path: Path) -> None:
    """SIGKILL a running `medmllm eval`, rerun it: same results, no model call repeated."""
    task = _task_file(tmp_path, 60)
    n_requests = 60 * 4
    log1, log2 = tmp_path / "calls1.log", tmp_path / "calls2.log"
    args = [
        "--task-file",
        str(task),
        "--backend",
        FAKE,
        "--batch-size",
        "4",
        "-q",
        "--cache",
        str(tmp_path / "cache.sqlite"),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "medmllm.cli.main", "eval", *args, "--out", str(tmp_path / "a")],
        env=_env(tmp_path, FAKE_DELAY="0.02", FAKE_CALL_LOG=str(log1)),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if log1.exists() and len(log1.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "a/results.json").exists()
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        done = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert 0 < done < n_requests

    out = _cli(*args, "--out", str(tmp_path / "a"), env=_env(tmp_path, FAKE_CALL_LOG=str(log2)))
    assert out.returncode == 0, out.stderr
    resumed = json.loads((tmp_path / "a/results.json").read_text())
    assert resumed["run"]["cache"]["hits"] == done
    assert resumed["run"]["cache"]["misses"] == n_requests - done
    assert sum(int(line.split()[1]) for line in log2.read_text().splitlines()) == n_requests - done

    fresh = _cli(
        "--task-file",
        str(task),
        "--backend",
        FAKE,
        "-q",
        "--no-cache",
        "--out",
        str(tmp_path / "b"),
        env=_env(tmp_path),
    )
    assert fresh.returncode == 0, fresh.stderr
    full = json.loads((tmp_path / "b/results.json").read_text())
    strip = lambda r: {k: v for k, v in r["tasks"]["synth"].items() if k != "timing"}  # noqa: E731
    assert strip(resumed) == strip(full)

    again = _cli(*args, "--out", str(tmp_path / "c"), env=_env(tmp_path))
    rerun = json.loads((tmp_path / "c/results.json").read_text())
    assert again.returncode == 0 and rerun["run"]["model_calls"] == 0


def test_deid_cache_keeps_phi_out_of_the_cache_file(tmp_path: Path) -> None:
    """`--deid-cache`: replies are stored de-identified; without it the cache holds them as is."""
    task = _task_file(tmp_path, 3)
    reply = "Mr. John Smith (MRN 12345678) should call 617-555-1234. Answer: B"
    env = _env(tmp_path, FAKE_REPLY=reply)
    raw = {}
    for flag in ("--deid-cache", None):
        db = tmp_path / f"{flag or 'plain'}.sqlite"
        args = ["--task-file", str(task), "--backend", FAKE, "--mode", "gen", "-q"]
        args += ["--cache", str(db), "--out", str(tmp_path / f"out-{flag or 'plain'}")]
        proc = _cli(*args, *([flag] if flag else []), env=env)
        assert proc.returncode == 0, proc.stderr
        raw[flag] = b"".join(p.read_bytes() for p in tmp_path.glob(f"{db.name}*"))
    assert b"John Smith" in raw[None]  # the control: the plain cache stores the reply
    for value in ("John Smith", "12345678", "617-555-1234"):
        assert value.encode() not in raw["--deid-cache"]
    bad = _cli("--task-file", str(task), "--backend", FAKE, "--deid-cache", "--no-cache", env=env)
    assert bad.returncode == 2 and "store nothing" in bad.stderr
