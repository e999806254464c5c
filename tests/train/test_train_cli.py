"""``medmllm train …`` as users run it: bad inputs → rc 2 + one error line; kill -9 → resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

CLI = [sys.executable, "-m", "medmllm.cli.main"]


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )


def _user_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def _config(tmp_path: Path, tiny_model: Path, data: Path, **extra: object) -> Path:
    cfg = {
        "model": str(tiny_model),
        "data": {"path": str(data)},
        "max_steps": 2,
        "save_steps": 1,
        "max_length": 64,
        "batch_size": 2,
        **extra,
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _qa(path: Path, n: int = 16) -> Path:
    rows = [
        {"prompt": f"which drug for fever {i} ?", "completion": "the answer is A"} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bad_config_key_and_type(tmp_path: Path, tiny_model: Path) -> None:
    path = _config(tmp_path, tiny_model, _qa(tmp_path / "d.jsonl"), lerning_rate=0.1)
    _user_error(_run("train", "sft", "--config", str(path)), "lerning_rate", str(path))
    assert not Path("runs").exists()
    path = _config(tmp_path, tiny_model, _qa(tmp_path / "d.jsonl"), max_steps="lots")
    _user_error(_run("train", "sft", "--config", str(path)), "max_steps", "lots", str(path))


def test_bad_data_and_model(tmp_path: Path, tiny_model: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n')
    path = _config(tmp_path, tiny_model, data)
    out = ["-o", str(tmp_path / "run")]
    _user_error(_run("train", "sft", "-c", str(path), *out), "row 2", "completion")
    data.write_text("")
    _user_error(_run("train", "sft", "-c", str(path), *out), "no rows")
    _qa(data)
    proc = _run(
        "train",
        "sft",
        "-c",
        str(path),
        "--model",
        str(tmp_path / "missing-model"),
        "-o",
        str(tmp_path / "run"),
    )
    _user_error(proc, "missing-model")


def test_resume_into_other_config_refused(tmp_path: Path, tiny_model: Path) -> None:
    path = _config(tmp_path, tiny_model, _qa(tmp_path / "d.jsonl"))
    out = tmp_path / "run"
    assert _run("train", "sft", "-c", str(path), "-o", str(out)).returncode == 0
    proc = _run("train", "sft", "-c", str(path), "-o", str(out), "--lr", "0.01")
    _user_error(proc, "learning_rate", "--overwrite")


@pytest.mark.slow
def test_kill_9_then_rerun_reaches_same_loss(tmp_path: Path, tiny_model: Path) -> None:
    data = _qa(tmp_path / "d.jsonl", 64)
    path = _config(tmp_path, tiny_model, data, max_steps=40, save_steps=4, batch_size=1)
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    assert _run("train", "sft", "-c", str(path), "-o", str(straight)).returncode == 0

    cmd = [*CLI, "train", "sft", "-c", str(path), "-o", str(broken)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (broken / "checkpoint-8" / "trainer_state.json").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "run ended before the kill"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (broken / "result.json").exists(), "the run finished before it was killed"

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    a = json.loads((straight / "result.json").read_text())
    b = json.loads((broken / "result.json").read_text())
    assert b["global_step"] == a["global_step"] == 40
    assert b["final_loss"] == pytest.approx(a["final_loss"], rel=1e-5, abs=1e-6)
    assert json.loads((broken / "run.json").read_text())["resumed"]


@pytest.mark.slow
@pytest.mark.heavy
def test_runs_unchanged_under_accelerate_launch(tmp_path: Path, tiny_model: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    path = _config(tmp_path, tiny_model, _qa(tmp_path / "d.jsonl"))
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(repo / "configs" / "accelerate" / "cpu.yaml"),
        "-m",
        "medmllm.cli.main",
        "train",
        "sft",
        "-c",
        str(path),
        "-o",
        str(tmp_path / "acc"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "acc" / "result.json").read_text())["global_step"] == 2


def test_set_overrides_nested_keys() -> None:
    from medmllm.cli.train_text import parse_sets
    from medmllm.errors import InvalidRequestError

    assert parse_sets(["max_length=64", "data.limit=8", "lora.target_modules=[q_proj]"]) == {
        "max_length": 64,
        "data": {"limit": 8},
        "lora": {"target_modules": ["q_proj"]},
    }
    with pytest.raises(InvalidRequestError):
        parse_sets(["max_length"])


SMALL = [
    "--max-steps",
    "1",
    "--set",
    "max_length=64",
    "--set",
    "batch_size=1",
    "--set",
    "grad_accum=1",
    "--set",
    "data.limit=4",
]


@pytest.mark.slow
@pytest.mark.heavy
def test_shipped_configs_run_on_embedded_model_and_adapter_evaluates(
    tmp_path: Path, shared_data: Path
) -> None:
    repo = Path(__file__).resolve().parents[2] / "configs" / "train"
    runs = {
        "cpt": "cpt_medquad",
        "ift": "ift_medquad",
        "sft": "sft_mcqa",
        "dpo": "dpo_mcqa",
        "rlaif": "rlaif",
    }
    for recipe, name in runs.items():
        extra = {
            "rlaif": ["--set", "max_new_tokens=8", "--set", "data.limit=2"],
            # MCQA chat prompts need > 64 tokens: TRL drops such DPO pairs, and SFT would keep
            # no answer token (refused since it trained at loss 0)
            "dpo": ["--set", "max_length=256"],
            "sft": ["--set", "max_length=256"],
        }.get(recipe, [])
        proc = _run(
            "train",
            recipe,
            "-c",
            str(repo / f"{name}.yaml"),
            "-o",
            str(tmp_path / recipe),
            *SMALL,
            *extra,
            timeout=900,
        )
        assert proc.returncode == 0, (recipe, proc.stderr[-3000:])
        if recipe != "rlaif":  # something was learned from: a loss on real tokens
            assert json.loads((tmp_path / recipe / "result.json").read_text())["final_loss"] > 0
    proc = _run(
        "eval",
        "--tasks",
        "medmcqa",
        "--limit",
        "3",
        "--backend",
        "hf",
        "--model",
        str(tmp_path / "sft" / "adapter"),
        "-o",
        str(tmp_path / "eval"),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["tasks"]["medmcqa"]
