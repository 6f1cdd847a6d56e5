"""The Experiment tab: the A/B report's verdict, traffic split, accuracy with intervals and significance,
then each version's accuracy and share over time across the experiment periods.

Every verdict here is the server's: its p-value text, its significance call, its winner, its SRM flag,
its intervals. The page only arranges them, so it cannot say "p = 0.050, significant" when the report
says 0.0496.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app.ui import charts
from app.ui.client import ApiClient
from app.ui.format import DASH, as_float, format_interval, format_ms, format_when, pct, server_text

# The fields a comparison carries once the server has run a test on it.
_TEST_FIELDS = ("p_value_text", "p_value_adjusted", "p_value")


def render(client: ApiClient) -> None:
    """The A/B report of the current period, then the versions over time."""
    if _show_report(client):
        _show_timeline(client)


def _show_report(client: ApiClient) -> bool:
    """The A/B report: verdict, traffic split, accuracy with intervals and significance; False if it failed."""
    result = client.ab_report()
    if not result.ok:
        st.error(f"Cannot load the A/B report: {result.error}")
        return False
    report = result.data
    experiment = report.get("experiment") or {}
    st.caption(f"Experiment #{experiment.get('id', '?')} · started {format_when(experiment.get('started_at'))}")
    recommendation = report.get("recommendation")
    if recommendation:
        st.info(f"**Recommendation:** {recommendation}")
    _show_srm(report.get("srm") or {})
    variants = report.get("variants") or {}
    if not variants:
        st.info("No traffic recorded in this experiment yet.")
        return True
    _show_traffic(variants)
    _show_accuracy(variants)
    _show_comparisons(report.get("comparison"), report.get("comparisons") or [])
    _show_variant_table(variants)
    _show_shadow(report.get("shadow") or {})
    return True


def comparison_sentence(comparison: dict[str, Any]) -> str:
    """One sentence on whether the challenger differs from the baseline, quoting the server's p-value text."""
    challenger = comparison.get("challenger", "challenger")
    baseline = comparison.get("baseline", "baseline")
    diff = as_float(comparison.get("accuracy_diff"))
    diff_text = "unknown" if diff is None else f"{diff * 100:+.1f} points"
    p_text = server_text(comparison.get("p_value_text")) or "p-value unknown"
    method = comparison.get("method") or "test"
    head = f"{challenger} vs {baseline}: accuracy difference {diff_text}, {p_text} ({method})"
    if comparison.get("significant"):
        return f"{head}: significant, {comparison.get('winner') or 'neither'} is better."
    more = comparison.get("additional_samples_needed")
    tail = f"about {more} more labelled predictions per version needed" if more else "more data needed"
    return f"{head}: not significant yet, {tail}."


def sequential_sentence(comparison: dict[str, Any]) -> str | None:
    """The always-valid verdict (safe to read at every refresh) in words, as the server computed it."""
    sequential = comparison.get("sequential")
    if not isinstance(sequential, dict):
        return None
    p_text = server_text(sequential.get("p_value_text")) or "p-value unknown"
    interval = format_interval(sequential.get("confidence_sequence"))
    verdict = "a real difference" if sequential.get("significant") else "no conclusion yet"
    return (
        f"Always-valid test (stays correct however often you refresh): {p_text}, "
        f"confidence sequence for the difference {interval}: {verdict}."
    )


def _tested(comparison: object) -> bool:
    """Whether the server ran a test on this comparison (it nulls every p field until both sides have labels)."""
    return isinstance(comparison, dict) and any(comparison.get(key) is not None for key in _TEST_FIELDS)


def _show_srm(srm: dict[str, Any]) -> None:
    """Warn when the server finds the observed traffic split does not match the configured weights."""
    if srm.get("applicable") is False:
        st.info(f"Sample-ratio check: {server_text(srm.get('note')) or 'not applicable under a bandit'}.")
        return
    if not srm.get("mismatch"):
        return
    p_text = server_text(srm.get("p_value_text")) or "p-value unknown"
    threshold = as_float(srm.get("threshold"))
    below = "" if threshold is None else f", below the {threshold:g} threshold"
    st.warning(
        "Sample ratio mismatch: the observed traffic split differs from the configured "
        f"weights ({p_text}{below}). "
        "Check the router before trusting this comparison."
    )


def _show_traffic(variants: dict[str, Any]) -> None:
    """Configured versus observed share of requests per version."""
    st.subheader("Traffic split")
    frame = pd.DataFrame(
        {
            "configured share": [as_float(v.get("expected_share")) or 0.0 for v in variants.values()],
            "observed share": [as_float(v.get("observed_share")) or 0.0 for v in variants.values()],
        },
        index=pd.Index(list(variants), name="version"),
    )
    st.bar_chart(frame, stack=False, sort=False, y_label="share of requests")
    counts = " · ".join(f"{name}: {v.get('requests', 0)} requests" for name, v in variants.items())
    st.caption(counts)


def _show_accuracy(variants: dict[str, Any]) -> None:
    """Accuracy per version on labelled predictions, with its 95% interval."""
    st.subheader("Accuracy on labelled predictions")
    for column, (name, variant) in zip(st.columns(len(variants)), variants.items(), strict=True):
        column.metric(f"{name} accuracy", pct(variant.get("accuracy")))
        labeled = variant.get("labeled") or 0
        if labeled:
            column.caption(
                f"95% CI {format_interval(variant.get('accuracy_ci95'))} · "
                f"{variant.get('correct', 0)}/{labeled} correct"
            )
        else:
            column.caption("No labelled predictions yet.")


def _show_comparisons(comparison: dict[str, Any] | None, comparisons: list[Any]) -> None:
    """The baseline-versus-challenger test(s) as the server decided them, in numbers and in words."""
    st.subheader("Is the difference real?")
    # The API sends a comparison with null numbers until both versions have labels.
    if not comparison or not _tested(comparison):
        st.info("Not enough labelled predictions to compare the versions yet.")
        return
    diff = as_float(comparison.get("accuracy_diff"))
    diff_col, p_col, sig_col = st.columns(3)
    diff_col.metric("Accuracy difference", DASH if diff is None else f"{diff * 100:+.1f} pp")
    p_col.metric("p-value", server_text(comparison.get("p_value_text")) or DASH)
    sig_col.metric("Significant", "yes" if comparison.get("significant") else "no")
    extra = [c for c in comparisons if _tested(c) and c != comparison]
    for other in [comparison, *extra]:
        st.write(comparison_sentence(other))
        sequential = sequential_sentence(other)
        if sequential:
            st.caption(sequential)


def _show_variant_table(variants: dict[str, Any]) -> None:
    """All per-version numbers in one table."""
    rows = [
        {
            "version": name,
            "weight": v.get("weight"),
            "requests": v.get("requests", 0),
            "configured share": pct(v.get("expected_share")),
            "observed share": pct(v.get("observed_share")),
            "labelled": v.get("labeled", 0),
            "accuracy": pct(v.get("accuracy")),
            "95% CI": format_interval(v.get("accuracy_ci95")),
            "p50 latency": format_ms(v.get("latency_p50_ms")),
            "p95 latency": format_ms(v.get("latency_p95_ms")),
        }
        for name, v in variants.items()
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def _show_shadow(shadow: dict[str, Any]) -> None:
    """Shadow versions, judged by the server against what was served on the same rows."""
    if not shadow:
        return
    st.subheader("Shadow versions")
    rows = [
        {
            "version": name,
            "rows scored": s.get("requests", 0),
            "agrees with served": pct(s.get("agreement")),
            "labelled": s.get("labeled", 0),
            "accuracy": pct(s.get("accuracy")),
            "served, same rows": pct(s.get("served_accuracy")),
            "difference": DASH if as_float(s.get("accuracy_diff")) is None else f"{100 * s['accuracy_diff']:+.1f} pp",
            "McNemar": server_text(s.get("p_value_text")) or DASH,
        }
        for name, s in shadow.items()
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(
        "Scored beside every routed row and never returned to anyone; judged on the same labelled rows as the "
        "versions that served them (McNemar's exact test on the rows where exactly one of the two was right)."
    )


def _show_timeline(client: ApiClient) -> None:
    """Accuracy over time with both intervals, shadow versions dashed, periods as rules; the split over time."""
    st.subheader("Over time")
    result = client.timeline()
    if not result.ok:
        st.error(f"Cannot load the timeline: {result.error}")
        return
    timeline = result.data
    points = charts.timeline_frame(timeline)
    periods = charts.periods_frame(timeline)
    if points["accuracy"].notna().any():
        st.altair_chart(charts.accuracy_chart(points, periods), width="stretch")
        st.caption(
            f"Accuracy on the labelled predictions since {format_when(timeline.get('since'))}, counted up to "
            "each point. Darker band: the 95% interval, valid when read once; lighter band: the always-valid "
            "95% confidence sequence, valid however often you look. Dashed: shadow versions, scored on the same "
            "requests but never served. Dotted rules: where each experiment period starts."
        )
    else:
        st.info("No labelled predictions in this time yet: send labels to /feedback to see accuracy over time.")
    if (points["kind"] == charts.SERVED).any():
        st.altair_chart(charts.share_chart(points, periods), width="stretch")
        st.caption("Each version's share of the requests the router assigned, hour by hour and period by period.")
