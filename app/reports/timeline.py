"""The A/B timeline: each version's accuracy over time with its intervals, and the periods on the same axis.

Built from the store's hourly counters and the experiment periods only, so it costs the same on a log of a
thousand rows as on ten million. Time is cut into slices, one per (period ∩ hour): every period starts a
slice and so does every hour. A version's point at a slice carries that slice's own requests and share of
the routed traffic (the split over time, as a bandit moves it), and its labels, correct labels, accuracy,
Wilson interval and always-valid confidence sequence counted from ``since`` up to the slice's end (the
accuracy over time). A label counts in the hour of its prediction, so a late label fills in the past.
Requests the router did not assign (a versioned V2 infer) belong to no period and are left out.
"""

from __future__ import annotations

import time
from collections import defaultdict
from itertools import pairwise
from typing import Any

from app.clock import iso
from app.serving.router import traffic_shares
from app.stats.experiment import wilson_interval
from app.stats.sequential import proportion_sequence
from app.store import Experiment, PeriodHour, Store
from app.store.contract import COUNT_BUCKET_SECONDS

ALPHA = 0.05
"""The level of both intervals: Wilson at 95% for one look, the confidence sequence at 95% for every look."""
DEFAULT_SECONDS = 7 * 86400
"""Without ``since`` the timeline covers the last seven days."""
MAX_POINTS = 2000
"""At most this many points per version: the newest (their counts still run from ``since``)."""


def timeline(store: Store, *, since: float | None = None, now: float | None = None) -> dict[str, Any]:
    """Each version's points since ``since`` (rounded down to the hour; the last 7 days without it) and the
    periods overlapping it. A ``since`` older than the counters hold is moved to their oldest hour."""
    now = time.time() if now is None else now
    start = now - DEFAULT_SECONDS if since is None else since
    start = float(int(start // COUNT_BUCKET_SECONDS) * COUNT_BUCKET_SECONDS)
    oldest = store.counted_since()
    if oldest is not None and start < oldest:
        start = oldest
    experiments = store.experiments()
    ends = {e.id: nxt.started_at for e, nxt in pairwise(experiments)}
    periods = [e for e in experiments if ends.get(e.id) is None or ends[e.id] > start]
    period_ends = {e.id: ends.get(e.id) for e in periods}
    served = store.period_hours(start)
    return {
        "generated_at": iso(now),
        "since": iso(start),
        "alpha": ALPHA,
        "periods": [period_view(e, ends.get(e.id)) for e in periods],
        "versions": _series(served, period_ends, now),
        # The shadow versions beside them; a shadow point's share is the part of the routed rows it scored.
        "shadow": _series(store.period_hours(start, shadow=True), period_ends, now, _routed(served)),
    }


def period_view(experiment: Experiment, next_started_at: float | None) -> dict[str, Any]:
    """One experiment period as the timeline shows it; ``next_started_at`` ends it (None: it is in force)."""
    return {
        "id": experiment.id,
        "started_at": iso(experiment.started_at),
        "ended_at": iso(next_started_at) if next_started_at is not None else None,
        "weights": dict(experiment.weights),
        "shares": traffic_shares(experiment.weights),
        "source": experiment.source,
        "shadow": list(experiment.shadow),
        "policy": experiment.policy,
    }


def _routed(rows: list[PeriodHour]) -> dict[tuple[float, int], int]:
    """Routed requests per (hour, period) slice."""
    totals: dict[tuple[float, int], int] = defaultdict(int)
    for row in rows:
        if row.experiment_id is not None:
            totals[(row.hour, row.experiment_id)] += row.requests
    return totals


def _series(
    rows: list[PeriodHour],
    ends: dict[int, float | None],
    now: float,
    routed: dict[tuple[float, int], int] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every version's points over the slices of ``rows`` that belong to one of the periods in ``ends``; a share is
    of the slice's requests in ``rows``, or of ``routed`` (the served requests) when given."""
    slices: dict[tuple[float, int], dict[str, PeriodHour]] = defaultdict(dict)
    for row in rows:
        if row.experiment_id is not None and row.experiment_id in ends:
            slices[(row.hour, row.experiment_id)][row.version] = row
    versions = sorted({version for cut in slices.values() for version in cut})
    ordered = sorted(slices, key=lambda key: (_slice_end(key[0], ends[key[1]], now), key[1]))
    series: dict[str, list[dict[str, Any]]] = {v: [] for v in versions}
    labeled = dict.fromkeys(versions, 0)
    correct = dict.fromkeys(versions, 0)
    for hour, experiment_id in ordered:
        cut = slices[(hour, experiment_id)]
        total = routed.get((hour, experiment_id), 0) if routed is not None else sum(r.requests for r in cut.values())
        at = iso(_slice_end(hour, ends[experiment_id], now))
        for version in versions:
            own = cut.get(version)
            requests = own.requests if own else 0
            labeled[version] += own.labeled if own else 0
            correct[version] += own.correct if own else 0
            series[version].append(_point(at, experiment_id, requests, total, labeled[version], correct[version]))
    return {v: points[-MAX_POINTS:] for v, points in series.items()}


def _slice_end(hour: float, period_end: float | None, now: float) -> float:
    """Where a (period ∩ hour) slice ends: the period's end, the hour's end or now, whichever comes first.

    Never before the hour starts: a worker that adopted a new period late counted a little of the next
    hour under the old one.
    """
    end = min(hour + COUNT_BUCKET_SECONDS, now)
    if period_end is not None:
        end = min(end, period_end)
    return max(hour, end)


def _point(at: str, experiment_id: int, requests: int, total: int, labeled: int, correct: int) -> dict[str, Any]:
    """One version at one slice: the slice's traffic, and the labels counted up to its end."""
    return {
        "at": at,
        "experiment_id": experiment_id,
        "requests": requests,
        "labeled": labeled,
        "correct": correct,
        "share": requests / total if total else None,
        "accuracy": correct / labeled if labeled else None,
        "ci95": list(wilson_interval(correct, labeled, 1.0 - ALPHA)) if labeled else None,
        "cs": list(proportion_sequence(correct, labeled, alpha=ALPHA)) if labeled else None,
    }
