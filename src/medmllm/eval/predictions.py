"""Per-item outcomes of an evaluation, their ``samples.jsonl`` log, and the runner protocol.

These types sit below both :mod:`medmllm.eval.runner` and the modules it calls back into
(:mod:`medmllm.eval.bias`), so none of them imports the runner.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from medmllm.eval.task import Item, Task


@dataclass
class Prediction:
    """The outcome for one item (one row of ``items`` in results.json)."""

    id: str
    gold: str
    pred: str | None
    probs: dict[str, float] | None = None
    pred_norm: str | None = None
    debiased_pred: str | None = None
    debiased_probs: dict[str, float] | None = None
    output: str | None = None
    samples: list[str | None] = field(default_factory=list)


class Predictor(Protocol):
    """Anything that predicts items of a task (the runner's :class:`Evaluator`)."""

    def predict(
        self, task: Task, items: Sequence[Item], exemplars: list[Item], label: str | None = None
    ) -> list[Prediction]: ...


SAMPLES_FILE = "samples.jsonl"


def sample_record(task: str, item: Item, pred: Prediction) -> dict[str, Any]:
    """One line of ``samples.jsonl``: the item as asked and what the model answered.

    Like lm-evaluation-harness' ``--log_samples``: enough to audit any single answer without
    re-running (question, options, context length, gold, prediction, option probabilities,
    generated text and self-consistency votes).
    """
    outcome = {k: v for k, v in asdict(pred).items() if v not in (None, [], {}) and k != "id"}
    return {
        "task": task,
        "id": item.id,
        "question": item.question,
        "options": item.options,
        "context_chars": len(item.context) if item.context else 0,
        "image": item.image,
        **outcome,
        "correct": pred.pred is not None and pred.pred == pred.gold,
    }


def write_samples(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` as JSON Lines atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
