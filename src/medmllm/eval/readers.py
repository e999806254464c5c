"""Readers for the dataset files a task can point at: JSONL, JSON, CSV/TSV, Hugging Face ids.

JSON files come in three public shapes — a list of rows, ``{split: [rows]}`` (IU-Xray's
``annotation.json``), ``{"questions": [rows]}`` (BioASQ) and ``{id: row}`` (PubMedQA's
``ori_pqal.json``) — and are normalised to numbered rows here, so ``task.py`` only maps rows to
items. Every error names the file and the row.
"""

from __future__ import annotations

import csv
import json
import posixpath
import re
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from medmllm.errors import DataFormatError, DataNotFoundError
from medmllm.jsonl import iter_jsonl


class DatasetSpec(BaseModel):
    """Where a task's rows come from."""

    model_config = ConfigDict(extra="forbid")

    path: str | list[str] | None = Field(
        None,
        description="Local file(s): .jsonl, .json (a list or {id: row} object) or .csv. "
        "'${shared}' expands to the shared data folder, '${VAR}' to an environment variable; "
        "relative paths are taken from the task folder.",
    )
    hf_id: str | None = Field(
        None,
        description="A Hugging Face dataset id: used when 'path' is not given, or as the "
        "alternative when the local files are not there (not in offline mode).",
    )
    hf_config: str | list[str] | None = Field(
        None,
        description="The Hugging Face dataset config name; a list reads each config in turn "
        "(e.g. MMLU subjects), naming each row's '_source' after its config.",
    )
    hf_split: str | None = Field(
        None, description="Split name on the hub when it differs from 'split' (e.g. validation)."
    )
    hf_process: str | None = Field(
        None,
        description="Function in the task's process.py mapping a hub row (row, n) to the row "
        "format of the local files, so 'fields'/'process' apply to both sources.",
    )
    split: str = Field("test", description="Split name (Hugging Face) or a label (local files).")
    csv_columns: list[str] | None = Field(
        None,
        description="Column names for header-less CSV files (e.g. MMLU: question,A,B,C,D,answer); "
        "None reads the first line as the header.",
    )
    image_root: str | None = Field(
        None,
        description="Folder that relative image paths are resolved against (same expansion "
        "rules as 'path'); default: the folder of the data file.",
    )


DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")


_VAR = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}/?")


def _tail(value: str) -> str:
    """The part of a YAML path below its ``${VAR}`` root (the path itself when it has none)."""
    return _VAR.sub("", value).lstrip("/")


def relative_image_root(image_root: str, data_path: str) -> str | None:
    """``image_root`` relative to the data file's folder, when both hang off the same root."""
    root = _VAR.match(image_root)
    if root is None or not data_path.startswith(root.group()):
        return None
    rel = posixpath.relpath(_tail(image_root), posixpath.dirname(_tail(data_path)) or ".")
    return None if rel.startswith("..") else rel


def files_in_folder(folder: Path, yaml_paths: list[str]) -> list[Path]:
    """The task's data files inside ``folder`` (``--data FOLDER``; see ``Task.data_paths``)."""
    if not yaml_paths:
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in DATA_SUFFIXES)
        if not found:
            raise DataNotFoundError(
                f"--data folder {folder} holds no {', '.join(DATA_SUFFIXES)} file",
                hint="pass the data file itself, or the folder that holds it",
            )
        return found
    out, missing = [], []
    for value in yaml_paths:
        tail = _tail(value)
        name = PurePosixPath(tail).name
        candidates = [folder / tail, folder / name, *sorted(folder.rglob(name))]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            missing.append(tail)
        else:
            out.append(hit)
    if missing:
        raise DataNotFoundError(
            f"--data folder {folder} lacks {len(missing)} of the task's files: "
            f"{', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}",
            hint="point --data at the folder that holds them (the dataset's own layout)",
        )
    return out


def read_rows(path: Path, spec: DatasetSpec) -> list[tuple[int, dict[str, Any]]]:
    """All rows of a local file as (1-based row number, row); errors name file and row."""
    if not path.is_file():
        raise DataNotFoundError(
            f"dataset file not found: {path}",
            hint="pass --data PATH, or set MEDMLLM_SHARED_DATA for '${shared}' paths",
        )
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return list(iter_jsonl(path))
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})"
            ) from None
        if isinstance(data, dict):
            lists = {k: v for k, v in data.items() if isinstance(v, list)}
            if spec.split in lists:  # {split: [rows]} (IU-Xray annotation.json style)
                data = lists[spec.split]
            elif len(data) == 1 and lists:  # {"questions": [rows]} (BioASQ style)
                data = next(iter(lists.values()))
            else:  # {id: row} (PubMedQA ori_pqal.json style)
                data = [{"id": k, **v} if isinstance(v, dict) else v for k, v in data.items()]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataFormatError(
                f"{path}: expected a list of JSON objects or an {{id: object}} map"
            )
        return list(enumerate(data, start=1))
    if suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else ","
        with path.open(encoding="utf-8", newline="") as fh:
            if spec.csv_columns:
                reader = csv.DictReader(fh, fieldnames=spec.csv_columns, delimiter=delimiter)
            else:
                reader = csv.DictReader(fh, delimiter=delimiter)
            rows = []
            for number, row in enumerate(reader, start=1):
                if None in row.values() or None in row:
                    raise DataFormatError(
                        f"{path} row {number}: expected {len(reader.fieldnames or [])} columns "
                        f"({', '.join(reader.fieldnames or [])})",
                        hint="check dataset.csv_columns and the file's delimiter",
                    )
                rows.append((number, {**row, "_source": path.stem}))
            return rows
    raise DataFormatError(
        f"{path}: unsupported dataset format {suffix!r}", hint="use .jsonl, .json or .csv"
    )


def read_hf(spec: DatasetSpec) -> list[tuple[int, dict[str, Any]]]:
    """A Hugging Face dataset split as numbered rows.

    Raises:
        OfflineError: ``MEDMLLM_OFFLINE=1`` (a hub dataset may need the network).
        DataNotFoundError: the id, config or split cannot be loaded.
    """
    from medmllm.config import ensure_online

    ensure_online(f"Hugging Face dataset {spec.hf_id!r}")
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a core dependency
        from medmllm.errors import MissingDependencyError

        raise MissingDependencyError(
            "the datasets library is needed", hint="pip install datasets"
        ) from None
    split = spec.hf_split or spec.split
    configs = spec.hf_config if isinstance(spec.hf_config, list) else [spec.hf_config]
    rows: list[tuple[int, dict[str, Any]]] = []
    for config in configs:
        try:
            ds = datasets.load_dataset(spec.hf_id, config, split=split)
        except Exception as exc:  # datasets raises many types (offline, missing split, …)
            raise DataNotFoundError(
                f"could not load Hugging Face dataset {spec.hf_id!r} config {config!r} split "
                f"{split!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                hint="check the id/config/split, go online (unset HF_DATASETS_OFFLINE) or pass "
                "--data PATH to a local copy",
            ) from None
        extra = {"_source": config} if len(configs) > 1 else {}
        rows += [(len(rows) + i, {**dict(row), **extra}) for i, row in enumerate(ds, start=1)]
    return rows
