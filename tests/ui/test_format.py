"""app/ui/format.py: how the page writes names, shares, latencies and times."""

from __future__ import annotations

import math
import re

import pytest

from app.ui.format import (
    as_float,
    class_label,
    clock_time,
    display_name,
    format_interval,
    format_ms,
    format_when,
    parse_utc,
    pct,
    server_text,
    weights_text,
)

CLASSES = ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("petal_length", "Petal Length"), ("setosa", "Setosa"), ("_x_", "X"), (3, "3")],
)
def test_display_name(name: object, expected: str) -> None:
    assert display_name(name) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), (0.25, 0.25), (None, None), ("0.5", None), (True, None), (math.nan, None), (math.inf, None)],
)
def test_as_float_accepts_only_finite_numbers(value: object, expected: float | None) -> None:
    assert as_float(value) == expected


@pytest.mark.parametrize(("value", "expected"), [(0.7125, "71.2%"), (1, "100.0%"), (None, "—"), ("high", "—")])
def test_pct(value: object, expected: str) -> None:
    assert pct(value) == expected


@pytest.mark.parametrize(("value", "expected"), [(0.44, "0.4 ms"), (12, "12.0 ms"), (None, "—"), (math.nan, "—")])
def test_format_ms(value: object, expected: str) -> None:
    assert format_ms(value) == expected


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [([0.912, 1.0], "91.2% – 100.0%"), ((0.1, 0.2), "10.0% – 20.0%"), ([0.1], "—"), ([None, 1.0], "—"), (None, "—")],
)
def test_format_interval(bounds: object, expected: str) -> None:
    assert format_interval(bounds) == expected


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-11-24T03:00:00+00:00", "2026-11-24 03:00 UTC"),
        ("2026-11-24T04:30:00+01:30", "2026-11-24 03:00 UTC"),
        ("yesterday", "yesterday"),
        (None, "?"),
    ],
)
def test_format_when_converts_to_utc_or_passes_text_through(timestamp: object, expected: str) -> None:
    assert format_when(timestamp) == expected


def test_parse_utc_rejects_what_is_not_a_timestamp() -> None:
    assert parse_utc("not a time") is None


def test_clock_time_of_a_timestamp_and_of_now() -> None:
    assert clock_time("2026-11-24T05:06:07.5+02:00") == "03:06:07"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", clock_time(None))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "Setosa"), (2, "Virginica"), ("versicolor", "Versicolor"), (7, "7"), (True, "True")],
)
def test_class_label_by_index_or_name(value: object, expected: str) -> None:
    assert class_label(value, CLASSES) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("p = 0.0496", "p = 0.0496"), ("p < 0.001", "p < 0.001"), ("", None), ("  ", None), (None, None), (0.05, None)],
)
def test_server_text_passes_the_servers_string_through(value: object, expected: str | None) -> None:
    assert server_text(value) == expected


@pytest.mark.parametrize(
    ("weights", "expected"),
    [({"v1": 90, "v2": 10}, "v1 90 · v2 10"), ({"v2": 0}, "v2 0"), ({}, "—"), (None, "—"), ([90, 10], "—")],
)
def test_weights_text(weights: object, expected: str) -> None:
    assert weights_text(weights) == expected
