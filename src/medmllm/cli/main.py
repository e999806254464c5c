"""Entry point: builds the typer app and turns user errors into one line + exit code 2."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from medmllm import __version__

app = typer.Typer(
    name="medmllm",
    help="Build, ground, evaluate and serve medical (M)LLMs on your own hardware, offline-first.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True, highlight=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medmllm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks (also MEDMLLM_DEBUG=1); allowed anywhere."
    ),
) -> None:
    """medmllm: medical LLM toolkit."""


# One module per command group, each with ``register(app)``; imported here so
# `medmllm --version` stays fast. Rooms add their module to this tuple.
_COMMAND_MODULES = (
    "ask",
    "models",
    "index",
    "eval",
    "train",
    "export",
    "experiment",
    "deid",
    "serve",
    "app",
    "agent",
)


def _register_commands() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(f"medmllm.cli.{name}").register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: every user-caused failure prints ``error: …`` / ``fix: …`` and returns 2.

    Interruptions (Ctrl-C) print one line and return 130. ``--debug`` anywhere on the command
    line (or ``MEDMLLM_DEBUG=1``) adds the traceback; see :mod:`medmllm.cli.failures`.
    """
    from medmllm.cli.failures import run_guarded

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return run_guarded(app, list(sys.argv[1:] if argv is None else argv), err_console)


if __name__ == "__main__":
    sys.exit(main())
