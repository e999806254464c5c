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


def _wait_blocked(proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    """Until the fake model blocks (FAKE_BLOCK_AFTER): every call before it is cached."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and "blocked" in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"the fake model never blocked (rc {proc.poll()})")


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples", "3"], "--samples 3 does not apply"),
        (["--mode", "cot", "--temperature", "0.5"], "--temperature does not apply"),
        (["--temperature", "0.5"], "--temperature does not apply"),
        (["--mode", "gen", "--debias"], "--debias does not apply to --mode gen"),
        (["--max-tokens", "8"], "--max-tokens does not apply"),
        (["--rag-k", "5"], "--rag-k does not apply without --rag"),
        (["--mode", "gen", "--batch-size", "8"], "--batch-size does not apply"),
        (["--cache", "c.sqlite", "--no-cache"], "--cache and --no-cache"),
        (["--image-root", "."], "--image-root does not apply"),
        (["--exclude-split", "s.json", "--no-exclude-split"], "--exclude-split and --no-"),
        (["--exclude-split", "nowhere.json"], "split file not found"),
    ],
)
def test_options_that_do_not_apply_are_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Issue 19: these were accepted and silently ignored; now one line, exit 2, no model."""
    task = _task_file(tmp_path, 4)
    log = tmp_path / "calls.log"
    out = _cli(
        "--task-file", str(task), *args, "--backend", FAKE, "-q",
        env=_env(tmp_path, FAKE_CALL_LOG=str(log)),
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error:") and "fix:" in lines[1], lines
    assert not log.exists()  # refused before any model call


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "pubmedqa", "--debias"], "--debias does not apply to pubmedqa"),
        (["--tasks", "pubmedqa,medmcqa", "--bias"], "--bias does not apply to pubmedqa, medmcqa"),
    ],
)
def test_task_options_that_apply_to_no_task_are_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = _cli(*args, "--backend", FAKE, "-q", env=_env(tmp_path))
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_exclude_split_drops_trained_items_and_says_so(tmp_path: Path) -> None:
    task = _task_file(tmp_path, 10)  # q0..q9 in q.jsonl
    run = tmp_path / "runs" / "sft"
    (run / "adapter").mkdir(parents=True)
    split = {"source": "mcqa", "files": ["q.jsonl"], "key": "file_stem:id",
             "train": [f"q:q{i}" for i in range(7)], "held": ["q:q7", "q:q8", "q:q9"]}  # fmt: skip
    (run / "split.json").write_text(json.dumps(split))
    common = ["--task-file", str(task), "--backend", FAKE, "-q"]
    explicit = _cli(*common, "--exclude-split", str(run / "split.json"), "-o",
                    str(tmp_path / "e"), env=_env(tmp_path))  # fmt: skip
    assert explicit.returncode == 0, explicit.stderr
    assert "synth: 7 trained items excluded" in explicit.stdout and "3 evaluated" in explicit.stdout
    res = json.loads((tmp_path / "e/results.json").read_text())
    assert res["tasks"]["synth"]["n"] == 3 and res["tasks"]["synth"]["excluded_trained"] == 7
    assert res["held_apart"]["path"] == str(run / "split.json")
    # --model inside the run folder: its split applies by itself, and the console says so
    auto = _cli(*common, "--model", str(run / "adapter"), "-o", str(tmp_path / "a"),
                env=_env(tmp_path))  # fmt: skip
    assert auto.returncode == 0, auto.stderr
    assert "held apart" in auto.stderr and str(run / "split.json") in auto.stderr
    assert json.loads((tmp_path / "a/results.json").read_text())["tasks"]["synth"]["n"] == 3
    kept = _cli(*common, "--model", str(run / "adapter"), "--no-exclude-split", "-o",
                str(tmp_path / "k"), env=_env(tmp_path))  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    assert json.loads((tmp_path / "k/results.json").read_text())["tasks"]["synth"]["n"] == 10
    # an explicit split that names no item of the task: the wrong file
    split["train"], split["held"] = ["medqa_dev:1"], ["medqa_dev:2"]
    (tmp_path / "wrong.json").write_text(json.dumps(split))
    wrong = _cli(*common, "--exclude-split", str(tmp_path / "wrong.json"), env=_env(tmp_path))
    assert wrong.returncode == 2 and "names none of its 10 rows" in wrong.stderr


def test_mllm_folder_is_its_own_backend_and_refuses_hf_options(tmp_path: Path) -> None:
    """An MLLM folder under --backend hf once swallowed --dtype / --model-arg silently."""
    from medmllm.models.generator import load_generator
    from medmllm.models.mllm import MedMLLM, MLLMConfig

    folder = MedMLLM.build(MLLMConfig.tiny("vit", "mlp2x_gelu", size=32)).save_pretrained(
        tmp_path / "m"
    )
    for backend in ("hf", "mllm"):
        out = _cli("-t", "vqa_rad", "-b", backend, "-m", str(folder), "--mode", "gen",
                   "--dtype", "bfloat16", env=_env(tmp_path))  # fmt: skip
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "backend 'mllm'" in out.stderr and "--dtype" in out.stderr, out.stderr
    assert "MedMLLM folder" in out.stderr or backend == "mllm"
    gen = load_generator("mllm", str(folder))
    assert gen.backend == "mllm" and gen.load_options()["device"] == "cpu"


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
        env=_env(tmp_path, FAKE_BLOCK_AFTER="4", FAKE_CALL_LOG=str(log1)),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_blocked(proc, log1)  # 4 calls done; the 5th cannot finish before the kill
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "a/results.json").exists()
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        done = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert done == 4 * 4 * 4  # 4 calls of 4 items x 4 options, each committed

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
