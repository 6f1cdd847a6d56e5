"""How the page writes names, shares, latencies and times; pure functions, no Streamlit.

Statistical verdicts (p-values, significance, traffic shares, drift thresholds) are not formatted
here: the API sends them ready to show, so the page and the reports can never disagree.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

DASH = "—"


def display_name(name: object) -> str:
    """Turn a class or feature name like "petal_length" into "Petal Length"."""
    return str(name).replace("_", " ").strip().title()


def as_float(value: object) -> float | None:
    """Return value as a finite float, or None for null, text, booleans and NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def pct(value: object) -> str:
    """Format a 0..1 share as a percentage, or a dash when unknown."""
    number = as_float(value)
    return DASH if number is None else f"{number:.1%}"


def format_ms(value: object) -> str:
    """Format a latency in milliseconds, or a dash when unknown."""
    number = as_float(value)
    return DASH if number is None else f"{number:.1f} ms"


def format_interval(bounds: object) -> str:
    """Format a [low, high] share interval, or a dash when unknown."""
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return DASH
    low, high = (as_float(b) for b in bounds)
    if low is None or high is None:
        return DASH
    return f"{low:.1%} – {high:.1%}"


def weights_text(weights: object) -> str:
    """Routing weights {"v1": 90, "v2": 10} as "v1 90 · v2 10", or a dash when there are none."""
    if not isinstance(weights, dict) or not weights:
        return DASH
    return " · ".join(f"{version} {weight}" for version, weight in weights.items())


def parse_utc(timestamp: object) -> datetime | None:
    """Parse an ISO timestamp, converted to UTC when it carries a zone."""
    try:
        moment = datetime.fromisoformat(str(timestamp))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment


def format_when(timestamp: object) -> str:
    """Format an ISO timestamp as "2026-11-24 03:00 UTC", or pass other text through."""
    moment = parse_utc(timestamp)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else str(timestamp or "?")


def clock_time(timestamp: object) -> str:
    """HH:MM:SS (UTC) of an ISO timestamp, falling back to now."""
    return (parse_utc(timestamp) or datetime.now(UTC)).strftime("%H:%M:%S")


def class_label(value: object, class_names: list[str]) -> str:
    """Name a class given as an index or a name, in Title Case."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(class_names):
        return display_name(class_names[value])
    return display_name(value)


def server_text(value: object) -> str | None:
    """A ready-to-show string the API sent (a p-value's "p = 0.0496"), or None when null, empty or not text."""
    return value if isinstance(value, str) and value.strip() else None
