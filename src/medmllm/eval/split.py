"""Held-apart evaluation: drop the items a model was trained on, as its run's ``split.json`` says.

Every training run that draws on shared evaluation data writes ``<run>/split.json``
(:func:`medmllm.train.data.write_split`; the MLLM recipe writes the same schema)::

    {"source": "mcqa", "files": ["mcqa/medqa_dev.jsonl", …], "key": "file_stem:id",
     "train": ["medqa_dev:1195", …], "held": […]}

``key`` says how an eval item is named: ``file_stem:id`` — its data file's stem and its id
(``medqa_dev:1195``, ``qa:4`` for VQA-RAD's ``qa.jsonl``); ``pmid`` or ``id`` — its id alone.
Every item named in ``train`` is dropped before ``--limit`` applies; items in neither list were
never trained on and stay. A run that continued an earlier stage lists that stage's split under
``earlier`` (each with its own key): its trained items are dropped too. A split that names no
item of a task is almost certainly the wrong file, so an explicit one is refused there
(:class:`SplitMismatchError`).

Example:
    >>> from medmllm.eval.split import find_run_split, read_split  # doctest: +SKIP
    >>> split = read_split(find_run_split("runs/sft/adapter"))  # runs/sft/split.json
    >>> split.trained(Path("medqa_dev.jsonl"), "1195")  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medmllm.errors import DataFormatError, DataNotFoundError

SPLIT_FILE = "split.json"  # written by training (medmllm.train.data.write_split), read here
_ID_KEYS = ("id", "pmid")


class SplitMismatchError(DataFormatError):
    """An explicit split names no item of a task: probably another run's or dataset's split."""


@dataclass(frozen=True)
class TrainedSplit:
    """A run's train / held-apart item names, and how to name an eval item the same way.

    Attributes:
        path: the split.json file.
        sha256: its content hash (recorded in results.json).
        source: the training data builder that wrote it (``mcqa``, ``pubmedqa_cpt``, …).
        key: ``file_stem:id``, ``id`` or ``pmid``.
        train: names of the items trained on (dropped from evaluation).
        held: names of the items held apart.
    """

    path: Path
    sha256: str
    source: str
    key: str
    train: frozenset[str]
    held: frozenset[str]
    earlier: tuple[TrainedSplit, ...] = ()

    def name(self, data_file: Path | None, item_id: str) -> str | None:
        """An item's name in this split (None: hub rows have no file stem to match)."""
        if self.key in _ID_KEYS:
            return str(item_id)
        return None if data_file is None else f"{Path(data_file).stem}:{item_id}"

    def trained(self, data_file: Path | None, item_id: str) -> bool:
        """Whether the model was trained on this item (in this stage or an earlier one)."""
        if self.name(data_file, item_id) in self.train:
            return True
        return any(s.trained(data_file, item_id) for s in self.earlier)

    def known(self, data_file: Path | None, item_id: str) -> bool:
        """Whether the split (or an earlier stage's) names this item at all."""
        name = self.name(data_file, item_id)
        if name in self.train or name in self.held:
            return True
        return any(s.known(data_file, item_id) for s in self.earlier)

    def record(self) -> dict[str, Any]:
        """What results.json says about the split."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "source": self.source,
            "key": self.key,
            "n_train": len(self.train),
            "n_held": len(self.held),
            **({"earlier": [s.record() for s in self.earlier]} if self.earlier else {}),
        }


def read_split(path: str | Path) -> TrainedSplit:
    """Parse and check a split.json.

    Raises:
        DataNotFoundError: the file (or the run folder's split.json) does not exist.
        DataFormatError: not JSON, or without ``key`` / ``train`` lists.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / SPLIT_FILE
    if not path.is_file():
        raise DataNotFoundError(
            f"split file not found: {path}",
            hint="pass the split.json of the training run (RUN/split.json) or the run folder",
        )
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataFormatError(
            f"{path} is not a split.json (not JSON: {exc})",
            hint="pass the split.json a training run wrote",
        ) from None
    return _parse(data, path, hashlib.sha256(raw).hexdigest())


def _parse(data: Any, path: Path, sha256: str) -> TrainedSplit:
    key = data.get("key") if isinstance(data, dict) else None
    lists = [data.get(k) if isinstance(data, dict) else None for k in ("train", "held")]
    if key not in ("file_stem:id", *_ID_KEYS) or not all(isinstance(v, list) for v in lists):
        raise DataFormatError(
            f"{path} is not a split.json: it needs 'key' (file_stem:id, id or pmid) and "
            "'train' / 'held' lists of item names",
            hint="pass the split.json a training run wrote",
        )
    earlier = data.get("earlier") or []
    if not isinstance(earlier, list):
        raise DataFormatError(
            f"{path}: 'earlier' must be a list of splits", hint="pass a split.json training wrote"
        )
    return TrainedSplit(
        path=path,
        sha256=sha256,
        source=str(data.get("source", "")),
        key=str(key),
        train=frozenset(str(x) for x in lists[0] or []),
        held=frozenset(str(x) for x in lists[1] or []),
        earlier=tuple(_parse(e, path, sha256) for e in earlier),
    )


def find_run_split(model: str | Path | None) -> Path | None:
    """The split.json of the training run a local model comes from, if any.

    A run folder holds ``split.json`` next to ``adapter/``, ``model/`` and ``checkpoint-N/``, so
    the model path itself and its parent are looked at (not further up: a split there belongs
    to another run). Hub ids and served model names have none.
    """
    if model is None:
        return None
    path = Path(model).expanduser()
    try:
        if not path.exists():
            return None
        folder = path if path.is_dir() else path.parent
        for candidate in (folder / SPLIT_FILE, folder.parent / SPLIT_FILE):
            if candidate.is_file():
                return candidate
    except OSError:
        return None
    return None
