"""Synthetic serving traffic: the reference split, the fitted Gaussians, rounding and the scenarios."""

from __future__ import annotations

import numpy as np
import pytest

from app.stats.simulation import SCENARIOS, GaussianClassModel, round_to_grid, simulate_scenario

THRESHOLD = 0.3


def test_iris_reference_is_the_stratified_training_split(iris: tuple) -> None:
    """120 rows, 40 per class, 4 named features."""
    X, y, names = iris
    assert X.shape == (120, 4)
    assert np.bincount(y).tolist() == [40, 40, 40]
    assert names == ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def test_gaussian_model_reproduces_reference_moments(iris: tuple, source: GaussianClassModel) -> None:
    """A large sample has the reference's means and SDs."""
    X, _, _ = iris
    big = source.sample(200_000, np.random.default_rng(0))
    np.testing.assert_allclose(big.mean(axis=0), X.mean(axis=0), atol=0.01)
    np.testing.assert_allclose(big.std(axis=0), X.std(axis=0), rtol=0.03)


def test_rounding_gives_slider_doubles(source: GaussianClassModel) -> None:
    """Rounded values are the exact doubles '5.1' etc. parse to, so they tie with the reference."""
    rows = source.sample(500, np.random.default_rng(0), round_to=0.1)
    assert all(value == float(f"{value:.1f}") for value in rows.ravel())
    assert round_to_grid(np.array([5.14, 5.16]), 0.1).tolist() == [5.1, 5.2]


def test_simulate_scenarios(iris: tuple) -> None:
    """No drift stays quiet and severe drift is flagged, with or without labels."""
    X, y, names = iris
    assert set(SCENARIOS) == {"no_drift", "moderate", "severe"}
    for labels in (y, None):
        quiet = simulate_scenario("no_drift", X, names, np.random.default_rng(0), labels=labels, threshold=THRESHOLD)
        loud = simulate_scenario("severe", X, names, np.random.default_rng(0), labels=labels, threshold=THRESHOLD)
        assert not quiet["drift_detected"]
        assert loud["drift_detected"] and loud["drift_score"] == 1.0
    with pytest.raises(ValueError, match="unknown scenario"):
        simulate_scenario("nope", X, names, np.random.default_rng(0), threshold=THRESHOLD)
