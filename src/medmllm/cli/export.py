"""``medmllm export ADAPTER_DIR --to gguf --quant q8_0 -o out.gguf``: merge LoRA → GGUF."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medmllm.errors import InvalidRequestError


def export(
    folder: Path = typer.Argument(..., help="<run>/adapter (LoRA) or <run>/model folder."),  # noqa: B008
    to: str = typer.Option("gguf", "--to", help="Target format (gguf)."),
    quant: str = typer.Option(
        "q8_0", "--quant", "-q", help="f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_m, …"
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output .gguf file."),  # noqa: B008
    keep_merged: bool = typer.Option(False, "--keep-merged", help="Keep the merged HF folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Merge a trained adapter into its base and write a GGUF for --backend llamacpp."""
    from medmllm.train.export import QUANTS, export_gguf

    if to != "gguf":
        raise InvalidRequestError(f"unknown --to {to!r}", hint="only gguf is supported")
    if quant.lower() not in QUANTS:
        raise InvalidRequestError(
            f"unknown --quant {quant!r}", hint=f"use one of {', '.join(QUANTS)}"
        )
    target = out or folder.parent / f"{folder.parent.name}.{quant.lower()}.gguf"
    info = export_gguf(folder, target, quant=quant, keep_merged=keep_merged)
    if as_json:
        typer.echo(json.dumps(info))
    else:
        typer.echo(f"wrote {info['output']} ({info['bytes'] / 1e6:.1f} MB, {info['quant']})")
        typer.echo(f'run it: medmllm ask --backend llamacpp --model {info["output"]} "…"')


def register(app: typer.Typer) -> None:
    app.command("export")(export)
