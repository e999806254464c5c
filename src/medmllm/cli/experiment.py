"""``medmllm experiment NAME --preset cpu|gpu``: the survey's experiments, one command each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from medmllm.errors import InvalidRequestError

MULTIMODAL = ("vision-encoders", "alignment")


def experiment(
    name: str = typer.Argument(..., help="vision-encoders, alignment or training-stages."),
    preset: str = typer.Option("cpu", "--preset", help="cpu (small, offline) or gpu (hub ids)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder."),  # noqa: B008
    phase: str = typer.Option(
        "final",
        "--phase",
        help="vision-encoders / alignment: tune (train on the fit images, score the tune "
        "images; for choosing the recipe) or final (all training images, score the held-apart "
        "images once).",
    ),
) -> None:
    """Run one of the survey's experiments and write its table, plot and JSON."""
    from medmllm.experiments import EXPERIMENTS, run_experiment

    if preset not in ("cpu", "gpu"):
        raise InvalidRequestError(f"--preset must be cpu or gpu, got {preset!r}")
    if phase not in ("tune", "final"):
        raise InvalidRequestError(f"--phase must be tune or final, got {phase!r}")
    EXPERIMENTS.get(name)  # unknown names fail before any work, with "did you mean"
    options: dict[str, Any] = {}
    if name in MULTIMODAL:
        options["phase"] = phase
    elif phase != "final":
        raise InvalidRequestError(
            f"--phase applies to {' and '.join(MULTIMODAL)}, not {name}",
            hint="leave --phase out for this experiment",
        )
    run_experiment(name, preset, out or Path("experiments-runs") / name / preset, **options)  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    app.command("experiment")(experiment)
