"""De-identify files, folders or stdin as a stream: plain text and JSONL (chosen fields).

The library behind ``medmllm deid``. Text files are processed in paragraph blocks sharing one
surrogate memory (the same person gets the same fake name across the whole file); JSONL files
line by line (each line one document), only the chosen string fields, or every string field when
none is chosen. Outputs are written atomically (temp file + rename).

Example:
    >>> from medmllm.safety.deid_files import deid_path
    >>> deid_path("notes/", "notes-deid/", operator="surrogate")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal

from medmllm.errors import DataFormatError, DataNotFoundError, InvalidRequestError
from medmllm.safety.phi import Deidentifier

Format = Literal["auto", "text", "jsonl"]
TEXT_SUFFIXES = (".txt", ".md", ".note", ".text")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
BLOCK_CHARS = 20_000


def _format_of(path: Path, fmt: Format) -> Literal["text", "jsonl"]:
    if fmt != "auto":
        return fmt
    return "jsonl" if path.suffix.lower() in JSONL_SUFFIXES else "text"


def deid_record(
    row: dict[str, Any], deid: Deidentifier, fields: Sequence[str] | None, counts: Counter[str]
) -> dict[str, Any]:
    """One JSON object with its chosen string fields (all when ``fields`` is empty) de-identified.

    Nested objects and lists are walked; only strings are changed.
    """
    state = (
        deid.surrogates_for(json.dumps(row, sort_keys=True, ensure_ascii=False))
        if deid.config.operator == "surrogate"
        else None
    )

    def walk(value: Any, selected: bool) -> Any:
        if isinstance(value, str):
            if not selected:
                return value
            result = deid.deidentify(value, state=state)
            counts.update(s.type for s in result.spans)
            return result.text
        if isinstance(value, dict):
            return {
                k: walk(v, selected or (fields is not None and k in fields))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [walk(v, selected) for v in value]
        return value

    if fields:
        missing = [f for f in fields if f not in row]
        if len(missing) == len(fields):
            raise DataFormatError(
                f"none of the fields {list(fields)} is in the record (keys: {sorted(row)[:20]})",
                hint="pass --field with a key the JSONL records have",
            )
        return {k: walk(v, k in fields) for k, v in row.items()}
    return {k: walk(v, True) for k, v in row.items()}


def _text_blocks(fh: IO[str]) -> Iterator[str]:
    """Paragraph blocks of at most ~BLOCK_CHARS (split only at blank lines)."""
    buf: list[str] = []
    size = 0
    for line in fh:
        buf.append(line)
        size += len(line)
        if size >= BLOCK_CHARS and not line.strip():
            yield "".join(buf)
            buf, size = [], 0
    if buf:
        yield "".join(buf)


def deid_stream(
    src: IO[str],
    dst: IO[str],
    deid: Deidentifier,
    *,
    fmt: Literal["text", "jsonl"],
    fields: Sequence[str] | None = None,
    name: str = "<stdin>",
    progress: Any = None,
) -> Counter[str]:
    """De-identify ``src`` into ``dst``; returns the PHI counts per type."""
    counts: Counter[str] = Counter()
    if fmt == "jsonl":
        for lineno, line in enumerate(src, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"{name}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})",
                    hint="each line of a .jsonl file must be one JSON object",
                ) from None
            if not isinstance(row, dict):
                raise DataFormatError(f"{name}:{lineno}: expected a JSON object")
            dst.write(json.dumps(deid_record(row, deid, fields, counts), ensure_ascii=False) + "\n")
            if progress is not None:
                progress(len(line))
        return counts
    state = deid.surrogates_for(name) if deid.config.operator == "surrogate" else None
    for block in _text_blocks(src):
        result = deid.deidentify(block, state=state)
        counts.update(s.type for s in result.spans)
        dst.write(result.text)
        if progress is not None:
            progress(len(block))
    return counts


def _atomic_write(path: Path, write: Any) -> Counter[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            counts = write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return counts


def deid_path(
    src: str | Path,
    out: str | Path | None = None,
    *,
    fields: Sequence[str] | None = None,
    fmt: Format = "auto",
    deidentifier: Deidentifier | None = None,
    show_progress: bool = True,
    **config: Any,
) -> dict[str, Any]:
    """De-identify a file, a folder (recursively, ``*.txt *.md *.jsonl``) or ``"-"`` (stdin).

    Args:
        src: a file, a folder or ``"-"``.
        out: output file or folder; ``None`` or ``"-"`` writes a single input to stdout. A folder
            input needs an output folder (the tree is mirrored).
        fields: JSONL keys to de-identify (default: every string field).
        fmt: ``auto`` (by suffix), ``text`` or ``jsonl``.
        deidentifier: a configured :class:`Deidentifier` (else one is built from ``config``).
        show_progress: a rich progress bar on stderr.
        **config: :class:`~medmllm.safety.phi.DeidConfig` fields (``operator="surrogate"``).

    Returns:
        A summary: files, bytes and PHI counts per type.
    """
    deid = deidentifier or Deidentifier(**config)
    fields = list(fields) if fields else None
    if str(src) == "-":
        fmt_: Literal["text", "jsonl"] = "jsonl" if fmt == "jsonl" else "text"
        if out is None or str(out) == "-":
            counts = deid_stream(sys.stdin, sys.stdout, deid, fmt=fmt_, fields=fields)
        else:
            counts = _atomic_write(
                Path(out),
                lambda fh: deid_stream(sys.stdin, fh, deid, fmt=fmt_, fields=fields),
            )
        return {"files": 1, "phi": dict(counts)}
    src = Path(src)
    if not src.exists():
        raise DataNotFoundError(f"no such file or folder: {src}", hint="pass a file, folder or -")
    if src.is_dir():
        files = sorted(
            p
            for p in src.rglob("*")
            if p.is_file() and p.suffix.lower() in (*TEXT_SUFFIXES, *JSONL_SUFFIXES)
        )
        if out is None or str(out) == "-":
            raise InvalidRequestError(
                f"{src} is a folder: an output folder is needed", hint="add -o OUT_DIR"
            )
        pairs: list[tuple[Path, Path | None]] = [(p, Path(out) / p.relative_to(src)) for p in files]
    else:
        pairs = [(src, None if out is None or str(out) == "-" else Path(out))]
    total: Counter[str] = Counter()
    nbytes = sum(p.stat().st_size for p, _ in pairs)
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    with Progress(
        TextColumn("de-identifying"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[name]}"),
        disable=not show_progress,
        transient=True,
        console=_stderr_console(),
    ) as bar:
        task = bar.add_task("deid", total=nbytes, name="")
        for path, target in pairs:
            bar.update(task, name=path.name)
            kind = _format_of(path, fmt)

            def run(fh: IO[str], path: Path = path, kind: Any = kind) -> Counter[str]:
                with path.open(encoding="utf-8", errors="replace") as inp:
                    return deid_stream(
                        inp,
                        fh,
                        deid,
                        fmt=kind,
                        fields=fields,
                        name=str(path),
                        progress=lambda n: bar.advance(task, n),
                    )

            total += run(sys.stdout) if target is None else _atomic_write(target, run)
    return {"files": len(pairs), "bytes": nbytes, "phi": dict(total)}


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
