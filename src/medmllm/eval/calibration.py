"""Calibration of multiple-choice answers from option probabilities.

A model that is right 40 % of the time should say so: the option probabilities (softmax of the
options' log-likelihoods, or self-consistency vote shares) are compared with correctness.

* **ECE** — expected calibration error over equal-width confidence bins (the reliability
  diagram plots the same bins);
* **Brier score** — scikit-learn's multi-class Brier loss over the full option distribution
  (sum over options, 0 = perfect, 2 = worst);
* **selective accuracy** — accuracy on the most confident c % of items, for several coverage
  levels: what a deployment that abstains on uncertain questions would get.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

COVERAGES = (0.1, 0.25, 0.5, 0.75, 1.0)


def reliability_bins(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10
) -> list[dict[str, float | None]]:
    """Equal-width bins of top-option confidence: count, mean confidence, accuracy."""
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins, the first one also holding 0 (np.digitize with right=True)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        bins.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "confidence": float(conf[mask].mean()) if count else None,
                "accuracy": float(hit[mask].mean()) if count else None,
            }
        )
    return bins


def expected_calibration_error(bins: Sequence[dict[str, Any]]) -> float:
    """Count-weighted mean |accuracy − confidence| over the non-empty bins."""
    total = sum(b["count"] for b in bins)
    if not total:
        return float("nan")
    return float(
        sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / total
    )


def selective_accuracy(
    confidence: Sequence[float], correct: Sequence[bool], coverages: Sequence[float] = COVERAGES
) -> dict[str, float]:
    """Accuracy on the most confident ``coverage`` share of items (ties keep input order)."""
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    order = np.argsort(-conf, kind="stable")
    out = {}
    for c in coverages:
        k = max(1, round(c * len(order)))
        out[f"{c:.2f}"] = float(hit[order[:k]].mean()) if len(order) else float("nan")
    return out


def calibration_report(
    probabilities: Sequence[dict[str, float]],
    references: Sequence[str],
    *,
    n_bins: int = 10,
) -> dict[str, Any]:
    """ECE, Brier, reliability bins and selective accuracy from per-item option probabilities.

    Args:
        probabilities: per item, ``{letter: probability}`` over its options (summing to 1).
        references: the gold letter per item.
    """
    from sklearn.metrics import brier_score_loss

    if not probabilities:
        return {}
    labels = sorted({k for p in probabilities for k in p} | set(references))
    matrix = np.array([[p.get(label, 0.0) for label in labels] for p in probabilities])
    preds = [max(p.items(), key=lambda kv: kv[1])[0] for p in probabilities]
    confidence = [float(p[k]) for p, k in zip(probabilities, preds, strict=True)]
    correct = [k == r for k, r in zip(preds, references, strict=True)]
    bins = reliability_bins(confidence, correct, n_bins)
    # scale_by_half=False: the multi-class definition (sum over options) for every task, so
    # yes/no and 4-option numbers are on the same 0-2 scale
    brier = float(brier_score_loss(list(references), matrix, labels=labels, scale_by_half=False))
    return {
        "ece": expected_calibration_error(bins),
        "brier": brier,
        "mean_confidence": float(np.mean(confidence)),
        "selective_accuracy": selective_accuracy(confidence, correct),
        "bins": bins,
    }


def softmax(logliks: dict[str, float]) -> dict[str, float]:
    """Normalise option log-likelihoods into probabilities over the options."""
    keys = list(logliks)
    values = np.array([logliks[k] for k in keys], dtype=float)
    values = np.exp(values - values.max())
    values /= values.sum()
    return {k: float(v) for k, v in zip(keys, values, strict=True)}
