"""Drift detection: unit tests and the statistical bounds of the acceptance criteria."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from app.stats.drift import (
    DEFAULT_ALPHA,
    _cvm_columns,
    detect_drift,
    drift_score_from_p,
    match_resolution,
    mean_shift_sd,
    psi,
)
from app.stats.simulation import (
    GaussianClassModel,
    detection_rate,
    shift_vector,
)

NAMES = ["a", "b", "c", "d"]

THRESHOLD = 0.3  # the seed's, and the DRIFT_THRESHOLD default


def _window(source: GaussianClassModel, X: np.ndarray, seed: int, feature: int | None, shift_sd: float) -> np.ndarray:
    """One rounded 100-row window with the given shift."""
    rng = np.random.default_rng(seed)
    return source.sample(100, rng, shift=shift_vector(X, feature, shift_sd), round_to=0.1)


# --- detect_drift -----------------------------------------------------------


def test_identical_distribution_scores_low(iris: tuple) -> None:
    """The reference against itself is as far from drift as it gets."""
    X, _, names = iris
    result = detect_drift(X, X, names, threshold=THRESHOLD)
    assert result["drift_score"] < 0.05
    assert not result["drift_detected"]
    assert result["status"] == "OK"


def test_same_distribution_window_not_flagged(iris: tuple, source: GaussianClassModel) -> None:
    """A window drawn from the reference's distribution stays below the threshold."""
    X, _, names = iris
    result = detect_drift(X, _window(source, X, 7, None, 0.0), names, threshold=THRESHOLD)
    assert result["drift_score"] < THRESHOLD
    assert result["status"] == "OK"


def test_big_shift_detected_with_full_score(iris: tuple, source: GaussianClassModel) -> None:
    """Three SDs on every feature saturates the score and flags every feature."""
    X, _, names = iris
    result = detect_drift(X, _window(source, X, 8, None, 3.0), names, threshold=THRESHOLD)
    assert result["drift_detected"]
    assert result["status"] == "WARNING"
    assert result["drift_score"] == 1.0
    assert all(f["drifted"] for f in result["features"].values())


def test_result_shape(iris: tuple, source: GaussianClassModel) -> None:
    """Every documented key is present with the documented type."""
    X, _, names = iris
    result = detect_drift(X, _window(source, X, 9, 2, 0.5), names, threshold=THRESHOLD)
    assert set(result) == {
        "drift_score",
        "threshold",
        "drift_detected",
        "status",
        "samples",
        "alpha",
        "method",
        "features",
    }
    assert result["samples"] == 100
    assert result["threshold"] == THRESHOLD and result["alpha"] == DEFAULT_ALPHA
    assert list(result["features"]) == names
    for feature in result["features"].values():
        assert set(feature) == {
            "test",
            "statistic",
            "p_value",
            "p_value_adjusted",
            "psi",
            "mean_shift_sd",
            "drifted",
        }
        assert feature["p_value"] <= feature["p_value_adjusted"] <= 1.0


def test_insufficient_data_below_min_samples(iris: tuple) -> None:
    """29 rows is not enough by default; 30 is."""
    X, _, names = iris
    result = detect_drift(X, X[:29], names, threshold=THRESHOLD)
    assert result == {
        "drift_score": 0.0,
        "threshold": THRESHOLD,
        "drift_detected": False,
        "status": "INSUFFICIENT_DATA",
        "samples": 29,
        "alpha": DEFAULT_ALPHA,
        "method": "cramer-von-mises 2-sample per feature, holm-adjusted",
        "features": {},
    }
    assert detect_drift(X, X[:30], names, threshold=THRESHOLD)["status"] != "INSUFFICIENT_DATA"


@pytest.mark.parametrize("empty", [np.empty((0, 4)), [], np.array([])])
def test_empty_window_is_insufficient(iris: tuple, empty: object) -> None:
    """No served rows yet is INSUFFICIENT_DATA, not an error."""
    X, _, names = iris
    result = detect_drift(X, empty, names, threshold=THRESHOLD)
    assert result["status"] == "INSUFFICIENT_DATA"
    assert result["samples"] == 0


def test_min_samples_one_still_needs_two_rows(iris: tuple) -> None:
    """A single row cannot be tested whatever min_samples says."""
    X, _, names = iris
    assert detect_drift(X, X[:1], names, min_samples=1, threshold=THRESHOLD)["status"] == "INSUFFICIENT_DATA"
    assert detect_drift(X, X[:2], names, min_samples=1, threshold=THRESHOLD)["status"] != "INSUFFICIENT_DATA"


@pytest.mark.parametrize("shift_sd", [0.0, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 2.0])
def test_decision_score_and_p_agree(iris: tuple, source: GaussianClassModel, shift_sd: float) -> None:
    """drift_detected, score >= threshold and min adjusted p <= alpha are one decision."""
    X, _, names = iris
    for seed in range(5):
        result = detect_drift(X, _window(source, X, seed, 1, shift_sd), names, threshold=THRESHOLD)
        p_star = min(f["p_value_adjusted"] for f in result["features"].values())
        assert result["drift_detected"] == (result["drift_score"] >= result["threshold"]) == (p_star <= 0.05)
        assert result["drift_detected"] == any(f["drifted"] for f in result["features"].values())
        assert result["status"] == ("WARNING" if result["drift_detected"] else "OK")


def test_custom_threshold_and_alpha(iris: tuple, source: GaussianClassModel) -> None:
    """Other levels keep the score/decision agreement."""
    X, _, names = iris
    result = detect_drift(X, _window(source, X, 3, 0, 0.5), names, threshold=0.5, alpha=0.01)
    p_star = min(f["p_value_adjusted"] for f in result["features"].values())
    assert result["drift_detected"] == (result["drift_score"] >= 0.5) == (p_star <= 0.01)


def test_output_is_json_serialisable(iris: tuple, source: GaussianClassModel) -> None:
    """Plain Python scalars only, and no NaN or infinity."""
    X, _, names = iris
    result = detect_drift(X, _window(source, X, 4, None, 1.0), names, threshold=THRESHOLD)
    json.dumps(result, allow_nan=False)
    for key in ("drift_score", "threshold", "alpha"):
        assert type(result[key]) is float
    assert type(result["drift_detected"]) is bool and type(result["samples"]) is int
    for feature in result["features"].values():
        assert type(feature["drifted"]) is bool
        for key in ("statistic", "p_value", "p_value_adjusted", "psi", "mean_shift_sd"):
            assert type(feature[key]) is float and math.isfinite(feature[key])


def test_constant_column_gives_no_nan() -> None:
    """A feature stuck at one value in both samples is 'no evidence', not NaN."""
    rng = np.random.default_rng(0)
    reference = np.column_stack([np.full(120, 1.4), rng.normal(size=(120, 3))])
    current = np.column_stack([np.full(100, 1.4), rng.normal(size=(100, 3))])
    result = detect_drift(reference, current, NAMES, threshold=THRESHOLD)
    json.dumps(result, allow_nan=False)
    constant = result["features"]["a"]
    assert constant["p_value"] == 1.0 and constant["statistic"] == 0.0
    assert constant["psi"] == pytest.approx(0.0, abs=1e-12)
    assert constant["mean_shift_sd"] == 0.0


def test_constant_reference_with_moved_current_is_drift() -> None:
    """A constant reference column that changes value is finite, positive drift."""
    rng = np.random.default_rng(1)
    reference = np.column_stack([np.zeros(120), rng.normal(size=(120, 3))])
    current = np.column_stack([np.ones(100), rng.normal(size=(100, 3))])
    result = detect_drift(reference, current, NAMES, threshold=THRESHOLD)
    json.dumps(result, allow_nan=False)
    assert result["drift_detected"] and result["features"]["a"]["drifted"]
    assert result["features"]["a"]["mean_shift_sd"] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"current": np.zeros((50, 3))}, "shape"),
        ({"current": np.full((50, 4), np.nan)}, "NaN"),
        ({"feature_names": ["a", "a", "b", "c"]}, "duplicates"),
        ({"alpha": 0.0}, "alpha"),
        ({"threshold": 1.5}, "threshold"),
    ],
)
def test_invalid_input_rejected(kwargs: dict, message: str) -> None:
    """Malformed inputs fail loudly instead of producing a silent score."""
    defaults = {"reference": np.zeros((120, 4)), "current": np.zeros((50, 4)), "feature_names": NAMES}
    args = defaults | {"threshold": THRESHOLD} | kwargs
    with pytest.raises(ValueError, match=message):
        detect_drift(args.pop("reference"), args.pop("current"), args.pop("feature_names"), **args)


# --- the Cramér–von Mises test and resolution matching ----------------------


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("rows", [30, 100, 400])
def test_cvm_matches_scipy_without_ties(shift: float, rows: int) -> None:
    """On continuous data the statistic and p-value are scipy's asymptotic ones."""
    rng = np.random.default_rng(rows)
    reference, current = rng.normal(size=(120, 4)), rng.normal(shift, 1.0, size=(rows, 4))
    statistic, p_value = _cvm_columns(reference, current)
    expected = stats.cramervonmises_2samp(reference, current, method="asymptotic", axis=0)
    np.testing.assert_allclose(statistic, expected.statistic, rtol=1e-10)
    np.testing.assert_allclose(p_value, expected.pvalue, rtol=1e-6, atol=1e-8)


def test_small_tied_windows_are_calibrated(iris: tuple) -> None:
    """Raw p-values for 20 of the reference's own 0.1 cm grid rows are not too small too often."""
    X, _, names = iris
    rng = np.random.default_rng(31)
    p_values = np.array(
        [
            [
                f["p_value"]
                for f in detect_drift(
                    X, X[rng.choice(120, 20, replace=False)], names, min_samples=20, threshold=THRESHOLD
                )["features"].values()
            ]
            for _ in range(200)
        ]
    )
    # scipy's mid-rank statistic gives about 0.25 and 0.33 here for the two widths.
    assert (p_values <= 0.05).mean(axis=0).max() <= 0.08


def test_match_resolution_rounds_to_reference_grid(iris: tuple) -> None:
    """Iris is recorded to 0.1 cm; a continuous reference leaves the window alone."""
    X, _, _ = iris
    current = np.array([[5.14, 3.06, 1.449, 0.25001]])
    np.testing.assert_array_equal(match_resolution(X, current), [[5.1, 3.1, 1.4, 0.3]])
    continuous = np.random.default_rng(0).normal(size=(50, 4))
    np.testing.assert_array_equal(match_resolution(continuous, current), current)


def test_unrounded_windows_shift_symmetrically(iris: tuple, source: GaussianClassModel) -> None:
    """Continuous sepal widths against the 0.1 cm reference: -0.5 SD is caught as often as +0.5 SD."""
    X, _, _ = iris
    rates = [
        detection_rate(
            X,
            source,
            feature=1,
            shift_sd=shift,
            windows=300,
            rng=np.random.default_rng(13),
            rounded_fraction=0.0,
            threshold=THRESHOLD,
        )
        for shift in (0.5, -0.5)
    ]
    # Without rounding to the reference grid the window reads as 0.05 cm
    # (0.1 SD) higher, which gave about 0.98 against 0.81.
    assert abs(rates[0] - rates[1]) <= 0.08, rates


# --- drift_score_from_p -------------------------------------------------------


def test_score_is_threshold_exactly_at_alpha() -> None:
    """p* == alpha is drift, with score exactly 0.3."""
    assert drift_score_from_p(0.05, threshold=THRESHOLD) == 0.3


def test_score_just_around_alpha() -> None:
    """One ulp either side of alpha lands on the matching side of the threshold."""
    above = drift_score_from_p(math.nextafter(0.05, 1.0), threshold=THRESHOLD)
    below = drift_score_from_p(math.nextafter(0.05, 0.0), threshold=THRESHOLD)
    assert above < 0.3 <= below


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05, 0.1, 0.3])
@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.5, 1.0])
def test_score_boundary_agrees_with_p_for_all_levels(alpha: float, threshold: float) -> None:
    """score >= threshold iff p <= alpha, on a dense grid of p around alpha."""
    near = [alpha * (1 + k * 1e-15) for k in range(-50, 51)]
    ulps = [math.nextafter(alpha, 0.0), alpha, math.nextafter(alpha, 1.0)]
    for p in near + ulps + list(np.geomspace(1e-12, 1.0, 200)):
        score = drift_score_from_p(p, threshold=threshold, alpha=alpha)
        assert 0.0 <= score <= 1.0
        assert (score >= threshold) == (p <= alpha), p


def test_score_endpoints_and_monotonic() -> None:
    """p = 1 gives 0, tiny p saturates at 1, and smaller p never scores lower."""
    assert (
        drift_score_from_p(1.0, threshold=THRESHOLD) == 0.0
        and not math.copysign(1.0, drift_score_from_p(1.0, threshold=THRESHOLD)) < 0
    )
    assert drift_score_from_p(0.0, threshold=THRESHOLD) == 1.0
    assert drift_score_from_p(1e-6, threshold=THRESHOLD) == 1.0
    assert drift_score_from_p(0.5, threshold=THRESHOLD) == pytest.approx(0.3 * math.log(0.5) / math.log(0.05))
    scores = [drift_score_from_p(p, threshold=THRESHOLD) for p in np.geomspace(1e-8, 1.0, 300)]
    assert all(a >= b for a, b in itertools.pairwise(scores))


# --- psi, mean shift ----------------------------------------------------


def test_psi_identical_is_zero() -> None:
    """The same sample in both windows has PSI 0."""
    values = np.random.default_rng(0).normal(size=200)
    assert psi(values, values) == pytest.approx(0.0, abs=1e-12)


def test_psi_known_two_bin_value() -> None:
    """50/50 reference, 75/25 current: 0.25 ln 1.5 + 0.25 ln 2."""
    expected = 0.25 * math.log(1.5) + 0.25 * math.log(2.0)
    assert psi(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0, 0.0, 1.0]), bins=2) == pytest.approx(
        expected, rel=1e-3
    )


def test_psi_disjoint_is_large() -> None:
    """A current window entirely above the reference is far beyond the usual 0.25 alarm."""
    reference = np.arange(100, dtype=float)
    assert psi(reference, reference + 1000.0) > 5.0


def test_psi_tied_reference_is_finite() -> None:
    """Heavily tied (grid) reference values do not produce empty-bin infinities."""
    reference = np.repeat([1.0, 1.1, 1.2], 40)
    assert math.isfinite(psi(reference, np.full(100, 5.0)))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_mean_shift_sd_is_signed(sign: float) -> None:
    """Shifting by half a reference SD reports +/-0.5."""
    reference = np.random.default_rng(2).normal(3.0, 2.0, size=120)
    current = reference + sign * 0.5 * reference.std(ddof=1)
    assert mean_shift_sd(reference, current) == pytest.approx(sign * 0.5)


# --- statistical bounds (acceptance criteria) --------------------------------
# Windows are drawn from the fitted class Gaussians, independently of the
# reference rows, half of them rounded to 0.1 cm. Fixed seeds keep the
# rates reproducible; the window counts give a standard error below 0.7 %
# for a 5 % false-alarm rate and about 1.5 % for 85 % power.

NULL_WINDOWS = 1000
ONE_SD_WINDOWS = 400
HALF_SD_WINDOWS = 600


def test_false_alarm_rate_at_most_5_percent(iris: tuple, source: GaussianClassModel) -> None:
    """Unshifted windows are flagged in at most 5 % of cases."""
    X, _, _ = iris
    rate = detection_rate(
        X,
        source,
        feature=None,
        shift_sd=0.0,
        windows=NULL_WINDOWS,
        rng=np.random.default_rng(20240),
        threshold=THRESHOLD,
    )
    assert rate <= 0.05


def test_false_alarm_rate_at_min_samples(iris: tuple, source: GaussianClassModel) -> None:
    """The smallest window that is tested (30 rows) keeps the false-alarm rate too."""
    X, _, _ = iris
    rate = detection_rate(
        X,
        source,
        feature=None,
        shift_sd=0.0,
        windows=NULL_WINDOWS,
        window=30,
        rng=np.random.default_rng(20243),
        threshold=THRESHOLD,
    )
    assert rate <= 0.05


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["plus", "minus"])
@pytest.mark.parametrize("feature", range(4))
def test_one_sd_shift_detected(iris: tuple, source: GaussianClassModel, feature: int, sign: float) -> None:
    """A one-SD shift of any single feature is flagged in at least 99 % of windows."""
    X, _, _ = iris
    rng = np.random.default_rng([20241, feature, int(sign > 0)])
    rate = detection_rate(
        X, source, feature=feature, shift_sd=sign, windows=ONE_SD_WINDOWS, rng=rng, threshold=THRESHOLD
    )
    assert rate >= 0.99


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["plus", "minus"])
def test_half_sd_shift_power(iris: tuple, source: GaussianClassModel, sign: float) -> None:
    """Half-SD single-feature shifts: at least 85 % on average over features, none below 75 %."""
    X, _, _ = iris
    rates = [
        detection_rate(
            X,
            source,
            feature=feature,
            shift_sd=0.5 * sign,
            windows=HALF_SD_WINDOWS,
            rng=np.random.default_rng([20242, feature, int(sign > 0)]),
            threshold=THRESHOLD,
        )
        for feature in range(4)
    ]
    assert np.mean(rates) >= 0.85, rates
    assert min(rates) >= 0.75, rates
