"""Evaluation throughput: `medmllm eval` vs lm-evaluation-harness on the same questions.

Same weights (the embedded SmolLM2-135M-Instruct: its GGUF for our llama.cpp backend, the
dequantised copy of that GGUF as an HF folder for lm-eval's ``hf`` model and for our ``hf``
backend), the same 200 questions of ``../shared/data/mcqa/medmcqa_dev.jsonl`` (rows 6–205), the
same prompt (``Question: …\\nA. …\\nB. …\\nC. …\\nD. …\\nAnswer:``) and continuations
(" A".." D"), zero-shot and 5-shot with the same five fixed exemplars (rows 1–5, first_n).

Each engine runs as its own process, timed from start to exit (imports, model load, scoring,
writing results): questions/s = 200 / whole-process wall time. Our runs use ``--no-cache`` so
nothing is reused between runs. Writes ``bench/results/eval_throughput.json`` with versions
and the git commit.

Usage:
    .venv/bin/python bench/eval_throughput.py [--n 200] [--settings 0,5] [--engines ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "eval_throughput.json"
TEMPLATE = "Question: {{ question }}\n{{ options_text }}\nAnswer:"
LM_EVAL_TEXT = (
    "Question: {{question}}\nA. {{options.A}}\nB. {{options.B}}\nC. {{options.C}}\n"
    "D. {{options.D}}\nAnswer:"
)


def _write_data(work: Path, n: int) -> tuple[Path, Path]:
    from medmllm.config import shared_data_dir

    rows = (shared_data_dir() / "mcqa" / "medmcqa_dev.jsonl").read_text().splitlines()
    shots, questions = rows[:5], rows[5 : 5 + n]
    (work / "shots.jsonl").write_text("\n".join(shots) + "\n")
    (work / "eval.jsonl").write_text("\n".join(questions) + "\n")
    return work / "eval.jsonl", work / "shots.jsonl"


def _our_task(work: Path, data: Path, shots: Path, k: int) -> Path:
    import yaml

    task = {
        "name": f"medmcqa_bench_{k}shot",
        "output_type": "multiple_choice",
        "dataset": {"path": str(data)},
        "prompt": {"template": TEMPLATE, "choices": "letters"},
        "fewshot": {"n": k, "path": str(shots) if k else None},
        "metrics": ["accuracy"],
    }
    path = work / f"ours_{k}.yaml"
    path.write_text(yaml.safe_dump(task, sort_keys=False))
    return path


def _lm_eval_task(work: Path, data: Path, shots: Path) -> Path:
    import yaml

    folder = work / "lm_eval_tasks"
    folder.mkdir(exist_ok=True)
    task = {
        "task": "medmcqa_bench",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data), "train": str(shots)}},
        "test_split": "test",
        "fewshot_split": "train",
        "fewshot_config": {"sampler": "first_n"},
        "output_type": "multiple_choice",
        "doc_to_text": LM_EVAL_TEXT,
        "doc_to_choice": ["A", "B", "C", "D"],
        "doc_to_target": "{{['A', 'B', 'C', 'D'].index(answer)}}",
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
    }
    (folder / "medmcqa_bench.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return folder


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed, proc


def run_ours(backend: str, model: str, task: Path, out: Path, env: dict) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "medmllm.cli.main",
        "eval",
        "--task-file",
        str(task),
        "--backend",
        backend,
        "--model",
        model,
        "--no-cache",
        "-q",
        "--out",
        str(out),
    ]
    wall, _ = _timed(cmd, env)
    res = json.loads((out / "results.json").read_text())
    section = next(iter(res["tasks"].values()))
    return {
        "wall_s": round(wall, 2),
        "scoring_s": section["timing"]["seconds"],
        "accuracy": section["metrics"]["accuracy"]["value"],
        "accuracy_ci": section["metrics"]["accuracy"]["ci"],
        "prediction_distribution": section["prediction_distribution"],
        "n": section["n"],
    }


def run_lm_eval(hf_dir: Path, include: Path, k: int, out: Path, env: dict) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={hf_dir},dtype=float32",
        "--tasks",
        "medmcqa_bench",
        "--include_path",
        str(include),
        "--num_fewshot",
        str(k),
        "--device",
        "cpu",
        "--batch_size",
        "1",
        "--output_path",
        str(out),
    ]
    wall, _ = _timed(cmd, env)
    files = sorted(out.rglob("results_*.json"))
    data = json.loads(files[-1].read_text())
    metrics = data["results"]["medmcqa_bench"]
    return {
        "wall_s": round(wall, 2),
        "accuracy": metrics["acc,none"],
        "accuracy_stderr": metrics.get("acc_stderr,none"),
        "acc_norm": metrics.get("acc_norm,none"),
        "n": data.get("n-samples", {}).get("medmcqa_bench", {}).get("effective"),
    }


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("medmllm", "lm_eval", "llama_cpp_python", "torch", "transformers"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=REPO,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--settings", default="0,5", help="few-shot counts, comma-separated")
    parser.add_argument("--engines", default="ours-llamacpp,lm-eval,ours-hf")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from medmllm.config import get_settings
    from medmllm.models.backends.hf import convert_gguf
    from medmllm.models.defaults import resolve_model_path

    gguf = resolve_model_path(None)
    hf_dir = convert_gguf(gguf, get_settings().cache_dir("hf"))  # outside the timed runs
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MEDMLLM_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    engines = args.engines.split(",")
    report: dict = {
        "benchmark": "eval_throughput",
        "question_source": "../shared/data/mcqa/medmcqa_dev.jsonl rows 6..5+n; exemplars 1-5",
        "n_questions": args.n,
        "prompt": TEMPLATE,
        "continuations": [" A", " B", " C", " D"],
        "weights": {"gguf": gguf.name, "hf_folder": "dequantised from the same GGUF (float32)"},
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
        },
        "versions": _versions(),
        "git_commit": _commit(),
        "lm_eval_settings": "--model hf dtype=float32 --device cpu --batch_size 1",
        "settings": {},
    }
    with tempfile.TemporaryDirectory(prefix="evalbench-") as tmp:
        work = Path(tmp)
        data, shots = _write_data(work, args.n)
        include = _lm_eval_task(work, data, shots)
        for k in (int(s) for s in args.settings.split(",")):
            task = _our_task(work, data, shots, k)
            row: dict = {}
            for engine in engines:
                print(f"[{k}-shot] {engine} …", flush=True)
                out = work / f"{engine}-{k}"
                if engine == "ours-llamacpp":
                    row[engine] = run_ours("llamacpp", str(gguf), task, out, env)
                elif engine == "ours-hf":
                    row[engine] = run_ours("hf", str(hf_dir), task, out, env)
                elif engine == "lm-eval":
                    row[engine] = run_lm_eval(hf_dir, include, k, out, env)
                row[engine]["questions_per_s"] = round(args.n / row[engine]["wall_s"], 3)
                print(f"    {row[engine]}", flush=True)
            if "lm-eval" in row:
                base = row["lm-eval"]
                for engine in engines:
                    if engine.startswith("ours"):
                        row[f"ratio_{engine}_vs_lm_eval"] = round(
                            row[engine]["questions_per_s"] / base["questions_per_s"], 2
                        )
                        row[f"accuracy_diff_{engine}_vs_lm_eval_points"] = round(
                            100 * (row[engine]["accuracy"] - base["accuracy"]), 2
                        )
            report["settings"][f"{k}-shot"] = row
    report["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
