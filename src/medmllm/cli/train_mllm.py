"""``medmllm train mllm``: one stage (align / instruct) of multimodal training."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

CONFIG_OPT = typer.Option(..., "--config", "-c", help="YAML config (configs/train/mllm_*).")
OUT_OPT = typer.Option(None, "--out", "-o", help="Run folder (overrides output_dir).")


def train_mllm_cmd(
    config: Path = CONFIG_OPT,
    stage: str | None = typer.Option(
        None, "--stage", help="align (aligner only) or instruct (aligner + LoRA/full LLM)."
    ),
    out: Path | None = OUT_OPT,
    init_from: str | None = typer.Option(
        None, "--init-from", help="Start from this MedMLLM folder (e.g. the align run's model/)."
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Override max_steps."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in an existing run."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train a vision encoder × aligner × LLM model for one stage; resumes a killed run."""
    from medmllm.errors import ConfigError
    from medmllm.train.mllm import MLLMTrainConfig, train_mllm

    if stage is not None and stage not in ("align", "instruct"):
        raise ConfigError(f"--stage must be align or instruct, got {stage!r}")
    cfg = MLLMTrainConfig.from_yaml(
        config,
        stage=stage,
        output_dir=str(out) if out else None,
        init_from=init_from,
        max_steps=max_steps,
    )
    summary = train_mllm(cfg, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in summary.items() if k != "environment"}))
        return
    console = Console(highlight=False)
    info = summary["model"]
    console.print(
        f"stage {summary['stage']} · {info['encoder']} + {info['aligner']} · "
        f"{summary['steps']} steps · final loss {summary['final_loss']:.4f} · "
        f"{summary['images_per_s']:.2f} images/s · trainable {info['trainable_parameters']:,}"
    )
    console.print(f"model: {summary['model_dir']}", markup=False, soft_wrap=True)
    held = summary["held_apart"]
    console.print(
        f"held apart: {held['rows']} rows on {held['images']} images, never trained on "
        f"(evaluate them: medmllm eval --exclude-split {held['split']})",
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add ``medmllm train mllm`` to the train group."""
    app.command("mllm")(train_mllm_cmd)
