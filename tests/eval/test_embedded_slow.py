"""End to end on the embedded model and ../shared/data (slow: minutes on 2 cores)."""

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
pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    # a fresh home, but the converted hf weights (the default scoring backend) are shared, so
    # the ~20 s GGUF dequantisation is not repeated per test
    shared_hf = Path(os.environ["MEDMLLM_HOME"]) / "cache" / "hf"
    shared_hf.mkdir(parents=True, exist_ok=True)
    (home / "cache").mkdir(parents=True, exist_ok=True)
    if not (home / "cache" / "hf").exists():
        (home / "cache" / "hf").symlink_to(shared_hf, target_is_directory=True)
    return dict(os.environ, MEDMLLM_HOME=str(home))


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "medmllm.cli.main", "eval", *args]


def _rounded(value: object) -> object:
    """Floats to 4 decimals: padded batches of a different make-up differ by ~1e-6 in float32."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _strip(results: dict) -> dict:
    return {
        name: _rounded({k: v for k, v in s.items() if k != "timing"})
        for name, s in results["tasks"].items()
    }


def test_medmcqa_on_embedded_model_writes_results_and_report(
    shared_data: Path, tmp_path: Path
) -> None:
    out = subprocess.run(
        _cmd("--tasks", "medmcqa", "--limit", "12", "--out", str(tmp_path / "r")),
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=REPO,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "r/results.json").read_text())
    s = results["tasks"]["medmcqa"]
    assert s["n"] == 12 and sum(s["prediction_distribution"].values()) == 12
    assert s["majority_baseline"]["accuracy"]["value"] is not None
    assert len(s["metrics"]["accuracy"]["ci"]) == 2
    html = (tmp_path / "r/report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3


def test_killed_embedded_run_resumes_identically(shared_data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    args = ["--tasks", "medmcqa", "--limit", "16", "--batch-size", "2", "-q", "--cache", str(cache)]
    proc = subprocess.Popen(
        _cmd(*args, "--out", str(tmp_path / "a")),
        env=_env(tmp_path),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if cache.exists():
            try:
                with sqlite3.connect(cache) as db:
                    done = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if done >= 16:
                break
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with sqlite3.connect(cache) as db:
        done = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert 0 < done < 16 * 4

    resumed = subprocess.run(
        _cmd(*args, "--out", str(tmp_path / "a")),
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=REPO,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "a/results.json").read_text())
    assert a["run"]["cache"]["hits"] == done and a["run"]["model_calls"] == 16 * 4 - done

    fresh = subprocess.run(
        _cmd(
            "--tasks",
            "medmcqa",
            "--limit",
            "16",
            "--batch-size",
            "2",
            "-q",
            "--no-cache",
            "--out",
            str(tmp_path / "b"),
        ),
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=REPO,
        timeout=600,
    )
    assert fresh.returncode == 0, fresh.stderr
    b = json.loads((tmp_path / "b/results.json").read_text())
    assert _strip(a) == _strip(b)


def test_rag_eval_with_a_real_index(shared_data: Path, tmp_path: Path) -> None:
    """MIRAGE-style: PubMedQA without its abstract, passages retrieved by the question."""
    env = _env(tmp_path)
    code = (
        "from medmllm.rag.corpus import load_corpus\n"
        "from medmllm.rag.index import build_index\n"
        "from medmllm.rag.retriever import RetrieverConfig\n"
        f"docs, _ = load_corpus({str(shared_data / 'pubmedqa/pqal_dev.jsonl')!r}, 'pubmedqa')\n"
        "build_index('pq', docs, retriever=RetrieverConfig(kind='bm25'), progress=False)\n"
    )
    built = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )
    assert built.returncode == 0, built.stderr
    out = subprocess.run(
        _cmd(
            "--tasks",
            "pubmedqa",
            "--no-context",
            "--rag",
            "pq",
            "--limit",
            "5",
            "-q",
            "--out",
            str(tmp_path / "rag"),
        ),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    s = json.loads((tmp_path / "rag/results.json").read_text())["tasks"]["pubmedqa"]
    assert s["rag"] is True and s["include_context"] is False and s["n"] == 5
    missing = subprocess.run(
        _cmd("--tasks", "pubmedqa", "--rag", "nope", "--limit", "1"),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
