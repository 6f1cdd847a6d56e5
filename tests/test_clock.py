"""Times as the API writes them, and the one parser for a report's ``since``."""

from __future__ import annotations

import pytest

from app.clock import iso, parse_since, utc_now


def test_iso_is_utc():
    assert iso(0) == "1970-01-01T00:00:00+00:00" and utc_now().endswith("+00:00")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1700000000", 1_700_000_000.0),
        ("2026-01-01T00:00:00Z", 1_767_225_600.0),
        ("2026-01-01T01:00:00+01:00", 1_767_225_600.0),
    ],
)
def test_parse_since_accepts(raw, expected):
    assert parse_since(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("yesterday", "ISO-8601"),
        ("2026-01-01T00:00:00", "timezone"),
        ("nan", "ISO-8601"),
        ("1e300", "ISO-8601"),
        ("0001-01-01T00:00:00+14:00", "out of range"),
    ],
)
def test_parse_since_refuses(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_since(raw)
