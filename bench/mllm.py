"""Multimodal benchmark: speed and size of encoder × aligner combinations, and VQA-RAD accuracy.

For each combination (every CPU-preset encoder with ``mlp2x_gelu``; the offline MobileNetV2 with
every aligner) on a tiny random LLM at 112 px:

* training images/s: ``train_mllm`` (instruct stage, full tuning of the tiny LLM, cached frozen
  features) for a few steps on synthetic images;
* generation tokens/s: greedy ``chat`` with an image through the ``hf`` backend's MLLM path;
* parameters (encoder / aligner / LLM / trainable) and visual tokens per image.

VQA-RAD closed / open accuracy with 95% CIs, the majority baseline, the image-blind control and
the image gain (overall and for the visible question types) come from the experiment runs
(``medmllm experiment vision-encoders|alignment --preset cpu``) when their ``results.json`` is
given; they are not re-trained here (``--accuracy-only`` refreshes just those rows).

Usage: ``python bench/mllm.py [--steps 4] [--experiments DIR ...]``
Writes ``bench/results/mllm.json``. The machine load is recorded: figures from a loaded machine
are not speed claims.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from PIL import Image

from _common import environment, write_json

ENCODERS = {
    "mobilenet-v2": {"name": "mobilenet-v2", "image_size": 112},
    "resnet": {"name": "resnet", "image_size": 112, "hidden_size": 64},
    "vit": {"name": "vit", "image_size": 112, "hidden_size": 64},
    "clip-vit": {"name": "clip-vit", "image_size": 112, "hidden_size": 64},
    "siglip": {"name": "siglip", "image_size": 112, "hidden_size": 64},
}
ALIGNERS = ["linear", "mlp2x_gelu", "qformer", "perceiver", "cross_attn"]
NOTE = (
    "combinations: tiny random LLM (hidden 64), 112 px, batch 8, CPU; speeds under the load "
    "shown (machinery, not model quality). vqa_rad: rows from the experiments' results.json "
    "(embedded SmolLM2-135M + LoRA, frozen cached encoder features; scored once on the "
    "held-apart VQA-RAD images; see each experiment's protocol)"
)


def combos() -> list[tuple[str, str]]:
    out = [(enc, "mlp2x_gelu") for enc in ENCODERS]
    out += [("mobilenet-v2", al) for al in ALIGNERS if al != "mlp2x_gelu"]
    return out


def synthetic_data(folder: Path, n: int = 16) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(
            folder / f"{i}.png"
        )
        rows.append({"image": f"{i}.png", "prompt": "Is there a fracture?", "target": "no"})
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def bench_one(encoder: str, aligner: str, data: Path, work: Path, steps: int) -> dict[str, Any]:
    from medmllm.models.backends.mllm import MLLMGenerator
    from medmllm.train.mllm import MLLMTrainConfig, train_mllm

    cfg = MLLMTrainConfig.model_validate(
        {
            "stage": "instruct",
            "model": {
                "encoder": ENCODERS[encoder],
                "aligner": {"name": aligner, "num_queries": 16, "hidden_size": 128},
                "llm": {"tiny": True, "hidden_size": 64},
            },
            "data": {"kind": "jsonl", "path": str(data)},
            "finetune": "full",
            "max_steps": steps,
            "save_steps": steps,
            "batch_size": 8,
            "progress": False,
            "output_dir": str(work / f"{encoder}-{aligner}"),
        }
    )
    summary = train_mllm(cfg, overwrite=True)
    gen = MLLMGenerator(summary["model_dir"])
    image = data.parent / "0.png"
    gen.chat([{"role": "user", "content": "warm up"}], [image], max_tokens=4)
    rates = []
    for _ in range(3):
        out = gen.chat([{"role": "user", "content": "Describe the image."}], [image], max_tokens=32)
        rates.append(out.usage.completion_tokens / out.latency_s)
    return {
        "encoder": encoder,
        "aligner": aligner,
        "train_images_per_s": round(summary["images_per_s"], 2),
        "train_steps": summary["steps"],
        "feature_cache_seconds": round(summary["feature_cache_seconds"], 2),
        "generation_tokens_per_s": round(float(np.median(rates)), 1),
        **summary["model"],
    }


def accuracy_from(results_file: Path) -> list[dict[str, Any]]:
    """VQA-RAD figures of an experiment's results.json: closed / open accuracy with CIs, the
    majority baseline, the image-blind score and image gain, overall and for the question types
    whose answer is visible (MODALITY / ORGAN / PLANE), and a degenerate flag per figure."""
    saved = json.loads(results_file.read_text())
    rows = []
    for label, cell in saved["cells"].items():
        section = cell.get("vqa", cell)
        if "eval" not in section:
            continue
        ev = section["eval"]
        analysis = ev.get("analysis") or {}
        row: dict[str, Any] = {
            "experiment": saved["experiment"],
            "phase": saved.get("phase"),
            "config": label,
            "visual_tokens": section["train"]["model"]["visual_tokens"],
            "train_cpu_seconds": round(section.get("cpu_seconds", {}).get("train", 0.0)),
            "majority_baseline": {
                k: ev["majority_baseline"].get(k)
                for k in ("vqa_closed_accuracy", "vqa_open_accuracy")
            },
        }
        for group in ("all", "visible (MODALITY/ORGAN/PLANE)", "other types"):
            for kind in ("closed", "open"):
                stats = (analysis.get(group) or {}).get(kind) or {}
                row[f"{group} {kind}"] = {
                    k: stats.get(k)
                    for k in (
                        "n", "accuracy", "accuracy_ci", "blind_accuracy", "image_gain",
                        "image_gain_ci", "image_gain_ci_by_image", "images", "constant_answer",
                        "same_as_blind",
                    )
                }  # fmt: skip
        probe = ev.get("organ_probe") or {}
        row["organ_probe"] = {
            k: probe.get(k)
            for k in ("n", "accuracy", "blind_accuracy", "image_gain", "image_gain_ci")
        } | {"majority_baseline": probe.get("majority_baseline")}
        rows.append(row)
    return rows


def _accuracy(folder: Path) -> list[dict[str, Any]]:
    path = folder / "results.json" if folder.is_dir() else folder
    return accuracy_from(path) if path.is_file() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--experiments", type=Path, nargs="*", default=[])
    parser.add_argument(
        "--accuracy-only",
        action="store_true",
        help="Keep the speed figures of the existing mllm.json; only refresh the VQA-RAD rows.",
    )
    args = parser.parse_args()
    if args.accuracy_only:
        from _common import RESULTS

        result = json.loads((RESULTS / "mllm.json").read_text())
        result["vqa_rad"] = [row for f in args.experiments for row in _accuracy(f)]
        result["note"] = NOTE
        write_json("mllm.json", result)
        return
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = synthetic_data(work)
        for encoder, aligner in combos():
            row = bench_one(encoder, aligner, data, work, args.steps)
            keys = ("encoder", "aligner", "train_images_per_s", "generation_tokens_per_s")
            print(json.dumps({k: row[k] for k in keys}), flush=True)
            rows.append(row)
    accuracy = [row for f in args.experiments for row in _accuracy(f)]
    result = {
        "benchmark": "mllm",
        "note": NOTE,
        "combinations": rows,
        "vqa_rad": accuracy,
        "seconds": round(time.perf_counter() - started, 1),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "environment": environment(["torch", "transformers", "peft", "pydicom"]),
    }
    write_json("mllm.json", result)


if __name__ == "__main__":
    main()
