"""Time as the API shows it: ISO-8601 UTC strings, and the one parser for a report's ``since``."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    """The current time as ISO-8601 UTC."""
    return datetime.now(UTC).isoformat()


def iso(ts: float) -> str:
    """A unix time as ISO-8601 UTC."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def parse_since(raw: str) -> float:
    """An ISO-8601 time with a timezone, or unix seconds, as unix seconds; ValueError says what is wrong."""
    try:
        moment = datetime.fromtimestamp(float(raw), UTC)
    except (ValueError, OverflowError, OSError):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError("since must be an ISO-8601 time (with a timezone) or unix seconds") from None
    if moment.tzinfo is None:
        raise ValueError("since must include a timezone, e.g. 2026-01-01T00:00:00Z")
    try:
        since = moment.timestamp()
        datetime.fromtimestamp(since, UTC)  # the report prints it back
    except (OverflowError, OSError, ValueError):
        raise ValueError("since is out of range") from None
    return since
