"""The one rule for writing a p-value."""

from __future__ import annotations

import pytest

from app.stats.formatting import format_p, pct


@pytest.mark.parametrize(
    ("p", "alpha", "text"),
    [
        (0.0, None, "p < 0.001"),
        (0.00099, None, "p < 0.001"),
        (0.012, None, "p = 0.012"),
        (0.5, 0.05, "p = 0.500"),
        (0.0496, 0.05, "p = 0.0496"),  # would round to 0.050 and read as not significant
        (0.04996, 0.05, "p = 0.04996"),
        (0.04996, None, "p = 0.050"),
        (0.0504, 0.05, "p = 0.050"),  # 0.050 is not below 0.05, and neither is 0.0504
    ],
)
def test_format_p(p: float, alpha: float | None, text: str) -> None:
    assert format_p(p, alpha) == text


def test_pct() -> None:
    assert pct(0.1234) == "12.3%" and pct(1.0) == "100.0%"
