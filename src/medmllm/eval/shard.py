"""Sharded evaluation: split a run over machines or server replicas, then merge exactly.

``medmllm eval --shard i/n -o DIR`` evaluates the items whose id hashes to shard ``i`` of ``n``
(:func:`medmllm.eval.runner.in_shard`: the same split on every machine, whatever the item order),
with its own call cache inside ``DIR`` (``calls.sqlite``), and writes ``DIR/shard.json`` next to
the shard's partial ``results.json``.

``medmllm eval merge DIR1 DIR2 … -o OUT`` checks that the shards belong together (same tasks,
options, model key and ``n``; every shard once), pools their call caches, and re-runs
the ordinary runner over **all** items from that pooled cache with a generator that must never
be called. The merged ``results.json`` / ``report.html`` therefore come from exactly the code path
of an unsharded run, over the same model outputs: identical scores, CIs, calibration and item
rows (only timing, cache counters and the environment stamp differ, as between any two runs).

The model key (:func:`medmllm.eval.cache.model_key`) hashes the generator's canonical load
options — backend, model, local files' sizes and times, dtype, device, model args, server URL —
so shards of a float32 and a bfloat16 run, or of two servers under one model name, are refused.
The merge itself needs no model: it replays the shards' recorded load options and answers.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from medmllm.errors import DataNotFoundError, InvalidRequestError, ShardMismatchError
from medmllm.eval.runner import EvalOptions, Progress, run_eval
from medmllm.eval.task import Task
from medmllm.models.generator import (
    BaseGenerator,
    ImageInput,
    LoglikelihoodRequest,
    Message,
    SamplingParams,
    StreamChunk,
)
from medmllm.provenance import config_hash

SHARD_FILE = "shard.json"
SHARD_CACHE = "calls.sqlite"


def parse_shard(spec: str) -> tuple[int, int]:
    """``"2/4"`` → ``(2, 4)`` (1-based shard index)."""
    try:
        i, n = (int(part) for part in spec.split("/"))
    except ValueError:
        raise InvalidRequestError(
            f"--shard must look like i/n (e.g. 1/4), got {spec!r}", hint="e.g. --shard 1/2"
        ) from None
    if n < 1 or not 1 <= i <= n:
        raise InvalidRequestError(
            f"--shard {spec}: need 1 <= i <= n", hint="shards are numbered 1..n"
        )
    return i, n


def _task_spec(task: Task) -> dict[str, Any]:
    data = [str(Path(p).resolve()) for p in task.data_override] if task.data_override else None
    return {"name": task.name, "file": str(task.source.resolve()), "data": data}


def _task_from_spec(spec: dict[str, Any]) -> Task:
    task = Task.from_file(spec["file"])
    if spec.get("data"):
        task.data_override = [Path(p) for p in spec["data"]]
    return task


def _identity(
    model: dict[str, Any], options: EvalOptions, specs: list[dict[str, Any]], split: str | None
) -> dict:
    """What must be equal for shards to merge (options without the shard, tasks, model, split)."""
    opts = {k: v for k, v in asdict(options).items() if k != "shard"}
    return {
        "fingerprint": model["key"],
        "load_options": model["load_options"],
        "options": opts,
        "tasks": specs,
        "split_sha256": split,
    }


def run_shard(
    tasks: Sequence[Task],
    generator: Any,
    options: EvalOptions,
    *,
    out_dir: str | Path,
    cache_path: str | Path | None = None,
    retriever: Any = None,
    progress: Progress | None = None,
    report: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Evaluate shard ``options.shard`` of ``tasks``; writes results.json + shard.json.

    Same arguments as :func:`~medmllm.eval.runner.run_eval`; the call cache defaults to
    ``out_dir/calls.sqlite`` (one per shard, carried to the merging machine with the folder).
    """
    if options.shard is None:
        raise InvalidRequestError("run_shard needs options.shard", hint="e.g. shard=(1, 2)")
    if options.bias:
        raise InvalidRequestError(
            "--bias cannot be sharded (swaps are scored per run)", hint="drop --shard or --bias"
        )
    out = Path(out_dir)
    cache = out / SHARD_CACHE if cache_path is None else cache_path
    out.mkdir(parents=True, exist_ok=True)
    results = run_eval(
        tasks, generator, options, out_dir=out, cache_path=cache, retriever=retriever,
        progress=progress, report=report, overwrite=overwrite,
    )  # fmt: skip
    specs = [_task_spec(t) for t in tasks]
    split = (results.get("held_apart") or {}).get("sha256")
    identity = _identity(results["model"], options, specs, split)
    record = {
        "kind": "medmllm-eval-shard",
        "shard": list(options.shard),
        "identity": identity,
        "identity_hash": config_hash(identity),
        "model": results["model"],
        "retriever": retriever is not None,
        "cache": SHARD_CACHE if cache_path is None else str(Path(cache).resolve()),
        "items": {name: sec["n"] for name, sec in results["tasks"].items()},
    }
    tmp = out / f".{SHARD_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(tmp, out / SHARD_FILE)
    return results


class _Replay(BaseGenerator):
    """The Generator of a merge: every answer must come from the shards' pooled cache.

    It claims the shards' recorded load options, so its cache key is theirs (the model itself
    need not exist on the merging machine).
    """

    supports_images = True
    scores_images = True

    def __init__(self, backend: str, model_id: str, load: dict[str, Any]) -> None:
        super().__init__(model_id)
        self.backend = backend
        self._load = load

    def load_options(self) -> dict[str, Any]:
        return dict(self._load)

    def _missing(self) -> ShardMismatchError:
        return ShardMismatchError(
            "a model call of the merged run is in no shard's cache (a shard is incomplete, or "
            "the model file differs from the shards')",
            hint="re-run the incomplete shard (it resumes from its cache), then merge again",
        )

    def _loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[float]:
        raise self._missing()

    def _stream(
        self,
        messages: list[Message],
        images: Sequence[ImageInput] | None,
        params: SamplingParams,
    ) -> Iterator[StreamChunk]:
        raise self._missing()


def _read_shard(folder: Path) -> dict[str, Any]:
    path = folder / SHARD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DataNotFoundError(
            f"{folder} holds no readable {SHARD_FILE}",
            hint="pass folders written by medmllm eval --shard i/n -o DIR",
        ) from None
    record["folder"] = folder
    return record


def merge_shards(
    folders: Sequence[str | Path],
    *,
    out_dir: str | Path,
    retriever: Any = None,
    report: bool = True,
) -> dict[str, Any]:
    """Merge shard folders into one results.json (+ report) equal to an unsharded run.

    Raises:
        ShardMismatchError: shards from different configs/models, a missing or repeated shard.
    """
    records = [_read_shard(Path(f)) for f in folders]
    if not records:
        raise InvalidRequestError("no shard folders given", hint="medmllm eval merge DIR1 DIR2")
    first = records[0]
    for rec in records[1:]:
        if rec["identity_hash"] != first["identity_hash"]:
            a, b = first["identity"], rec["identity"]
            diff = sorted(
                k
                for k in {*a["options"], *b["options"]}
                if a["options"].get(k) != b["options"].get(k)
            )
            if a["fingerprint"] != b["fingerprint"]:
                la, lb = a.get("load_options") or {}, b.get("load_options") or {}
                keys = sorted(k for k in {*la, *lb} if la.get(k) != lb.get(k))
                what = ", ".join(f"{k} {la.get(k)!r} vs {lb.get(k)!r}" for k in keys)
                diff.append(f"model key ({what or a['fingerprint'] + ' vs ' + b['fingerprint']})")
            if a.get("split_sha256") != b.get("split_sha256"):
                diff.append("held-apart split")
            if a["tasks"] != b["tasks"]:
                diff.append("tasks")
            raise ShardMismatchError(
                f"shards {first['folder']} and {rec['folder']} come from different configs "
                f"(differ in: {', '.join(diff) or 'config'})",
                hint="merge only shards of one run: same tasks, options and model",
            )
    n = first["shard"][1]
    seen = sorted(rec["shard"][0] for rec in records)
    if any(rec["shard"][1] != n for rec in records) or seen != list(range(1, n + 1)):
        raise ShardMismatchError(
            f"need shards 1..{n} once each, got {', '.join(f'{i}/{n}' for i in seen)}",
            hint="pass every shard folder exactly once",
        )
    if first["retriever"] and retriever is None:
        raise InvalidRequestError(
            "the shards retrieved passages (--rag)", hint="pass the same --rag index to merge"
        )
    identity = first["identity"]
    options = EvalOptions(**{**identity["options"], "shard": None})
    if options.exclude_split:
        from medmllm.eval.split import read_split

        if read_split(options.exclude_split).sha256 != identity.get("split_sha256"):
            raise ShardMismatchError(
                f"{options.exclude_split} has changed since the shards dropped its trained items",
                hint="merge with the split.json the shards used (or re-run the shards)",
            )
    tasks = [_task_from_spec(spec) for spec in identity["tasks"]]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".merge-") as tmp:
        pooled = Path(tmp) / "pooled.sqlite"
        _pool_caches([_cache_path(rec) for rec in records], pooled)
        if "load_options" not in identity:
            raise ShardMismatchError(
                f"shard {first['folder']} was written by an older medmllm (no model load "
                "options recorded)",
                hint="re-run the shards with this version (their cache keys changed too)",
            )
        generator = _Replay(
            first["model"]["backend"], first["model"]["model"], identity["load_options"]
        )
        results = run_eval(
            tasks, generator, replace(options), out_dir=None, cache_path=pooled,
            retriever=retriever, report=False,
        )  # fmt: skip
    results["run"]["merged_from"] = [
        {"folder": str(rec["folder"]), "shard": rec["shard"]} for rec in records
    ]
    results["run"]["cache"]["path"] = None
    from medmllm.eval.runner import write_results

    write_results(results, out, report=report)
    return results


def _cache_path(record: dict[str, Any]) -> Path:
    path = Path(record["cache"])
    return path if path.is_absolute() else record["folder"] / path


def _pool_caches(paths: Sequence[Path], target: Path) -> None:
    """Copy every shard's cached calls into one SQLite file."""
    conn = sqlite3.connect(target)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, kind TEXT, value TEXT)"
        )
        for path in paths:
            if not path.is_file():
                raise DataNotFoundError(
                    f"shard cache {path} is missing", hint="copy the whole shard folder"
                )
            conn.execute("ATTACH DATABASE ? AS shard", (str(path),))
            conn.execute("INSERT OR IGNORE INTO calls SELECT key, kind, value FROM shard.calls")
            conn.commit()
            conn.execute("DETACH DATABASE shard")
    finally:
        conn.close()
