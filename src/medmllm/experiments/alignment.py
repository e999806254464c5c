"""Survey experiment 2: which alignment module? Projection vs query-based vs cross-attention.

Five aligners — ``linear`` and ``mlp2x_gelu`` (projection), ``qformer`` and ``perceiver``
(learned queries), ``cross_attn`` (gated cross-attention inside the LLM) — with the same encoder,
LLM and recipe, trained on VQA-RAD's training images and evaluated with the harness on images it
never saw (protocol in :mod:`medmllm.experiments.mllm_grid`): closed / open accuracy, majority
baseline, image-blind control and image gain, overall and per question type.

* ``cpu`` preset: the best pretrained encoder of experiment 1's tune phase (DINOv2 ViT-S/14, 224
  px) and the embedded SmolLM2-135M-Instruct + LoRA. The splicing aligners get the same
  visual-token budget: the projections read the patch grid pooled to 4x4 (+CLS, 17 tokens), the
  query aligners read every patch and emit 17 queries; ``cross_attn`` reads every patch through
  gated blocks before every 6th decoder layer and adds no tokens.
* ``gpu`` preset: CLIP ViT-L/14-336 + SmolLM2-1.7B-Instruct. It can also train the aligners on
  image → finding generation (covid_cxr_notes, ``tasks=["findings", "vqa"]``; BLEU / ROUGE-L /
  METEOR), which the cpu preset leaves out: 43 of its 200 labels are "todo" and the harness has
  no image-blind control for report tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from medmllm.experiments import mllm_grid as G

ALIGNERS = ["linear", "mlp2x_gelu", "qformer", "perceiver", "cross_attn"]
KINDS = {
    "linear": "projection",
    "mlp2x_gelu": "projection",
    "qformer": "queries",
    "perceiver": "queries",
    "cross_attn": "cross-attention",
}
CPU_ENCODER: dict[str, Any] = {"name": "dinov2-small"}
GPU_ENCODER: dict[str, Any] = {
    "name": "clip-vit",
    "model_id": "openai/clip-vit-large-patch14-336",
    "image_size": 336,
    "feature_layer": -2,
}


def grid(
    preset: Literal["cpu", "gpu"],
    train_file: Path,
    n_rows: int = 1000,
    recipe: G.VqaRecipe | None = None,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Training configs per aligner (same encoder, LLM and recipe)."""
    recipe = recipe or G.RECIPES[preset]
    encoder = CPU_ENCODER if preset == "cpu" else GPU_ENCODER
    budget = recipe.pool_grid**2 + 1 if recipe.pool_grid else 16
    shape = {"num_queries": budget, "num_layers": 2, "hidden_size": 128, "every": 6}
    # the projections keep their defaults (MLP width = the encoder's), so experiment 2's
    # mlp2x_gelu cell is experiment 1's cell for the same encoder and is reused, not retrained
    return {
        name: G.instruct_config(
            encoder,
            {"name": name} if KINDS[name] == "projection" else {"name": name, **shape},
            train_file,
            n_rows,
            recipe,
            seed=seed,
        )
        for name in ALIGNERS
    }


def run(
    preset: Literal["cpu", "gpu"],
    out_dir: Path,
    *,
    seed: int = 0,
    phase: G.Phase = "final",
    aligners: list[str] | None = None,
    tasks: list[str] | None = None,
    limit: int | None = None,
    max_steps: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run the grid; writes results.json, results.md and results.png (tune.* in the tune phase)
    into ``out_dir``. ``options`` override :class:`~medmllm.experiments.mllm_grid.VqaRecipe`
    fields."""
    from rich.console import Console

    from medmllm.provenance import config_hash, environment

    console = Console(stderr=True, highlight=False)
    recipe = G.recipe_for(preset, {**options, "eval_limit": limit})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = aligners or ALIGNERS
    tasks = tasks or (["vqa"] if preset == "cpu" else ["findings", "vqa"])
    data = G.prepare_vqa_rad(out_dir, recipe, seed, phase)
    grids: dict[str, dict[str, dict[str, Any]]] = {}
    results: dict[str, dict[str, Any]] = {}
    if "findings" in tasks:
        cov_train, cov_test = G.prepare_covid(out_dir, seed)
        cov_task = G.covid_task(out_dir, cov_test)
        n_cov = len(cov_train.read_text().splitlines())
        grids["findings"] = grid(preset, cov_train, n_cov, recipe, seed)
    if "vqa" in tasks:
        grids["vqa"] = grid(preset, data.train_file, data.n_train_rows, recipe, seed)
    for task, cells in grids.items():
        for name, cfg in cells.items():
            if name not in chosen:
                continue
            if max_steps is not None:
                cfg = {**cfg, "max_steps": max_steps, "save_steps": max_steps, "warmup_steps": 0}
            if task == "findings":

                def evaluate(model_dir: Path) -> dict[str, Any]:
                    return G.evaluate_generation(model_dir, cov_task, recipe.eval_limit, seed)

            else:

                def evaluate(model_dir: Path) -> dict[str, Any]:
                    return G.evaluate_vqa(
                        model_dir, data.eval_file, recipe.eval_limit, seed, data.probe_file
                    )

            cell = f"{phase}-{task}-{name}-{config_hash(cfg)[:8]}"
            key = (
                f"findings:{G.file_digest(cov_test)}:{recipe.eval_limit}:{seed}"
                if task == "findings"
                else data.eval_key(recipe.eval_limit, seed)
            )
            results.setdefault(name, {})[task] = G.run_cell(
                cell, cfg, out_dir, evaluate, log=console.print, eval_key=key
            )
    header = ["aligner", "kind", "visual tokens", "aligner params", *G.VQA_HEADER, "train CPU-s"]
    rows = []
    for name, r in results.items():
        vqa = r.get("vqa")
        info = (vqa or r.get("findings") or {}).get("train", {}).get("model", {})
        row = [name, KINDS[name], str(info.get("visual_tokens", "?"))]
        row.append(f"{info.get('aligner_parameters', 0):,}")
        row += G.vqa_row(vqa["eval"]) if vqa else ["–"] * len(G.VQA_HEADER)
        row.append(f"{vqa['cpu_seconds']['train']:,.0f}" if vqa else "–")
        rows.append(row)
    tables = [("", header, rows)]
    vqa_cells = {k: v["vqa"]["eval"] for k, v in results.items() if "vqa" in v}
    if vqa_cells:
        tables.append(
            ("Per question type (image gain = with image − blind)", *G.per_type_table(vqa_cells))
        )
    findings = {k: v["findings"]["eval"] for k, v in results.items() if "findings" in v}
    if findings:
        f_header = ["aligner", "BLEU-4", "ROUGE-L", "METEOR"]
        f_rows = [
            [k, *(G.metric_cell(s, m) for m in ("bleu4", "rouge_l", "meteor"))]
            for k, s in findings.items()
        ]
        tables.append(("covid_cxr_notes image → finding", f_header, f_rows))
    payload = {
        "experiment": "alignment",
        "preset": preset,
        "phase": phase,
        "caveat": G.CPU_CAVEAT if preset == "cpu" else "gpu preset (hub checkpoints)",
        "seed": seed,
        "recipe": recipe.model_dump(),
        "protocol": data.protocol,
        "config_hash": config_hash(grids),
        "cells": {
            name: {task: G.public_cell(cell) for task, cell in r.items()}
            for name, r in results.items()
        },
        "environment": environment(),
    }
    where = "tune images" if phase == "tune" else "held-apart images"
    return G.write_outputs(
        out_dir,
        f"Experiment 2 — alignment modules on VQA-RAD ({phase} phase: {where})",
        tables,
        payload,
        (lambda path: G.plot_vqa(vqa_cells, path)) if vqa_cells else None,
        stem="results" if phase == "final" else "tune",
    )
