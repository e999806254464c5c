"""``medmllm experiment NAME --preset cpu|gpu``: the survey's experiments, one command each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from medmllm.errors import InvalidRequestError

MULTIMODAL = ("vision-encoders", "alignment")


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``["mts_split=tune", "stages=[base, sft_mts]"]`` → options; values are read as YAML."""
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidRequestError(
                f"--set takes KEY=VALUE, got {pair!r}",
                hint="e.g. --set mts_split=tune --set 'stages=[base, sft_mts]'",
            )
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise InvalidRequestError(
                f"--set {key.strip()}: {value!r} is not a YAML value",
                hint="quote strings with YAML syntax, e.g. --set 'stages=[base, sft_mts]'",
            ) from None
    return options


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
    sets: list[str] = typer.Option(  # noqa: B008
        [],
        "--set",
        help="KEY=VALUE override of a preset setting (repeatable; values are YAML), e.g. "
        "training-stages --set mts_split=tune to choose the MTS stage's settings.",
    ),
) -> None:
    """Run one of the survey's experiments and write its table, plot and JSON."""
    from medmllm.experiments import EXPERIMENTS, run_experiment

    if preset not in ("cpu", "gpu"):
        raise InvalidRequestError(f"--preset must be cpu or gpu, got {preset!r}")
    if phase not in ("tune", "final"):
        raise InvalidRequestError(f"--phase must be tune or final, got {phase!r}")
    options = parse_sets(sets)
    EXPERIMENTS.get(name)  # unknown names fail before any work, with "did you mean"
    if name in MULTIMODAL:
        options["phase"] = phase
    elif phase != "final":
        raise InvalidRequestError(
            f"--phase applies to {' and '.join(MULTIMODAL)}, not {name}",
            hint="leave --phase out for this experiment",
        )
    target = out or Path("experiments-runs") / name / preset
    run_experiment(name, preset, target, **options)  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    app.command("experiment")(experiment)
