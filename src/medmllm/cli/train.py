"""``medmllm train …``: one sub-command per recipe; each recipe module registers its own."""

from __future__ import annotations

import importlib

import typer

# Each module defines ``register(train_app)``: text recipes (cpt, ift, sft, dpo, rlaif, reward)
# and the multimodal two-stage recipe live apart so their owners never edit the same file.
_RECIPE_CLIS = ("medmllm.cli.train_text", "medmllm.cli.train_mllm")


def register(app: typer.Typer) -> None:
    train_app = typer.Typer(
        help="Train models: text recipes and multimodal stages.", no_args_is_help=True
    )
    for module in _RECIPE_CLIS:
        importlib.import_module(module).register(train_app)
    app.add_typer(train_app, name="train")
