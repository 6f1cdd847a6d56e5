"""Holm's step-down correction, the one copy the drift test and the A/B report share."""

from __future__ import annotations

import numpy as np
import pytest

from app.stats.multiple_testing import holm_adjust


@pytest.mark.parametrize(
    ("raw", "adjusted"),
    [
        ([0.01, 0.04, 0.03], [0.03, 0.06, 0.06]),
        ([0.01, 0.04, 0.03, 0.2], [0.04, 0.09, 0.09, 0.2]),
        ([0.02, 0.2], [0.04, 0.2]),
        ([0.6, 0.6], [1.0, 1.0]),
        ([0.04], [0.04]),
        ([], []),
    ],
)
def test_holm_adjust(raw: list[float], adjusted: list[float]) -> None:
    assert holm_adjust(raw).tolist() == pytest.approx(adjusted)


def test_holm_keeps_input_order_and_monotonicity() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(size=50)
    adjusted = holm_adjust(raw)
    order = np.argsort(raw)
    assert np.all(np.diff(adjusted[order]) >= 0) and np.all(adjusted >= raw) and np.all(adjusted <= 1)
