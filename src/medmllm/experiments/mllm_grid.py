"""Shared runner of the multimodal experiments: config grid → train → evaluate → table/plot/JSON.

Each grid cell is one :class:`~medmllm.train.mllm.MLLMTrainConfig` (instruct stage on VQA-RAD,
or image → finding on covid_cxr_notes), trained with :func:`~medmllm.train.mllm.train_mllm`
and evaluated with the harness (:func:`medmllm.eval.runner.run_eval`: VQA-RAD closed / open
accuracy with 95% CIs, majority baseline and the image-blind control; report metrics BLEU /
ROUGE-L / METEOR for generation). Train and test are split **by image** (no image appears in
both), from the developer subset in the shared data folder.

Cells already finished (``cells/<name>/result.json``) are reused, so a killed experiment resumes.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medmllm.config import shared_data_dir

CAVEAT = (
    "CPU preset: tiny random-initialised LLM, few steps at small resolution. At this scale the "
    "numbers measure the machinery (training, caching, evaluation, blind control), not the "
    "encoders or aligners; random-initialised encoders in particular say nothing about their "
    "architectures. Run the gpu preset for a real comparison."
)


CPU_LLM: dict[str, Any] = {"tiny": True, "hidden_size": 64}
GPU_LLM: dict[str, Any] = {"model_id": "HuggingFaceTB/SmolLM2-1.7B-Instruct"}


def instruct_config(
    encoder: dict[str, Any],
    aligner: dict[str, Any],
    train_file: Path,
    *,
    cpu: bool,
    seed: int,
    cpu_steps: int,
    cpu_save_steps: int,
) -> dict[str, Any]:
    """One grid cell's ``instruct`` run (as a dict): full fine-tuning of a tiny LLM on the CPU,
    LoRA on SmolLM2-1.7B in bf16 on a GPU; the cells of a grid differ only in encoder/aligner."""
    return {
        "stage": "instruct",
        "model": {
            "encoder": encoder,
            "aligner": aligner,
            "llm": CPU_LLM if cpu else GPU_LLM,
            "seed": seed,
        },
        "data": {"kind": "jsonl", "path": str(train_file)},
        "finetune": "full" if cpu else "lora",
        "max_steps": cpu_steps if cpu else 3000,
        "save_steps": cpu_save_steps if cpu else 500,
        "batch_size": 8 if cpu else 16,
        "learning_rate": 5e-3 if cpu else 2e-4,
        "seed": seed,
        "progress": False,
        "precision": "fp32" if cpu else "bf16",
    }


def split_by_image(rows: list[dict[str, Any]], key: str, test_share: float, seed: int) -> tuple:
    """(train rows, test rows) with every image on one side only."""
    images = sorted({r[key] for r in rows})
    random.Random(seed).shuffle(images)
    n_test = max(1, int(len(images) * test_share))
    test_images = set(images[:n_test])
    train = [r for r in rows if r[key] not in test_images]
    test = [r for r in rows if r[key] in test_images]
    return train, test


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)
    return path


def prepare_vqa_rad(out_dir: Path, seed: int, test_share: float = 0.2) -> tuple[Path, Path]:
    """Train / test JSONL of VQA-RAD (image paths made absolute), split by image."""
    data = shared_data_dir()
    assert data is not None
    root = data / "vqa/vqa_rad"
    rows = [json.loads(line) for line in (root / "qa.jsonl").read_text().splitlines() if line]
    for r in rows:
        r["image_name"] = str(root / "images" / r["image_name"])
    train, test = split_by_image(rows, "image_name", test_share, seed)
    train_rows = [
        {"image": r["image_name"], "prompt": r["question"], "target": str(r["answer"])}
        for r in train
    ]
    return (
        _write_jsonl(out_dir / "data/vqa_train.jsonl", train_rows),
        _write_jsonl(out_dir / "data/vqa_test.jsonl", test),
    )


def prepare_covid(out_dir: Path, seed: int, test_share: float = 0.2) -> tuple[Path, Path]:
    """Train / test JSONL of covid_cxr_notes image → finding, split by image."""
    data = shared_data_dir()
    assert data is not None
    root = data / "imaging/covid_cxr_notes"
    rows = [json.loads(line) for line in (root / "cases.jsonl").read_text().splitlines() if line]
    prompt = "What is the finding in this chest X-ray?"
    items = [
        {
            "id": r["id"],
            "image": str(root / r["image"]),
            "prompt": prompt,
            "question": prompt,
            "target": str(r["finding"]),
            "answer": str(r["finding"]),
        }
        for r in rows
    ]
    train, test = split_by_image(items, "image", test_share, seed)
    return (
        _write_jsonl(out_dir / "data/covid_train.jsonl", train),
        _write_jsonl(out_dir / "data/covid_test.jsonl", test),
    )


def covid_task(out_dir: Path, test_file: Path) -> Path:
    """A harness task folder: covid_cxr_notes finding generation (report metrics)."""
    folder = out_dir / "data/covid_findings"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.yaml").write_text(
        "name: covid_findings\n"
        "description: Chest X-ray → finding label (covid_cxr_notes, held-out images)\n"
        "output_type: report\n"
        f"dataset: {{path: {test_file}}}\n"
        "fields: {id: id, question: question, answer: answer, image: image, options: null}\n"
        "prompt: {template: '{{ question }}', instruction: ''}\n"
        "answer_type: free\n"
        "generation: {max_tokens: 12}\n"
        "metrics: [bleu, rouge_l, meteor]\n"
    )
    return folder / "task.yaml"


def evaluate_vqa(model_dir: Path, test_file: Path, limit: int | None, seed: int) -> dict:
    """VQA-RAD through the harness (closed/open accuracy, baseline, image-blind control)."""
    from medmllm.eval.runner import EvalOptions, run_eval
    from medmllm.eval.task import load_task
    from medmllm.models.backends.mllm import MLLMGenerator

    task = load_task("vqa_rad")
    task.data_override = [test_file]
    gen = MLLMGenerator(model_dir)
    options = EvalOptions(mode="gen", limit=limit, seed=seed)
    results = run_eval([task], gen, options, cache_path=":memory:", report=False)
    return results["tasks"]["vqa_rad"]


def evaluate_generation(model_dir: Path, task_file: Path, limit: int | None, seed: int) -> dict:
    """Image → finding through the harness (BLEU, ROUGE-L, METEOR with CIs)."""
    from medmllm.eval.runner import EvalOptions, run_eval
    from medmllm.eval.task import Task
    from medmllm.models.backends.mllm import MLLMGenerator

    task = Task.from_file(task_file)
    gen = MLLMGenerator(model_dir)
    options = EvalOptions(mode="gen", limit=limit, seed=seed)
    results = run_eval([task], gen, options, cache_path=":memory:", report=False)
    return results["tasks"][task.name]


def run_cell(
    name: str,
    train_cfg: dict[str, Any],
    out_dir: Path,
    evaluate: Callable[[Path], dict[str, Any]],
) -> dict[str, Any]:
    """Train + evaluate one grid cell (reused when its result.json exists)."""
    from medmllm.provenance import config_hash
    from medmllm.train.mllm import MLLMTrainConfig, train_mllm

    cell = out_dir / "cells" / name
    done = cell / "result.json"
    cfg = MLLMTrainConfig.model_validate({**train_cfg, "output_dir": str(cell / "run")})
    digest = config_hash(cfg.model_dump(mode="json"))
    if done.is_file():
        previous = json.loads(done.read_text())
        if previous.get("config_hash") == digest:
            return previous
    started = time.perf_counter()
    summary = train_mllm(cfg, overwrite=True)
    evaluation = evaluate(Path(summary["model_dir"]))
    result = {
        "name": name,
        "config_hash": digest,
        "config": cfg.model_dump(mode="json"),
        "train": {k: v for k, v in summary.items() if k not in ("environment", "losses")},
        "losses": summary["losses"],
        "eval": {k: v for k, v in evaluation.items() if k not in ("items",)},
        "seconds": time.perf_counter() - started,
    }
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, done)
    return result


def metric_cell(section: dict[str, Any], name: str) -> str:
    m = section.get("metrics", {}).get(name) or {}
    if m.get("value") is None:
        return "–"
    ci = m.get("ci") or [m["value"], m["value"]]
    return f"{m['value']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}] (n={m.get('n', '?')})"


def gain_cell(section: dict[str, Any], name: str) -> str:
    g = (section.get("blind_control") or {}).get("image_gain", {}).get(name)
    if not g:
        return "–"
    return f"{g['value']:+.3f} [{g['ci'][0]:+.2f}, {g['ci'][1]:+.2f}]"


def baseline_cell(section: dict[str, Any], name: str) -> str:
    b = (section.get("majority_baseline") or {}).get(name) or {}
    return "–" if b.get("value") is None else f"{b['value']:.3f}"


def write_outputs(
    out_dir: Path,
    title: str,
    header: list[str],
    rows: list[list[str]],
    payload: dict[str, Any],
    plot: Callable[[Path], None],
) -> dict[str, Any]:
    """results.json, results.md (table + caveat) and results.png, atomically."""
    lines = [f"# {title}", "", f"> {payload['caveat']}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    md = "\n".join(lines)
    payload["table_markdown"] = md
    for name, text in (("results.md", md), ("results.json", json.dumps(payload, indent=2))):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out_dir / name)
    plot(out_dir / "results.png")
    return payload
