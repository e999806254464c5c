"""Survey experiment 1: which vision encoder? Same aligner, LLM and recipe; only the encoder varies.

Every encoder gets the same ``mlp2x_gelu`` aligner and the same LLM + LoRA, is trained on
VQA-RAD's training images and evaluated with the harness on images it never saw (protocol in
:mod:`medmllm.experiments.mllm_grid`): closed and open accuracy with 95% CIs, the majority
baseline, the image-blind control's paired image gain, overall and per question type.

* ``cpu`` preset: the embedded SmolLM2-135M-Instruct and the two offline pretrained encoders —
  DINOv2 ViT-S/14 and ImageNet MobileNetV2 — at 224 px, patch grid pooled to 2x2 (+CLS), next to
  a ViT-S/14-sized DINOv2 with random weights as a labelled contrast (same pipeline, no
  pretraining).
* ``gpu`` preset: hub checkpoints (ResNet-50, ViT-B/16, CLIP ViT-L/14-336, DINOv2-B) at full
  resolution with SmolLM2-1.7B-Instruct; runs unchanged on a CUDA machine.

``phase="tune"`` trains on the fit images and evaluates on the tune images (for choosing the
recipe); ``phase="final"`` (default) trains on all training images and evaluates once on the
held-apart images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from medmllm.experiments import mllm_grid as G

CPU_ENCODERS: dict[str, dict[str, Any]] = {
    "DINOv2-small ViT-S/14 (pretrained)": {"name": "dinov2-small"},
    "MobileNetV2 (ImageNet CNN, pretrained)": {"name": "mobilenet-v2"},
    "ViT-S/14-sized DINOv2, random weights (contrast)": {
        "name": "dinov2",
        "hidden_size": 384,
        "num_layers": 12,
        "patch_size": 14,
    },
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


def grid(
    preset: Literal["cpu", "gpu"],
    train_file: Path,
    n_rows: int = 1000,
    recipe: G.VqaRecipe | None = None,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Training configs (as dicts) per encoder label."""
    recipe = recipe or G.RECIPES[preset]
    encoders = CPU_ENCODERS if preset == "cpu" else GPU_ENCODERS
    return {
        label: G.instruct_config(enc, {"name": "mlp2x_gelu"}, train_file, n_rows, recipe, seed=seed)
        for label, enc in encoders.items()
    }


def run(
    preset: Literal["cpu", "gpu"],
    out_dir: Path,
    *,
    seed: int = 0,
    phase: G.Phase = "final",
    encoders: list[str] | None = None,
    limit: int | None = None,
    max_steps: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run the grid; writes results.json, results.md and results.png (tune.* for the tune phase)
    into ``out_dir``. ``options`` override :class:`~medmllm.experiments.mllm_grid.VqaRecipe`
    fields (e.g. ``epochs=2``); ``encoders`` keeps the labels containing one of the strings."""
    from rich.console import Console

    from medmllm.provenance import config_hash, environment

    console = Console(stderr=True, highlight=False)
    recipe = G.recipe_for(preset, {**options, "eval_limit": limit})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = G.prepare_vqa_rad(out_dir, recipe, seed, phase)
    cells = grid(preset, data.train_file, data.n_train_rows, recipe, seed)
    if encoders:
        cells = {k: v for k, v in cells.items() if any(e.lower() in k.lower() for e in encoders)}
    results: dict[str, dict[str, Any]] = {}
    for label, cfg in cells.items():
        if max_steps is not None:
            cfg = {**cfg, "max_steps": max_steps, "save_steps": max_steps, "warmup_steps": 0}
        enc = cfg["model"]["encoder"]
        name = f"{phase}-{enc['name']}-{config_hash(cfg)[:8]}"
        results[label] = G.run_cell(
            name,
            cfg,
            out_dir,
            lambda model_dir: G.evaluate_vqa(
                model_dir, data.eval_file, recipe.eval_limit, seed, data.probe_file
            ),
            log=console.print,
            eval_key=data.eval_key(recipe.eval_limit, seed),
        )
    header = ["encoder", *G.VQA_HEADER, "visual tokens", "trainable params", "train CPU-s"]
    rows = [
        [
            label,
            *G.vqa_row(r["eval"]),
            str(r["train"]["model"]["visual_tokens"]),
            f"{r['train']['model']['trainable_parameters']:,}",
            f"{r['cpu_seconds']['train']:,.0f}",
        ]
        for label, r in results.items()
    ]
    type_header, type_rows = G.per_type_table({k: v["eval"] for k, v in results.items()})
    payload = {
        "experiment": "vision-encoders",
        "preset": preset,
        "phase": phase,
        "caveat": G.CPU_CAVEAT if preset == "cpu" else "gpu preset (hub checkpoints)",
        "seed": seed,
        "recipe": recipe.model_dump(),
        "protocol": data.protocol,
        "config_hash": config_hash(cells),
        "cells": {k: G.public_cell(v) for k, v in results.items()},
        "environment": environment(),
    }
    where = "tune images" if phase == "tune" else "held-apart images"
    return G.write_outputs(
        out_dir,
        f"Experiment 1 — vision encoders on VQA-RAD ({phase} phase: {where})",
        [
            ("", header, rows),
            ("Per question type (image gain = with image − blind)", type_header, type_rows),
        ],
        payload,
        lambda path: G.plot_vqa({k: v["eval"] for k, v in results.items()}, path),
        stem="results" if phase == "final" else "tune",
    )
