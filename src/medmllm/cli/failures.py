"""The one place where a failure becomes what the user sees: ``error: …`` / ``fix: …`` + exit 2.

Every failure a user or their machine can cause is mapped here, whatever raised it:

* :class:`~medmllm.errors.MedMLLMError` (our own, with its hint);
* usage errors of the CLI framework (unknown option or command, missing argument, a value of the
  wrong type). typer ≥ 0.29 ships its own copy of click as ``typer._click``; catching the class
  of the *standalone* click would miss them (and print a traceback);
* pydantic ``ValidationError`` (a config value out of range);
* ``OSError`` with the path involved (disk full, permission denied, a folder where a file was
  expected …);
* context-window overflows raised by llama.cpp or transformers;
* ``UnicodeDecodeError`` (a binary file given where text was expected).

Interruptions (Ctrl-C; typer turns it into exit code 130) print one line and return 130, so a
script never reads an interrupted run as a success. Anything else is a bug: one line and exit 1,
with the traceback only under ``--debug`` / ``MEDMLLM_DEBUG=1``.
"""

from __future__ import annotations

import errno
import os
import re
import traceback
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

# typer 0.29 vendors click (pinned in pyproject.toml); the standalone package's classes are
# different objects, so catching those would miss every usage error.
from typer._click import exceptions as click_exceptions

from medmllm.errors import MedMLLMError

INTERRUPTED = "interrupted — rerun the same command to resume"
EXIT_USER = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130

# Messages of context-window overflows raised by the engines themselves.
_CONTEXT = re.compile(
    r"exceed(s|ed)? (the )?context window|context (window|length)|n_ctx|"
    r"maximum (context|sequence) length|max_position_embeddings|longer than the specified maximum",
    re.IGNORECASE,
)

_OS_MESSAGES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: (
        "no space left on the device while writing {path}",
        "free disk space, or write elsewhere (--out, MEDMLLM_HOME), then rerun the same command",
    ),
    errno.EDQUOT: ("disk quota exceeded while writing {path}", "free space or write elsewhere"),
    errno.EACCES: (
        "permission denied: {path}",
        "fix the permissions, or choose a folder you can write to (--out, MEDMLLM_HOME)",
    ),
    errno.EPERM: ("operation not permitted: {path}", "fix the permissions or choose another path"),
    errno.EROFS: ("read-only file system: {path}", "write elsewhere (--out, MEDMLLM_HOME)"),
    errno.EISDIR: ("{path} is a folder, but a file was expected", "pass a file path"),
    errno.ENOTDIR: (
        "{path}: a part of this path is a file, not a folder",
        "fix the path (is MEDMLLM_HOME or --out pointing to a file?)",
    ),
    errno.ENOENT: ("no such file or folder: {path}", "check the path"),
    errno.EEXIST: ("{path} already exists", "remove it or choose another path"),
    errno.ENAMETOOLONG: ("file name too long: {path}", "use a shorter name"),
    errno.EMFILE: ("too many open files ({path})", "raise the limit: ulimit -n 4096"),
}


def debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """``--debug`` anywhere before ``--`` turns tracebacks on; it is removed from ``argv``."""
    cut = argv.index("--") if "--" in argv else len(argv)
    found = "--debug" in argv[:cut]
    rest = [a for a in argv[:cut] if a != "--debug"] + argv[cut:]
    env = os.environ.get("MEDMLLM_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    return found or env, rest


def describe(exc: BaseException, argv: list[str] | None = None) -> tuple[str, str | None, int]:
    """``(message, fix, exit code)`` for any exception (exit code 1 means: a bug)."""
    if isinstance(exc, MedMLLMError):
        return exc.message, exc.hint, exc.exit_code
    if isinstance(exc, click_exceptions.ClickException):
        return _usage(exc, argv or [])
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        from medmllm.validation import validation_message

        return (
            f"invalid value: {validation_message(exc, limit=1, show_input=True)}",
            "see --help for the allowed values",
            EXIT_USER,
        )
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"an input file is not UTF-8 text ({exc.reason} at byte {exc.start})",
            "pass a UTF-8 text/JSONL file, not a binary or differently encoded one",
            EXIT_USER,
        )
    if isinstance(exc, OSError) and exc.errno is not None:
        return _os_error(exc)
    if isinstance(exc, ValueError | RuntimeError | IndexError) and _CONTEXT.search(str(exc)):
        return (
            f"the prompt does not fit the model's context window ({_first_line(exc)})",
            "shorten the question, use fewer passages (-k), or load a model with a larger "
            "context window",
            EXIT_USER,
        )
    return (
        f"internal error: {type(exc).__name__}: {_first_line(exc)}",
        "rerun with --debug and report the traceback at the project's issue tracker",
        EXIT_BUG,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _usage(exc: Any, argv: list[str]) -> tuple[str, str, int]:
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "medmllm"
    message = exc.format_message()
    if isinstance(exc, click_exceptions.NoSuchOption) and exc.possibilities:
        message += f" (did you mean {', '.join(sorted(exc.possibilities))}?)"
    code = exc.exit_code if exc.exit_code not in (0, 1) else EXIT_USER
    return message, f"see `{command} --help`", code


def _os_error(exc: OSError) -> tuple[str, str, int]:
    path = exc.filename if exc.filename is not None else "(unknown path)"
    if exc.filename2 is not None:
        path = f"{path} → {exc.filename2}"
    template = _OS_MESSAGES.get(exc.errno or 0)
    if template is None:
        return (
            f"{exc.strerror or type(exc).__name__}: {path}",
            "check the path, the disk and the permissions",
            EXIT_USER,
        )
    message, fix = template
    return message.format(path=path), fix, EXIT_USER


def report(console: Console, message: str, fix: str | None) -> None:
    """Print the one ``error:`` line and its ``fix:`` line."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if fix:
        console.print(f"  fix: {escape(fix)}", soft_wrap=True)


def run_guarded(app: typer.Typer, argv: list[str], console: Console) -> int:
    """Run ``app`` on ``argv`` and map whatever happens to an exit code (see module docstring)."""
    debug, argv = debug_requested(argv)
    try:
        code = app(args=argv, prog_name="medmllm", standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        if debug:
            traceback.print_exc()
        console.print(INTERRUPTED)
        return EXIT_INTERRUPTED
    except typer.Exit as exc:  # raised outside typer's own handler (e.g. from a callback)
        return _exit_code(exc.exit_code, console)
    except click_exceptions.NoArgsIsHelpError as exc:  # `medmllm index`: show the help
        if exc.ctx is not None:
            typer.echo(exc.ctx.get_help())
        return exc.exit_code
    except Exception as exc:  # the one place that maps every failure
        message, fix, code = describe(exc, argv)
        if debug:
            traceback.print_exc()
        report(console, message, fix)
        return code
    return _exit_code(code if isinstance(code, int) else 0, console)


def _exit_code(code: int, console: Console) -> int:
    # typer turns KeyboardInterrupt into Exit(130) and, without standalone mode, returns it.
    if code == EXIT_INTERRUPTED:
        console.print(INTERRUPTED)
    return code
