"""The statistics against references: hand-computed examples and independent implementations.

* ECE: a worked example computed by hand (10 equal-width bins, as in Guo et al. 2017);
* Brier: the multi-class definition written out in numpy, and a worked example;
* Fleiss' kappa: statsmodels, and Fleiss' (1971) published example (kappa = 0.210);
* Krippendorff's alpha: the ``krippendorff`` package, and Krippendorff's (2011) published example
  with missing values (alpha interval = 0.849, nominal = 0.743);
* bootstrap CI: coverage of the true mean on simulated data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medmllm.eval.calibration import (
    calibration_report,
    expected_calibration_error,
    reliability_bins,
)
from medmllm.eval.human import agreement
from medmllm.eval.metrics import bootstrap_ci


def test_ece_hand_computed() -> None:
    # bins (0.9,1.0]: conf 0.95, 0.95 → acc 1/2 ; (0.6,0.7]: 0.65 → acc 1 ; (0.3,0.4]: 0.35 → 0
    confidence = [0.95, 0.95, 0.65, 0.35]
    correct = [True, False, True, False]
    # ECE = 2/4·|0.5−0.95| + 1/4·|1−0.65| + 1/4·|0−0.35| = 0.225 + 0.0875 + 0.0875 = 0.4
    assert expected_calibration_error(reliability_bins(confidence, correct)) == pytest.approx(0.4)


def test_ece_and_brier_of_a_report_match_independent_formulas() -> None:
    rng = np.random.default_rng(3)
    letters = ["A", "B", "C", "D"]
    probs, refs = [], []
    for _ in range(300):
        p = rng.dirichlet([0.7] * 4)
        probs.append(dict(zip(letters, p.tolist(), strict=True)))
        refs.append(letters[rng.choice(4, p=p)] if rng.random() < 0.7 else letters[0])
    report = calibration_report(probs, refs)
    matrix = np.array([[p[k] for k in letters] for p in probs])
    onehot = np.array([[float(r == k) for k in letters] for r in refs])
    assert report["brier"] == pytest.approx(((matrix - onehot) ** 2).sum(axis=1).mean())
    conf = matrix.max(axis=1)
    hit = np.array([letters[i] == r for i, r in zip(matrix.argmax(axis=1), refs, strict=True)])
    ece = 0.0
    for low in np.arange(0, 1, 0.1):  # (low, low + 0.1], the first bin also holding 0
        mask = (conf > low) & (conf <= low + 0.1 + 1e-12) if low > 0 else (conf <= 0.1 + 1e-12)
        if mask.any():
            ece += mask.mean() * abs(hit[mask].mean() - conf[mask].mean())
    assert report["ece"] == pytest.approx(ece)


def test_brier_hand_computed() -> None:
    # item 1: (0.7−1)² + 0.2² + 0.1² = 0.14 ; item 2: 0.5² + (0.5−1)² + 0 = 0.5 → mean 0.32
    probs = [{"A": 0.7, "B": 0.2, "C": 0.1}, {"A": 0.5, "B": 0.5, "C": 0.0}]
    assert calibration_report(probs, ["A", "B"])["brier"] == pytest.approx(0.32)


def _ratings(matrix: np.ndarray, criterion: str = "accuracy") -> dict:
    """items × raters matrix (NaN = not rated) → rater → item → {criterion: score}."""
    out: dict = {}
    for r in range(matrix.shape[1]):
        out[f"r{r}"] = {
            f"i{i}": {criterion: int(matrix[i, r])}
            for i in range(matrix.shape[0])
            if not math.isnan(matrix[i, r])
        }
    return out


def test_fleiss_kappa_matches_statsmodels() -> None:
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    rng = np.random.default_rng(0)
    for _ in range(5):
        scores = rng.integers(1, 6, size=(30, 4))
        scores[:, 1] = np.where(rng.random(30) < 0.6, scores[:, 0], scores[:, 1])
        ours = agreement(_ratings(scores.astype(float)))["criteria"]["accuracy"]["fleiss_kappa"]
        assert ours == pytest.approx(fleiss_kappa(aggregate_raters(scores)[0], method="fleiss"))


def test_fleiss_kappa_published_example() -> None:
    # Fleiss (1971): 10 subjects, 14 raters, 5 categories; counts per category
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    matrix = np.array([[c + 1 for c, n in enumerate(row) for _ in range(n)] for row in table])
    kappa = agreement(_ratings(matrix.astype(float)))["criteria"]["accuracy"]["fleiss_kappa"]
    assert kappa == pytest.approx(0.210, abs=5e-4)


KRIPPENDORFF_2011 = np.array(  # 4 observers × 12 units, NaN = missing (values 1-5)
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
        [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
    ]
)


def test_krippendorff_alpha_published_example_with_missing_values() -> None:
    import krippendorff

    entry = agreement(_ratings(KRIPPENDORFF_2011.T))["criteria"]["accuracy"]
    reference = krippendorff.alpha(
        reliability_data=KRIPPENDORFF_2011, level_of_measurement="interval"
    )
    assert entry["krippendorff_alpha"] == pytest.approx(reference)
    assert entry["krippendorff_alpha"] == pytest.approx(0.849, abs=5e-4)
    assert entry["krippendorff_n"] == 11  # unit 12 has a single rating


def test_krippendorff_alpha_matches_the_package_on_random_designs() -> None:
    import krippendorff

    rng = np.random.default_rng(1)
    for _ in range(5):
        truth = rng.integers(1, 6, size=25)
        scores = np.clip(truth[:, None] + rng.integers(-1, 2, size=(25, 3)), 1, 5).astype(float)
        scores[rng.random(scores.shape) < 0.2] = np.nan  # incomplete design
        ours = agreement(_ratings(scores))["criteria"]["accuracy"]["krippendorff_alpha"]
        ref = krippendorff.alpha(reliability_data=scores.T, level_of_measurement="interval")
        assert ours == pytest.approx(ref)


def test_bootstrap_ci_covers_the_true_mean() -> None:
    rng = np.random.default_rng(2026)
    true_p, n, sims = 0.3, 60, 200
    covered = 0
    for s in range(sims):
        sample = (rng.random(n) < true_p).astype(float)
        low, high = bootstrap_ci(sample, n_resamples=400, seed=s)
        covered += low <= true_p <= high
    # nominal 95%; the percentile bootstrap under-covers a little at n = 60
    assert covered / sims >= 0.90
