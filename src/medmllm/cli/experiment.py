"""``medmllm experiment NAME --preset cpu|gpu``: the survey's experiments, one command each."""

from __future__ import annotations

from pathlib import Path

import typer

from medmllm.errors import InvalidRequestError


def experiment(
    name: str = typer.Argument(..., help="vision-encoders, alignment or training-stages."),
    preset: str = typer.Option("cpu", "--preset", help="cpu (small, offline) or gpu (hub ids)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder."),  # noqa: B008
) -> None:
    """Run one of the survey's experiments and write its table, plot and JSON."""
    from medmllm.experiments import EXPERIMENTS, run_experiment

    if preset not in ("cpu", "gpu"):
        raise InvalidRequestError(f"--preset must be cpu or gpu, got {preset!r}")
    EXPERIMENTS.get(name)  # unknown names fail before any work, with "did you mean"
    run_experiment(name, preset, out or Path("experiments-runs") / name / preset)  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    app.command("experiment")(experiment)
