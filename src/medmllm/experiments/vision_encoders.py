"""Survey experiment 1: which vision encoder? CNN vs ViT vs CLIP-ViT, same aligner and LLM.

Every encoder gets the same ``mlp2x_gelu`` aligner and the same LLM, is trained on VQA-RAD
(instruct stage, train images) and evaluated with the harness on held-out images: closed and
open accuracy with 95% CIs, the majority baseline and the image-blind control (image gain).

* ``cpu`` preset: the offline pretrained pair — ImageNet MobileNetV2 (CNN) and, when available,
  DINOv2 ViT-S/14 — next to random-initialised ResNet / ViT / CLIP-ViT, at 112 px, a tiny
  random LLM, a few dozen steps (≤ 30 min on 2 cores). It measures the machinery, not the
  encoders (see :data:`~medmllm.experiments.mllm_grid.CAVEAT`).
* ``gpu`` preset: hub checkpoints (ResNet-50, ViT-B/16, CLIP ViT-L/14-336, DINOv2-B) at full
  resolution with SmolLM2-1.7B-Instruct; runs unchanged on a CUDA machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from medmllm.experiments import mllm_grid as G

CPU_ENCODERS: dict[str, dict[str, Any]] = {
    "mobilenet-v2 (ImageNet, CNN)": {"name": "mobilenet-v2", "image_size": 112},
    "resnet (random, CNN)": {"name": "resnet", "image_size": 112, "hidden_size": 64},
    "vit (random)": {"name": "vit", "image_size": 112, "hidden_size": 64, "patch_size": 16},
    "clip-vit (random)": {"name": "clip-vit", "image_size": 112, "hidden_size": 64},
    "dinov2-small (DINOv2 ViT-S/14)": {"name": "dinov2-small", "image_size": 112},
}
GPU_ENCODERS: dict[str, dict[str, Any]] = {
    "resnet-50 (CNN)": {"name": "resnet", "model_id": "microsoft/resnet-50", "image_size": 224},
    "vit-b/16": {"name": "vit", "model_id": "google/vit-base-patch16-224", "image_size": 224},
    "clip-vit-l/14-336": {
        "name": "clip-vit",
        "model_id": "openai/clip-vit-large-patch14-336",
        "image_size": 336,
        "feature_layer": -2,
    },
    "dinov2-base": {"name": "dinov2", "model_id": "facebook/dinov2-base", "image_size": 224},
}


def grid(preset: Literal["cpu", "gpu"], train_file: Path, seed: int = 0) -> dict[str, dict]:
    """Training configs (as dicts) per encoder label."""
    cpu = preset == "cpu"
    encoders = CPU_ENCODERS if cpu else GPU_ENCODERS
    return {
        label: G.instruct_config(
            enc,
            {"name": "mlp2x_gelu"},
            train_file,
            cpu=cpu,
            seed=seed,
            cpu_steps=40,
            cpu_save_steps=20,
        )
        for label, enc in encoders.items()
    }


def run(
    preset: Literal["cpu", "gpu"],
    out_dir: Path,
    *,
    seed: int = 0,
    limit: int | None = None,
    max_steps: int | None = None,
    encoders: list[str] | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Run the grid; writes results.json, results.md and results.png into ``out_dir``."""
    from medmllm.provenance import config_hash, environment

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_file, test_file = G.prepare_vqa_rad(out_dir, seed)
    cells = grid(preset, train_file, seed)
    if encoders:
        cells = {k: v for k, v in cells.items() if any(e in k for e in encoders)}
    eval_limit = limit if limit is not None else (120 if preset == "cpu" else None)
    results = {}
    for i, (label, cfg) in enumerate(cells.items()):
        if max_steps is not None:
            cfg = {**cfg, "max_steps": max_steps, "save_steps": max_steps}
        results[label] = G.run_cell(
            f"{i}-{cfg['model']['encoder']['name']}",
            cfg,
            out_dir,
            lambda model_dir: G.evaluate_vqa(model_dir, test_file, eval_limit, seed),
        )
    header = [
        "encoder", "closed acc [95% CI]", "closed gain vs blind", "open acc [95% CI]",
        "open gain vs blind", "majority (closed)", "trainable params", "visual tokens", "img/s",
    ]  # fmt: skip
    rows = []
    for label, r in results.items():
        s = r["eval"]
        rows.append(
            [
                label,
                G.metric_cell(s, "vqa_closed_accuracy"),
                G.gain_cell(s, "vqa_closed_accuracy"),
                G.metric_cell(s, "vqa_open_accuracy"),
                G.gain_cell(s, "vqa_open_accuracy"),
                G.baseline_cell(s, "vqa_closed_accuracy"),
                f"{r['train']['model']['trainable_parameters']:,}",
                str(r["train"]["model"]["visual_tokens"]),
                f"{r['train']['images_per_s']:.1f}",
            ]
        )
    payload = {
        "experiment": "vision-encoders",
        "preset": preset,
        "caveat": G.CAVEAT if preset == "cpu" else "gpu preset (hub checkpoints)",
        "seed": seed,
        "config_hash": config_hash({k: v for k, v in cells.items()}),
        "split": "VQA-RAD developer subset, split by image (20% of images held out)",
        "cells": results,
        "environment": environment(),
    }
    return G.write_outputs(
        out_dir, "Experiment 1 — vision encoders on VQA-RAD", header, rows, payload,
        lambda path: _plot(results, path),
    )  # fmt: skip


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, metric, title in (
        (axes[0], "vqa_closed_accuracy", "closed (yes/no)"),
        (axes[1], "vqa_open_accuracy", "open"),
    ):
        for x, label in enumerate(labels):
            s = results[label]["eval"]
            m = s["metrics"].get(metric) or {}
            if m.get("value") is None:
                continue
            lo, hi = m["ci"]
            ax.bar(x, m["value"], color="#4c78a8")
            ax.errorbar(x, m["value"], yerr=[[m["value"] - lo], [hi - m["value"]]], color="k")
            blind = (s.get("blind_control") or {}).get("metrics", {}).get(metric) or {}
            if blind.get("value") is not None:
                ax.plot(x, blind["value"], "o", color="#f58518")
            base = (s.get("majority_baseline") or {}).get(metric) or {}
            if base.get("value") is not None:
                ax.hlines(base["value"], x - 0.4, x + 0.4, colors="#e45756", linestyles="--")
        ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=7, ha="right")
        ax.set_title(title)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("accuracy (95% CI)")
    axes[0].plot([], [], "o", color="#f58518", label="image-blind control")
    axes[0].plot([], [], "--", color="#e45756", label="majority baseline")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
