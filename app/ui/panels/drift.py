"""The Drift tab: the drift score against the threshold the API judged it by, the status, the score's history,
and the per-feature tests, each measure on an axis of its own."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app.ui import charts
from app.ui.client import ApiClient
from app.ui.format import DASH, as_float, display_name

HISTORY_POINTS = 20


def render(client: ApiClient) -> None:
    """Drift score against its threshold, the status and per-feature test results."""
    result = client.drift()
    if not result.ok:
        st.error(f"Cannot load the drift status: {result.error}")
        return
    drift = result.data
    score = as_float(drift.get("drift_score"))
    # The server's threshold, or none at all: a made-up one would draw a bar the alarm does not follow.
    threshold = as_float(drift.get("threshold"))
    _show_status(drift)
    score_col, threshold_col, samples_col = st.columns(3)
    score_col.metric("Drift score", DASH if score is None else f"{score:.3f}")
    threshold_col.metric("Alarm threshold", DASH if threshold is None else f"{threshold:.2f}")
    samples_col.metric("Samples in window", f"{drift.get('samples', 0)} / {drift.get('window_size', '?')}")
    if score is not None and threshold is not None and threshold > 0:
        # The bar fills up as the score approaches the alarm threshold.
        st.progress(
            min(max(score / threshold, 0.0), 1.0),
            text=f"Drift score {score:.2f} of the {threshold:.2f} threshold",
        )
    _show_history(client)
    _show_features(drift.get("features") or {}, as_float(drift.get("alpha")))


def _show_history(client: ApiClient) -> None:
    """The drift score of the windows before this one, against the threshold the server sent with them."""
    st.subheader("History")
    result = client.drift_history(HISTORY_POINTS)
    if not result.ok:
        st.error(f"Cannot load the drift history: {result.error}")
        return
    windows = charts.drift_history_frame(result.data)
    if windows.empty:
        st.info("No earlier windows with enough predictions yet.")
        return
    threshold = as_float(result.data.get("threshold"))
    st.altair_chart(charts.drift_history_chart(windows, threshold), width="stretch")
    size = result.data.get("window_size", "?")
    st.caption(
        f"The drift score of successive windows of up to {size} predictions, going back through the log "
        "(no prediction is in two windows); at or above the threshold the window drifted."
    )


def _show_status(drift: dict[str, Any]) -> None:
    """Explain the drift status in one line."""
    status = str(drift.get("status", "unknown"))
    features = drift.get("features") or {}
    drifted = [name for name, f in features.items() if isinstance(f, dict) and f.get("drifted")]
    if status == "INSUFFICIENT_DATA":
        samples = f"{drift.get('samples', 0)} of {drift.get('window_size', '?')}"
        st.info(f"Not enough live data yet: {samples} samples.")
    elif status == "WARNING" or drift.get("drift_detected"):
        which = ", ".join(display_name(n) for n in drifted) or "see the table"
        st.warning(f"Drift detected (status {status}): live inputs differ from the training data ({which}).")
    elif status == "OK":
        st.success("No drift: live inputs look like the training data (status OK).")
    else:
        st.info(f"Drift status: {status}")


def _show_features(features: dict[str, Any], alpha: float | None) -> None:
    """Per-feature adjusted p-value, PSI and mean shift as three charts, and a table of everything."""
    if not features:
        return
    rows = [
        {
            "feature": display_name(name),
            "test": f.get("test"),
            "statistic": as_float(f.get("statistic")),
            "p-value": as_float(f.get("p_value")),
            "adjusted p-value": as_float(f.get("p_value_adjusted")),
            "PSI": as_float(f.get("psi")),
            "mean shift (SD)": as_float(f.get("mean_shift_sd")),
            "drifted": "⚠️ yes" if f.get("drifted") else "no",
        }
        for name, f in features.items()
        if isinstance(f, dict)
    ]
    table = pd.DataFrame(rows)
    st.subheader("Per feature")
    plotted = charts.feature_charts(charts.feature_frame(features), alpha)
    for column, chart in zip(st.columns(len(plotted)), plotted.values(), strict=True):
        column.altair_chart(chart, width="stretch")
    below = f"; drift below the dashed line at {alpha:g}" if alpha else ""
    st.caption(f"Adjusted p-values on a log scale{below}. PSI and the mean shift, in reference SDs, are for people.")
    st.dataframe(table.round(4), hide_index=True)
