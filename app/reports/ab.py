"""The A/B report of a period: the store's counts per version, judged by ``app.stats.experiment``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.clock import iso, utc_now
from app.serving.router import traffic_shares
from app.stats import experiment
from app.store import Experiment, ShadowCounts, Store, VariantCounts
from app.store.contract import COUNT_BUCKET_SECONDS


def ab_report(
    store: Store, current: Experiment, *, since: float | None = None, shares: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Gather the store's counts for a period and build the A/B report.

    Without ``since`` the period is the current experiment; its expected shares are ``shares`` (the
    router's, which knows which versions can serve) or those of the configured weights. With ``since``
    (rounded down to the hour the counters are kept by, and clamped to the oldest hour they still hold)
    every experiment period overlapping it contributes its own shares, in proportion to its traffic.
    Everything comes from the store's running counters: the cost does not grow with the log.
    """
    clamped = False
    bandit = current.policy_name == "thompson"
    periods: dict[int, Experiment] = {}
    selection: dict[str, Any]
    if since is None and bandit:
        # Under a bandit every reallocation is a period: the report covers them all since the bandit started.
        start = int((current.policy or {})["since_experiment"])
        selection = {"from_experiment": start}
        periods = {e.id: e for e in store.experiments() if e.id >= start}
    elif since is None:
        selection = {"experiment_id": current.id}
    else:
        since = float(int(since // COUNT_BUCKET_SECONDS) * COUNT_BUCKET_SECONDS)
        oldest = store.counted_since()
        if oldest is not None and since < oldest:
            since, clamped = oldest, True
        selection = {"since": since}
        periods = {e.id: e for e in store.experiments()}
    counts = store.variant_counts(**selection)
    latencies = store.latency_histograms(**selection)
    shadow = store.shadow_counts(**selection)
    if since is not None or bandit:  # several periods, each with its own configured shares
        expected = _mixed_shares(counts, periods, current)
    else:
        expected = dict(shares) if shares is not None else traffic_shares(current.weights)
    totals: dict[str, list[int]] = {}
    for c in counts:
        entry = totals.setdefault(c.version, [0, 0, 0])
        entry[0] += c.requests
        entry[1] += c.labeled
        entry[2] += c.correct
    versions = list(dict.fromkeys([*current.weights, *totals]))
    variants = [
        experiment.VariantData(
            version=v,
            weight=int(current.weights.get(v, 0)),
            expected_share=expected.get(v, 0.0),
            requests=totals.get(v, [0, 0, 0])[0],
            labeled=totals.get(v, [0, 0, 0])[1],
            correct=totals.get(v, [0, 0, 0])[2],
            latency_histogram=latencies.get(v, []),
        )
        for v in versions
    ]
    report = experiment.build_report(variants, baseline=versions[0] if versions else None, srm_applies=not bandit)
    period = {
        "id": current.id,
        "started_at": iso(current.started_at),
        "weights": dict(current.weights),
        "source": current.source,
        "shadow": list(current.shadow),
        "policy": current.policy,
    }
    return {
        "experiment": period,
        "since": iso(since) if since is not None else iso(current.started_at),
        "since_clamped": clamped,
        "generated_at": utc_now(),
        **report,
        "shadow": _shadow(shadow, report["alpha"]),
        "allocation": _allocation(counts, periods) if since is None and bandit else None,
    }


def _allocation(counts: Sequence[VariantCounts], periods: Mapping[int, Experiment]) -> list[dict[str, Any]]:
    """Under a bandit: each of its periods with the shares it configured and the shares it served, oldest first."""
    served: dict[int, dict[str, int]] = {}
    for c in counts:
        if c.experiment_id is not None:
            served.setdefault(c.experiment_id, {})[c.version] = c.requests
    allocation = []
    for exp_id in sorted(periods):
        period, requests = periods[exp_id], served.get(exp_id, {})
        total = sum(requests.values())
        allocation.append(
            {
                "experiment_id": exp_id,
                "started_at": iso(period.started_at),
                "weights": dict(period.weights),
                "configured_share": traffic_shares(period.weights),
                "requests": requests,
                "observed_share": {v: n / total for v, n in requests.items()} if total else None,
            }
        )
    return allocation


def _shadow(counts: Sequence[ShadowCounts], alpha: float) -> dict[str, dict[str, Any]]:
    """Each shadow version over the report's periods, judged against what was served on the same rows."""
    fields = ("requests", "agreed", "labeled", "correct", "served_correct", "discordant")
    totals: dict[str, dict[str, int]] = {}
    for c in counts:
        entry = totals.setdefault(c.version, dict.fromkeys(fields, 0))
        for name in fields:
            entry[name] += getattr(c, name)
    return {v: experiment.shadow_summary(**t, alpha=alpha) for v, t in sorted(totals.items())}


def _mixed_shares(
    counts: Sequence[VariantCounts], experiments: Mapping[int, Experiment], current: Experiment
) -> dict[str, float]:
    """Expected shares over several periods: each period's configured shares, weighted by its traffic."""
    expected: dict[str, float] = {}
    per_period: dict[int | None, int] = {}
    for c in counts:
        per_period[c.experiment_id] = per_period.get(c.experiment_id, 0) + c.requests
    for exp_id, n in per_period.items():
        period = experiments.get(exp_id, current) if exp_id is not None else current
        for v, share in traffic_shares(period.weights).items():
            expected[v] = expected.get(v, 0.0) + n * share
    grand = sum(expected.values()) or 1.0
    return {v: x / grand for v, x in expected.items()}
