"""Reading JSON Lines with line numbers: the one reader behind corpora and evaluation datasets.

Errors point at ``file:line`` so a user can open the exact line, whatever room read the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmllm.errors import DataFormatError


def _lines(fh: Any, path: Path) -> Iterator[tuple[int, str]]:
    lineno = 0
    try:
        for lineno, line in enumerate(fh, start=1):
            yield lineno, line
    except UnicodeDecodeError:
        raise DataFormatError(
            f"{path}: not UTF-8 text after line {lineno} (a binary file?)",
            hint="pass a UTF-8 .jsonl text file",
        ) from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of ``path``.

    Raises:
        DataFormatError: a line is not valid JSON or not a JSON object (names ``file:line``).
    """
    with path.open(encoding="utf-8") as fh:
        for lineno, line in _lines(fh, path):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})",
                    hint="fix or delete that line; each line of a .jsonl file must be one JSON "
                    "object",
                ) from None
            if not isinstance(row, dict):
                raise DataFormatError(
                    f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}",
                    hint='each line must be one JSON object like {"id": …, "text": …}',
                )
            yield lineno, row
