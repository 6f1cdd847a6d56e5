"""Fixtures of the statistics tests: the Iris training rows and Gaussians fitted to them."""

from __future__ import annotations

import numpy as np
import pytest

from app.stats.simulation import GaussianClassModel, iris_reference


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The Iris training rows, labels and feature names."""
    return iris_reference()


@pytest.fixture(scope="module")
def source(iris: tuple[np.ndarray, np.ndarray, list[str]]) -> GaussianClassModel:
    """Per-class Gaussians fitted to the Iris training rows."""
    X, y, _ = iris
    return GaussianClassModel.fit(X, y)
