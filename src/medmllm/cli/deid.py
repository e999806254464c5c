"""``medmllm deid``: de-identify notes (file, folder or stdin; text or JSONL)."""

from __future__ import annotations

import json
import os

import typer
from rich.console import Console

from medmllm.errors import InvalidRequestError

FIELD_OPT = typer.Option(
    [], "--field", "-f", help="JSONL key to de-identify (repeatable; default: all strings)."
)
ENTITY_OPT = typer.Option([], "--entity", "-e", help="Only these PHI types (repeatable).")


def deid(
    source: str = typer.Argument(..., help="A file, a folder, or - for stdin."),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Output file or folder (default: stdout; a folder needs one)."
    ),
    operator: str = typer.Option("tag", "--operator", help="mask, tag, hash or surrogate."),
    field: list[str] = FIELD_OPT,
    fmt: str = typer.Option("auto", "--format", help="auto (by suffix), text or jsonl."),
    entity: list[str] = ENTITY_OPT,
    salt_env: str | None = typer.Option(
        None,
        "--salt-env",
        help="Environment variable holding the salt for --operator hash/surrogate (default: "
        "MEDMLLM_HASH_SALT, else the site salt generated under MEDMLLM_HOME).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Remove PHI (names, dates, ids, contacts, places …) from text or JSONL, streaming."""
    from medmllm.safety.deid_files import deid_path
    from medmllm.safety.phi import DeidConfig

    if operator not in ("mask", "tag", "hash", "surrogate"):
        raise InvalidRequestError(
            f"unknown operator {operator!r}", hint="use --operator mask|tag|hash|surrogate"
        )
    if fmt not in ("auto", "text", "jsonl"):
        raise InvalidRequestError(f"unknown format {fmt!r}", hint="use --format auto|text|jsonl")
    if salt_env is not None and salt_env not in os.environ:
        raise InvalidRequestError(
            f"--salt-env names {salt_env!r}, which is not set",
            hint=f"export {salt_env}=<secret of 16+ characters>, or drop --salt-env to use the "
            "site salt",
        )
    config = DeidConfig(
        operator=operator,  # type: ignore[arg-type]
        entities=entity or None,
        salt=os.environ[salt_env] if salt_env is not None else None,
    )
    summary = deid_path(
        source,
        out,
        fields=field or None,
        fmt=fmt,  # type: ignore[arg-type]
        show_progress=not quiet,
        **config.model_dump(),
    )
    if not quiet:
        Console(stderr=True, highlight=False).print(
            f"de-identified {summary['files']} file(s); PHI removed: "
            + json.dumps(summary["phi"], sort_keys=True),
            markup=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``medmllm deid``."""
    app.command("deid")(deid)
