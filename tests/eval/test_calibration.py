"""Calibration numbers on hand-checkable inputs."""

from __future__ import annotations

import pytest

from medmllm.eval.calibration import (
    calibration_report,
    expected_calibration_error,
    reliability_bins,
    selective_accuracy,
    softmax,
)


def test_perfectly_calibrated_has_zero_ece() -> None:
    conf = [0.75] * 4
    correct = [True, True, True, False]
    assert expected_calibration_error(reliability_bins(conf, correct)) == pytest.approx(0.0)


def test_overconfident_ece() -> None:
    bins = reliability_bins([0.95, 0.95], [False, True])
    assert expected_calibration_error(bins) == pytest.approx(0.45)


def test_selective_accuracy_prefers_confident_items() -> None:
    sel = selective_accuracy([0.9, 0.8, 0.3, 0.2], [True, True, False, False], (0.5, 1.0))
    assert sel == {"0.50": 1.0, "1.00": 0.5}


def test_report_and_brier() -> None:
    probs = [{"A": 0.7, "B": 0.3}, {"A": 0.2, "B": 0.8}]
    rep = calibration_report(probs, ["A", "A"])
    assert rep["brier"] == pytest.approx(((0.3**2 + 0.3**2) + (0.8**2 + 0.8**2)) / 2)
    assert 0 <= rep["ece"] <= 1 and len(rep["bins"]) == 10


def test_softmax_sums_to_one() -> None:
    p = softmax({"A": -1.0, "B": -2.0, "C": -3.0})
    assert sum(p.values()) == pytest.approx(1.0) and p["A"] > p["B"] > p["C"]
