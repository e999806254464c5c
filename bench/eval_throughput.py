"""Evaluation throughput: `medmllm eval` vs lm-evaluation-harness at its best batch size.

Same weights (the embedded SmolLM2-135M-Instruct: the dequantised float32 copy of its GGUF as an
HF folder, for lm-eval's ``hf`` model and our default ``hf`` scoring backend), the same
``--questions`` questions of ``../shared/data/mcqa/medmcqa_dev.jsonl`` (rows 6..5+N), the same
prompt (``Question: …\\nA. …\\nB. …\\nC. …\\nD. …\\nAnswer:``) and continuations (" A".." D"),
zero-shot and 5-shot with the same five fixed exemplars (rows 1–5, first_n).

Each engine runs as its own process, timed from start to exit (imports, model load, scoring,
writing results): questions/s = N / whole-process wall time. Ours runs with ``--no-cache``.
lm-eval runs at ``--batch_size`` 1, 8 and auto zero-shot (auto capped by
``--max_batch_size 16``); 5-shot at the batch size that was fastest zero-shot
(``--fewshot-batch-sizes all`` runs all three again: ~2x longer). Ratios are
against the fastest lm-eval run of each setting, and predictions are compared per question
(lm-eval's ``--log_samples``). Writes ``bench/results/eval_throughput.json`` with
``medmllm.provenance.environment()`` (versions, commit, load) and load averages before/after.

Each comparison also records ``ceiling_ratio``: the fastest lm-eval whole-process time divided by
our *scoring time alone* — the ratio ours would reach with zero start-up (no imports, no model
load, no writing). Both tools run the same forward passes in the same dtype, so this bounds what
any start-up or runner work can win; only different numerics (``--dtype``) move it.

``--dtype bfloat16 --out eval_throughput_bf16.json`` runs both tools in bfloat16 (native on CPUs
with AVX512-BF16/AMX): faster, but not the same predictions as float32 (see the README).

Usage (the reference command; ~10 min on an idle 2-core machine):
    .venv/bin/python bench/eval_throughput.py --questions 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import write_json  # noqa: E402

TEMPLATE = "Question: {{ question }}\n{{ options_text }}\nAnswer:"
LM_EVAL_TEXT = (
    "Question: {{question}}\nA. {{options.A}}\nB. {{options.B}}\nC. {{options.C}}\n"
    "D. {{options.D}}\nAnswer:"
)
LETTERS = ["A", "B", "C", "D"]


def write_data(work: Path, n: int, data_root: Path | None = None) -> tuple[Path, Path]:
    """The N questions and the 5 exemplars as JSONL files in ``work``."""
    from medmllm.config import shared_data_dir

    root = data_root or shared_data_dir()
    rows = (root / "mcqa" / "medmcqa_dev.jsonl").read_text().splitlines()
    shots, questions = rows[:5], rows[5 : 5 + n]
    (work / "shots.jsonl").write_text("\n".join(shots) + "\n")
    (work / "eval.jsonl").write_text("\n".join(questions) + "\n")
    return work / "eval.jsonl", work / "shots.jsonl"


def our_task(work: Path, data: Path, shots: Path, k: int) -> Path:
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


def lm_eval_task(work: Path, data: Path, shots: Path) -> Path:
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
        "doc_to_choice": LETTERS,
        "doc_to_target": "{{['A', 'B', 'C', 'D'].index(answer)}}",
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
    }
    (folder / "medmcqa_bench.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return folder


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed


def run_ours(
    backend: str, model: str, task: Path, out: Path, env: dict[str, str], dtype: str = "float32"
) -> dict:
    cmd = [sys.executable, "-m", "medmllm.cli.main", "eval", "--task-file", str(task)]
    cmd += ["--backend", backend, "--model", model, "--no-cache", "-q", "--out", str(out)]
    if backend == "hf":
        cmd += ["--dtype", dtype]
    wall = _timed(cmd, env)
    res = json.loads((out / "results.json").read_text())
    section = next(iter(res["tasks"].values()))
    return {
        "wall_s": round(wall, 2),
        "scoring_s": section["timing"]["seconds"],
        "accuracy": section["metrics"]["accuracy"]["value"],
        "accuracy_ci": section["metrics"]["accuracy"]["ci"],
        "majority_baseline": section["majority_baseline"]["accuracy"]["value"],
        "prediction_distribution": section["prediction_distribution"],
        "n": section["n"],
        "predictions": [row["pred"] for row in section["items"]],
    }


def lm_eval_predictions(out: Path) -> list[str]:
    """Per-question argmax letters from lm-eval's logged samples, in document order."""
    files = sorted(out.rglob("samples_medmcqa_bench_*.jsonl"))
    rows = [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: r["doc_id"])
    preds = []
    for row in rows:
        lls = [float(resp[0]) for resp in row["filtered_resps"]]
        preds.append(LETTERS[max(range(len(lls)), key=lls.__getitem__)])
    return preds


def run_lm_eval(
    hf_dir: Path,
    include: Path,
    k: int,
    batch: str,
    out: Path,
    env: dict[str, str],
    max_batch_size: int = 16,
    dtype: str = "float32",
) -> dict:
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf"]
    cmd += ["--model_args", f"pretrained={hf_dir},dtype={dtype}", "--tasks", "medmcqa_bench"]
    cmd += ["--include_path", str(include), "--num_fewshot", str(k), "--device", "cpu"]
    cmd += ["--batch_size", batch, "--output_path", str(out), "--log_samples"]
    if batch.startswith("auto"):
        cmd += ["--max_batch_size", str(max_batch_size)]
    wall = _timed(cmd, env)
    data = json.loads(sorted(out.rglob("results_*.json"))[-1].read_text())
    metrics = data["results"]["medmcqa_bench"]
    return {
        "wall_s": round(wall, 2),
        "batch_size": batch,
        "accuracy": metrics["acc,none"],
        "accuracy_stderr": metrics.get("acc_stderr,none"),
        "acc_norm": metrics.get("acc_norm,none"),
        "n": data.get("n-samples", {}).get("medmcqa_bench", {}).get("effective"),
        "predictions": lm_eval_predictions(out),
    }


def compare(ours: dict, theirs: dict, n: int) -> dict[str, Any]:
    differ = sum(a != b for a, b in zip(ours["predictions"], theirs["predictions"], strict=True))
    return {
        "ratio_questions_per_s": round(ours["questions_per_s"] / theirs["questions_per_s"], 2),
        # what ours would reach with zero start-up: same forward passes, nothing else
        "ceiling_ratio": round(theirs["wall_s"] / ours["scoring_s"], 2),
        "accuracy_diff_questions": round((ours["accuracy"] - theirs["accuracy"]) * n),
        "predictions_differing": differ,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", "--n", type=int, default=200, dest="questions")
    parser.add_argument("--settings", default="0,5", help="few-shot counts, comma-separated")
    parser.add_argument("--engines", default="ours-hf,lm-eval", help="+ ours-llamacpp")
    parser.add_argument("--lm-eval-batch-sizes", default="1,8,auto")
    parser.add_argument(
        "--fewshot-batch-sizes",
        default="best",
        help="lm-eval batch sizes for k > 0: 'best' (fastest zero-shot one) or 'all'",
    )
    parser.add_argument(
        "--lm-eval-max-batch-size",
        type=int,
        default=16,
        help="lm-eval's --max_batch_size for auto: its probe runs 5 forward passes of that many "
        "longest rows, which at the default 64 costs a CPU more than the evaluation itself",
    )
    parser.add_argument(
        "--dtype", default="float32", help="both tools' dtype: float32 (reference) or bfloat16"
    )
    parser.add_argument("--out", default="eval_throughput.json", help="name in bench/results/")
    args = parser.parse_args()

    from medmllm.config import get_settings
    from medmllm.models.defaults import resolve_model_path
    from medmllm.models.hf_weights import convert_gguf
    from medmllm.provenance import environment

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
    batch_sizes = args.lm_eval_batch_sizes.split(",")
    n = args.questions
    report: dict[str, Any] = {
        "benchmark": "eval_throughput",
        "question_source": f"../shared/data/mcqa/medmcqa_dev.jsonl rows 6..{5 + n}; exemplars 1-5",
        "n_questions": n,
        "prompt": TEMPLATE,
        "continuations": [f" {x}" for x in LETTERS],
        "weights": {"gguf": gguf.name, "hf_folder": "dequantised from the same GGUF (float32)"},
        "dtype": args.dtype,
        "timing": "whole process (imports, load, scoring, writing); questions/s = n / wall_s",
        "lm_eval_settings": f"--model hf dtype={args.dtype} --device cpu --log_samples "
        "--batch_size "
        f"{args.lm_eval_batch_sizes} (k>0: {args.fewshot_batch_sizes})",
        "ours_settings": f"medmllm eval --backend hf --dtype {args.dtype} --no-cache "
        "(defaults: 64 items per call)",
        "environment_start": environment(),
        "settings": {},
    }
    best_batch: str | None = None
    with tempfile.TemporaryDirectory(prefix="evalbench-") as tmp:
        work = Path(tmp)
        data, shots = write_data(work, n)
        include = lm_eval_task(work, data, shots)
        for k in (int(s) for s in args.settings.split(",")):
            task = our_task(work, data, shots, k)
            row: dict[str, Any] = {"load_avg_start": list(os.getloadavg())}
            runs: list[tuple[str, str, str | None]] = []
            for engine in engines:
                if engine == "lm-eval":
                    sizes = batch_sizes
                    if k and args.fewshot_batch_sizes == "best" and best_batch is not None:
                        sizes = [best_batch]
                    runs += [(f"lm-eval-bs{b}", engine, b) for b in sizes]
                else:
                    runs.append((engine, engine, None))
            for label, engine, batch in runs:
                print(f"[{k}-shot] {label} …", flush=True)
                out = work / f"{label}-{k}"
                if engine == "ours-hf":
                    result = run_ours("hf", str(hf_dir), task, out, env, args.dtype)
                elif engine == "ours-llamacpp":
                    result = run_ours("llamacpp", str(gguf), task, out, env)
                else:
                    result = run_lm_eval(
                        hf_dir,
                        include,
                        k,
                        str(batch),
                        out,
                        env,
                        args.lm_eval_max_batch_size,
                        args.dtype,
                    )
                result["questions_per_s"] = round(n / result["wall_s"], 3)
                row[label] = result
                report["settings"][f"{k}-shot"] = row
                write_json(args.out, {**report, "complete": False})  # a killed run keeps data
                shown = {key: v for key, v in result.items() if key != "predictions"}
                print(f"    {shown}", flush=True)
            lm_runs = {key: v for key, v in row.items() if key.startswith("lm-eval-bs")}
            if lm_runs:
                fastest = max(lm_runs, key=lambda key: lm_runs[key]["questions_per_s"])
                if k == 0:
                    best_batch = lm_runs[fastest]["batch_size"]
                row["lm_eval_fastest"] = fastest
                for engine in engines:
                    if engine.startswith("ours"):
                        row[f"{engine}_vs_{fastest}"] = cmp = compare(row[engine], row[fastest], n)
                        print(
                            f"  {k}-shot: {engine} {row[engine]['questions_per_s']} q/s vs "
                            f"{fastest} {row[fastest]['questions_per_s']} q/s = "
                            f"{cmp['ratio_questions_per_s']}x; accuracy diff "
                            f"{cmp['accuracy_diff_questions']} questions, "
                            f"{cmp['predictions_differing']} predictions differ; ceiling with "
                            f"zero start-up {cmp['ceiling_ratio']}x",
                            flush=True,
                        )
            row["load_avg_end"] = list(os.getloadavg())
            report["settings"][f"{k}-shot"] = row
    report["environment_end_load_avg"] = list(os.getloadavg())
    path = write_json(args.out, {**report, "complete": True})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
