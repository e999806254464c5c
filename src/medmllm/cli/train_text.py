"""``medmllm train cpt|ift|sft|dpo|rlaif|reward``: thin typer layers over ``medmllm.train``.

Each command loads a YAML config (validated by the recipe's pydantic model), applies the flags
given on the command line, and runs the recipe. Rerunning the same command resumes from the last
complete checkpoint; under ``accelerate launch`` the same command trains on several devices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

# name → (module, config class, help); modules import TRL, so they load only when run.
RECIPES: dict[str, tuple[str, str, str]] = {
    "cpt": ("medmllm.train.cpt", "CPTRunConfig", "Continued pre-training on raw text (packed)."),
    "ift": ("medmllm.train.ift", "IFTRunConfig", "Instruction tuning on question → answer data."),
    "sft": ("medmllm.train.sft", "SFTRunConfig", "Task SFT, chat format (MCQA, MTS-Dialog…)."),
    "dpo": ("medmllm.train.dpo", "DPORunConfig", "Direct preference optimisation on pairs."),
    "rlaif": (
        "medmllm.train.rlaif",
        "RLAIFRunConfig",
        "Judge-labelled pairs of own answers → DPO.",
    ),
    "reward": ("medmllm.train.reward", "RewardRunConfig", "Reward model on preference pairs."),
}


def run_from_cli(
    recipe: str, config_path: Path | None, overrides: dict[str, Any], *, overwrite: bool = False
) -> dict[str, Any]:
    """Load the recipe's config (file + flag overrides) and run it; the library behind the CLI."""
    import importlib

    from medmllm.train.core import load_config, validate_config

    module_name, cls_name, _ = RECIPES[recipe]
    module = importlib.import_module(module_name)
    cls = getattr(module, cls_name)
    if config_path is not None:
        config = load_config(config_path, cls, overrides)
    else:
        config = validate_config(
            cls, {k: v for k, v in overrides.items() if v is not None}, "<command line>"
        )
    return module.train(config, overwrite=overwrite)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (values parsed as YAML; dotted keys nest) → an overrides mapping."""
    import yaml

    from medmllm.errors import InvalidRequestError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequestError(f"--set needs KEY=VALUE, got {item!r}")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def _command(recipe: str) -> Any:
    def command(
        config: Path | None = typer.Option(  # noqa: B008
            None, "--config", "-c", help="YAML config (configs/train/*.yaml)."
        ),
        max_steps: int | None = typer.Option(None, "--max-steps", help="Override max_steps."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Run folder (output_dir)."),  # noqa: B008
        model: str | None = typer.Option(None, "--model", "-m", help="Base model id/path."),
        adapter: str | None = typer.Option(None, "--adapter", help="Previous stage's adapter."),
        seed: int | None = typer.Option(None, "--seed", help="Override seed."),
        save_steps: int | None = typer.Option(None, "--save-steps", help="Checkpoint every N."),
        finetune: str | None = typer.Option(None, "--finetune", help="lora, full or qlora."),
        learning_rate: float | None = typer.Option(None, "--lr", help="Override learning_rate."),
        sets: list[str] | None = typer.Option(  # noqa: B008
            None, "--set", help="Override any key: --set max_length=128 --set data.limit=100."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Start the run folder over."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        overrides = {
            "max_steps": max_steps,
            "output_dir": str(out) if out else None,
            "model": model,
            "adapter": adapter,
            "seed": seed,
            "save_steps": save_steps,
            "finetune": finetune,
            "learning_rate": learning_rate,
        }
        overrides.update(parse_sets(sets or []))
        result = run_from_cli(recipe, config, overrides, overwrite=overwrite)
        if as_json:
            typer.echo(json.dumps(result, default=str))
        else:
            loss = result.get("final_loss")
            shown = f"{loss:.4f}" if isinstance(loss, float) else "n/a"
            typer.echo(
                f"{recipe}: {result['global_step']} steps, final loss {shown}, "
                f"saved {result['output']}"
            )

    command.__doc__ = RECIPES[recipe][2]
    return command


def register(app: typer.Typer) -> None:
    """Add one sub-command per text recipe to ``medmllm train``."""
    for name, (_, _, help_text) in RECIPES.items():
        app.command(name, help=help_text)(_command(name))
