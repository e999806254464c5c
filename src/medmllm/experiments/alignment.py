"""Survey experiment 2: which alignment module? Projection vs query-based vs cross-attention.

Five aligners — ``linear`` and ``mlp2x_gelu`` (projection), ``qformer`` and ``perceiver``
(learned queries), ``cross_attn`` (gated cross-attention inside the LLM) — with the same encoder
and LLM, each trained twice: image → finding generation on covid_cxr_notes (align stage,
evaluated with BLEU / ROUGE-L / METEOR and 95% CIs) and VQA-RAD (instruct stage; closed / open
accuracy, majority baseline, image-blind control). Train and test are split by image.

* ``cpu`` preset: the offline pretrained MobileNetV2 encoder at 112 px, a tiny random LLM, a
  few dozen steps (≤ 30 min on 2 cores); measures the machinery, not the aligners
  (:data:`~medmllm.experiments.mllm_grid.CAVEAT`).
* ``gpu`` preset: CLIP ViT-L/14-336 + SmolLM2-1.7B-Instruct, thousands of steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from medmllm.experiments import mllm_grid as G

ALIGNERS = ["linear", "mlp2x_gelu", "qformer", "perceiver", "cross_attn"]


def grid(
    preset: Literal["cpu", "gpu"], train_file: Path, task: Literal["vqa", "findings"], seed: int
) -> dict[str, dict[str, Any]]:
    """Training configs per aligner for one of the two tasks."""
    cpu = preset == "cpu"
    encoder = (
        {"name": "mobilenet-v2", "image_size": 112}
        if cpu
        else {
            "name": "clip-vit",
            "model_id": "openai/clip-vit-large-patch14-336",
            "image_size": 336,
            "feature_layer": -2,
        }
    )
    aligner = {"num_queries": 16, "num_layers": 2, "hidden_size": 128}
    return {
        name: G.instruct_config(
            encoder,
            {"name": name, **aligner},
            train_file,
            cpu=cpu,
            seed=seed,
            cpu_steps=10,
            cpu_save_steps=10,
        )
        for name in ALIGNERS
    }


def run(
    preset: Literal["cpu", "gpu"],
    out_dir: Path,
    *,
    seed: int = 0,
    limit: int | None = None,
    max_steps: int | None = None,
    aligners: list[str] | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Run the grid; writes results.json, results.md and results.png into ``out_dir``."""
    from medmllm.provenance import config_hash, environment

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vqa_train, vqa_test = G.prepare_vqa_rad(out_dir, seed)
    cov_train, cov_test = G.prepare_covid(out_dir, seed)
    cov_task = G.covid_task(out_dir, cov_test)
    eval_limit = limit if limit is not None else (30 if preset == "cpu" else None)
    chosen = aligners or ALIGNERS
    results: dict[str, dict[str, Any]] = {}
    grids = {
        "findings": grid(preset, cov_train, "findings", seed),
        "vqa": grid(preset, vqa_train, "vqa", seed),
    }
    for task, cells in grids.items():
        for name, cfg in cells.items():
            if name not in chosen:
                continue
            if max_steps is not None:
                cfg = {**cfg, "max_steps": max_steps, "save_steps": max_steps}
            if task == "findings":

                def evaluate(model_dir: Path) -> dict[str, Any]:
                    return G.evaluate_generation(model_dir, cov_task, eval_limit, seed)

            else:

                def evaluate(model_dir: Path) -> dict[str, Any]:
                    return G.evaluate_vqa(model_dir, vqa_test, eval_limit, seed)

            results.setdefault(name, {})[task] = G.run_cell(
                f"{task}-{name}", cfg, out_dir, evaluate
            )
    header = [
        "aligner", "kind", "trainable params", "visual tokens", "BLEU-4", "ROUGE-L", "METEOR",
        "VQA closed [95% CI]", "closed gain vs blind", "VQA open", "majority (closed)",
    ]  # fmt: skip
    kinds = {
        "linear": "projection",
        "mlp2x_gelu": "projection",
        "qformer": "queries",
        "perceiver": "queries",
        "cross_attn": "cross-attention",
    }
    rows = []
    for name, r in results.items():
        f = r.get("findings", {}).get("eval", {})
        v = r.get("vqa", {}).get("eval", {})
        info = (r.get("vqa") or r.get("findings") or {}).get("train", {}).get("model", {})
        rows.append(
            [
                name,
                kinds[name],
                f"{info.get('aligner_parameters', 0):,}",
                str(info.get("visual_tokens", "?")),
                G.metric_cell(f, "bleu4"),
                G.metric_cell(f, "rouge_l"),
                G.metric_cell(f, "meteor"),
                G.metric_cell(v, "vqa_closed_accuracy"),
                G.gain_cell(v, "vqa_closed_accuracy"),
                G.metric_cell(v, "vqa_open_accuracy"),
                G.baseline_cell(v, "vqa_closed_accuracy"),
            ]
        )
    payload = {
        "experiment": "alignment",
        "preset": preset,
        "caveat": G.CAVEAT if preset == "cpu" else "gpu preset (hub checkpoints)",
        "seed": seed,
        "config_hash": config_hash(grids),
        "split": "covid_cxr_notes and VQA-RAD developer subsets, split by image (20% held out)",
        "cells": results,
        "environment": environment(),
    }
    return G.write_outputs(
        out_dir, "Experiment 2 — alignment modules", header, rows, payload,
        lambda path: _plot(results, path),
    )  # fmt: skip


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for x, name in enumerate(names):
        f = results[name].get("findings", {}).get("eval", {}).get("metrics", {})
        for j, (metric, colour) in enumerate(
            (("bleu4", "#4c78a8"), ("rouge_l", "#f58518"), ("meteor", "#54a24b"))
        ):
            m = f.get(metric) or {}
            if m.get("value") is None:
                continue
            lo, hi = m["ci"]
            pos = x + (j - 1) * 0.25
            axes[0].bar(pos, m["value"], width=0.25, color=colour)
            axes[0].errorbar(
                pos, m["value"], yerr=[[m["value"] - lo], [hi - m["value"]]], color="k"
            )
        v = results[name].get("vqa", {}).get("eval", {})
        m = v.get("metrics", {}).get("vqa_closed_accuracy") or {}
        if m.get("value") is not None:
            lo, hi = m["ci"]
            axes[1].bar(x, m["value"], color="#4c78a8")
            axes[1].errorbar(x, m["value"], yerr=[[m["value"] - lo], [hi - m["value"]]], color="k")
            blind = (v.get("blind_control") or {}).get("metrics", {}).get("vqa_closed_accuracy")
            if blind and blind.get("value") is not None:
                axes[1].plot(x, blind["value"], "o", color="#f58518")
    for ax in axes:
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    axes[0].set_title("covid_cxr_notes findings: BLEU-4 / ROUGE-L / METEOR")
    axes[1].set_title("VQA-RAD closed accuracy (dot: image-blind)")
    axes[1].set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
