"""Image-blind control for image tasks: how much does the image actually help?

The same model answers the same questions with every image replaced by one blank (mid-grey)
image. A VQA model that scores as well blind is answering from language priors (e.g. "yes" to
"is there …?" questions), not from the image. For every per-item metric the result carries the
blind score and the paired image gain (with-image minus blind, per item) with a bootstrap 95% CI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from medmllm.eval import metrics as M
from medmllm.eval.predictions import Prediction, Predictor
from medmllm.eval.task import Item, Task

BLANK_SIZE = 224
BLANK_GREY = 128


def blank_image() -> Path:
    """A mid-grey PNG, written once under ``MEDMLLM_HOME/cache``."""
    from PIL import Image

    from medmllm.config import get_settings

    path = get_settings().cache_dir("eval") / f"blank-{BLANK_SIZE}-{BLANK_GREY}.png"
    if not path.is_file():
        tmp = path.with_suffix(".tmp.png")
        Image.new("RGB", (BLANK_SIZE, BLANK_SIZE), (BLANK_GREY,) * 3).save(tmp)
        tmp.replace(path)
    return path


def blind_control(
    evaluator: Predictor,
    task: Task,
    items: Sequence[Item],
    exemplars: list[Item],
    preds: Sequence[Prediction],
    *,
    seed: int,
) -> dict[str, Any]:
    """Scores with blank images and the paired image gain per metric (see module docstring)."""
    blank = str(blank_image())
    blind_items = [replace(item, image=blank) for item in items]
    blind = evaluator.predict(task, blind_items, exemplars, label=f"{task.name} (image-blind)")
    refs = [p.gold for p in preds]
    out: dict[str, Any] = {"image": "blank mid-grey", "metrics": {}, "image_gain": {}}
    for name in M.expand(task.config.metrics):
        out["metrics"][name] = M.score(name, [p.pred for p in blind], refs, items, seed=seed)
        m = M.METRICS.get(name)
        if not m.per_item:
            continue
        try:
            with_img = np.asarray(m.fn([p.pred for p in preds], refs, items), dtype=float)
            without = np.asarray(m.fn([p.pred for p in blind], refs, items), dtype=float)
        except M.MetricUnavailableError:
            continue
        diff = with_img - without
        diff = diff[~np.isnan(diff)]
        if diff.size == 0:
            continue
        out["image_gain"][name] = {
            "value": float(diff.mean()),
            "ci": list(M.bootstrap_ci(diff, seed=seed)),
            "n": int(diff.size),
        }
    out["predictions"] = {p.id: p.pred for p in blind}
    return out
