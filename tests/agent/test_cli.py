"""``medmllm agent`` and ``medmllm app`` as a user runs them (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "MEDMLLM_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_calc_prints_result_with_citation(tmp_path: Path) -> None:
    out = cli("agent", "calc", "bmi", "weight=154 lb", "height=69 in", home=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["value"] == 22.74 and "WHO" in data["citation"]


def test_calc_bad_inputs_exit_2_without_traceback(tmp_path: Path) -> None:
    out = cli(
        "agent", "calc", "cockcroft_gault", "age=60", "sex=male", "creatinine=88", home=tmp_path
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "error:" in out.stderr and "0.1–20 mg/dL" in out.stderr and "weight" in out.stderr
    unknown = cli("agent", "calc", "bmii", home=tmp_path)
    assert unknown.returncode == 2 and "Did you mean 'bmi'" in unknown.stderr


def test_tools_listing(tmp_path: Path) -> None:
    out = cli("agent", "tools", home=tmp_path)
    assert (
        out.returncode == 0 and "icd10_search" in out.stdout and "drug_interactions" in out.stdout
    )


def test_app_bad_request_exit_2(tmp_path: Path) -> None:
    out = cli(
        "app",
        "surgery",
        "--set",
        "action=status",
        "--set",
        "case_id=../x",
        "-b",
        "hf",
        "-m",
        "/nonexistent-model",
        home=tmp_path,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr and "error:" in out.stderr
    bad = cli("app", "diagnosis", "--set", "nope", home=tmp_path)
    assert bad.returncode == 2 and "key=value" in bad.stderr
