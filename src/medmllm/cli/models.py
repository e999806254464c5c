"""``medmllm models``: which models are available offline and where they live."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from medmllm.models.catalog import list_models


def models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List embedded and cached models, backends, and the default choice."""
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


def register(app: typer.Typer) -> None:
    app.command("models")(models)
