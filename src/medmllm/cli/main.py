"""Entry point: builds the typer app and turns user errors into one line + exit code 2."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from medmllm import __version__
from medmllm.errors import MedMLLMError

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
    """Run the CLI; user errors print ``error: …`` and exit 2 without a traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app(args=argv, standalone_mode=False)
    except MedMLLMError as exc:
        # escape(): messages quote user input and pip extras like medmllm[edge], not markup.
        err_console.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
        if exc.hint:
            err_console.print(f"  fix: {escape(exc.hint)}", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 1
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
