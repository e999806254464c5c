"""Per-item outcomes of an evaluation and the one thing other eval modules ask of a runner.

These types sit below both :mod:`medmllm.eval.runner` and the modules it calls back into
(:mod:`medmllm.eval.bias`), so none of them imports the runner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

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
