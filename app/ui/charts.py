"""The page's charts: Altair specifications built from what the API sends; pure functions, no Streamlit.

Times are drawn in UTC, as the page writes them everywhere else. The numbers are the server's: the
intervals, the threshold and the p-values are plotted as sent, never recomputed here.
"""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import pandas as pd

from app.ui.format import as_float, display_name, parse_utc, weights_text

SERVED = "served"
SHADOW = "shadow (not served)"
DRIFT_COLOURS = ("#4c78a8", "#e45756")
"""No drift, drift: the points of the drift history and the threshold rule."""
VERSION_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
"""One colour per version, the same in every chart (in the order of the versions' names)."""
SMALLEST_P = 1e-16
"""p-values are drawn on a log scale; a p of 0 (or below this) is drawn here."""

PERIOD_LABEL_ROWS = 3
"""Period labels take turns over this many lines, so that periods close together stay readable."""
_TIMELINE_COLUMNS = [
    "version",
    "kind",
    "at",
    "experiment_id",
    "requests",
    "share",
    "labeled",
    "accuracy",
    "ci_lo",
    "ci_hi",
    "cs_lo",
    "cs_hi",
]


def timeline_frame(timeline: dict[str, Any]) -> pd.DataFrame:
    """One row per point of every served and shadow version of a /ab/timeline reply."""
    rows: list[dict[str, Any]] = []
    for kind, key in ((SERVED, "versions"), (SHADOW, "shadow")):
        series = timeline.get(key)
        if not isinstance(series, dict):
            continue
        for version, points in series.items():
            for point in points if isinstance(points, list) else []:
                at = parse_utc(point.get("at")) if isinstance(point, dict) else None
                if at is None:
                    continue
                ci_lo, ci_hi = _pair(point.get("ci95"))
                cs_lo, cs_hi = _pair(point.get("cs"))
                rows.append(
                    {
                        "version": str(version),
                        "kind": kind,
                        "at": at,
                        "experiment_id": point.get("experiment_id"),
                        "requests": point.get("requests"),
                        "share": as_float(point.get("share")),
                        "labeled": point.get("labeled"),
                        "accuracy": as_float(point.get("accuracy")),
                        "ci_lo": ci_lo,
                        "ci_hi": ci_hi,
                        "cs_lo": cs_lo,
                        "cs_hi": cs_hi,
                    }
                )
    return pd.DataFrame(rows, columns=_TIMELINE_COLUMNS)


def periods_frame(timeline: dict[str, Any]) -> pd.DataFrame:
    """Where each experiment period starts on the timeline's axis (not before ``since``), and its label."""
    since = parse_utc(timeline.get("since"))
    rows: list[dict[str, Any]] = []
    periods = timeline.get("periods")
    for period in periods if isinstance(periods, list) else []:
        start = parse_utc(period.get("started_at")) if isinstance(period, dict) else None
        if start is None:
            continue
        shadow = period.get("shadow")
        beside = f" · shadow {', '.join(map(str, shadow))}" if isinstance(shadow, list) and shadow else ""
        label = f"#{period.get('id', '?')} {period.get('source', '?')}: {weights_text(period.get('weights'))}{beside}"
        row = len(rows) % PERIOD_LABEL_ROWS
        rows.append({"start": max(start, since) if since else start, "label": label, "row": row})
    return pd.DataFrame(rows, columns=["start", "label", "row"])


def accuracy_chart(points: pd.DataFrame, periods: pd.DataFrame) -> alt.LayerChart:
    """Each version's accuracy over time with its two bands, shadow versions dashed, the periods as rules."""
    labelled = points.dropna(subset=["accuracy"])
    served = labelled[labelled["kind"] == SERVED]
    lows = [*labelled["accuracy"], *served["ci_lo"].dropna()]
    bottom = max(0.0, math.floor((min(lows, default=0.0) - 0.02) * 10) / 10)
    y_scale = alt.Scale(domain=[bottom, 1.0], clamp=True)
    x = _time("at", "time (UTC)")
    colour = _version_colour(points)
    bands = alt.Chart(served).encode(x=x, color=colour)
    always_valid = bands.mark_area(opacity=0.12).encode(y=alt.Y("cs_lo:Q", scale=y_scale), y2="cs_hi:Q")
    wilson = bands.mark_area(opacity=0.3).encode(y=alt.Y("ci_lo:Q", scale=y_scale), y2="ci_hi:Q")
    lines = (
        alt.Chart(labelled)
        .mark_line(strokeWidth=2)
        .encode(
            x=x,
            y=alt.Y("accuracy:Q", title="accuracy on labelled predictions", scale=y_scale, axis=alt.Axis(format="%")),
            color=colour,
            strokeDash=alt.StrokeDash(
                "kind:N", title=None, scale=alt.Scale(domain=[SERVED, SHADOW], range=[[1, 0], [6, 4]])
            ),
            tooltip=[
                "version:N",
                "kind:N",
                alt.Tooltip("at:T", title="until (UTC)", format="%d %b %H:%M", formatType="utc"),
                alt.Tooltip("accuracy:Q", format=".1%"),
                "labeled:Q",
                alt.Tooltip("ci_lo:Q", title="95% CI from", format=".1%"),
                alt.Tooltip("ci_hi:Q", title="95% CI to", format=".1%"),
                alt.Tooltip("cs_lo:Q", title="always valid from", format=".1%"),
                alt.Tooltip("cs_hi:Q", title="always valid to", format=".1%"),
            ],
        )
    )
    return alt.LayerChart(layer=[always_valid, wilson, lines, *_period_marks(periods)], height=340)


def share_chart(points: pd.DataFrame, periods: pd.DataFrame) -> alt.LayerChart:
    """Each served version's share of the routed requests, slice by slice, with the periods as rules."""
    served = points[(points["kind"] == SERVED)].dropna(subset=["share"])
    x = _time("at", "time (UTC)")
    steps = (
        alt.Chart(served)
        .mark_line(interpolate="step-before")
        .encode(
            x=x,
            y=alt.Y("share:Q", title="share of requests", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            color=_version_colour(points, shown=sorted(served["version"].unique())),
            tooltip=[
                "version:N",
                alt.Tooltip("at:T", title="until (UTC)", format="%d %b %H:%M", formatType="utc"),
                alt.Tooltip("share:Q", format=".0%"),
                "requests:Q",
            ],
        )
    )
    return alt.LayerChart(layer=[steps, *_period_marks(periods, labels=False)], height=200)


def drift_history_frame(history: dict[str, Any]) -> pd.DataFrame:
    """One row per window of a /drift/history reply."""
    rows = []
    windows = history.get("windows")
    for window in windows if isinstance(windows, list) else []:
        end = parse_utc(window.get("end")) if isinstance(window, dict) else None
        score = as_float(window.get("drift_score")) if isinstance(window, dict) else None
        if end is None or score is None:
            continue
        rows.append(
            {
                "end": end,
                "start": parse_utc(window.get("start")),
                "rows": window.get("rows"),
                "drift_score": score,
                "drift": "drift" if window.get("drift_detected") else "no drift",
            }
        )
    return pd.DataFrame(rows, columns=["end", "start", "rows", "drift_score", "drift"])


def drift_history_chart(windows: pd.DataFrame, threshold: float | None) -> alt.LayerChart:
    """The drift score of each window over time, and the alarm threshold as a rule."""
    x = _time("end", "window's newest prediction (UTC)")
    y = alt.Y("drift_score:Q", title="drift score", scale=alt.Scale(domain=[0, 1]))
    base = alt.Chart(windows).encode(x=x, y=y)
    colour = alt.Color("drift:N", title=None, scale=alt.Scale(domain=["no drift", "drift"], range=DRIFT_COLOURS))
    layers: list[alt.Chart] = [
        base.mark_line(color="#888888"),
        base.mark_point(filled=True, size=60).encode(
            color=colour,
            tooltip=[
                alt.Tooltip("start:T", title="from (UTC)", format="%d %b %H:%M", formatType="utc"),
                alt.Tooltip("end:T", title="to (UTC)", format="%d %b %H:%M", formatType="utc"),
                "rows:Q",
                alt.Tooltip("drift_score:Q", format=".2f"),
            ],
        ),
    ]
    if threshold is not None:
        rule = alt.Chart(pd.DataFrame({"threshold": [threshold]}))
        layers.append(rule.mark_rule(color=DRIFT_COLOURS[1], strokeDash=[6, 4]).encode(y="threshold:Q"))
        layers.append(
            rule.mark_text(align="left", dx=4, dy=-7, color=DRIFT_COLOURS[1]).encode(
                x=alt.value(0), y="threshold:Q", text=alt.value(f"alarm threshold {threshold:.2f}")
            )
        )
    return alt.LayerChart(layer=layers, height=240)


def feature_frame(features: dict[str, Any]) -> pd.DataFrame:
    """One row per feature of a drift result: its adjusted p-value, PSI and mean shift."""
    rows = [
        {
            "feature": display_name(name),
            "adjusted p-value": as_float(f.get("p_value_adjusted")),
            "PSI": as_float(f.get("psi")),
            "mean shift (SD)": as_float(f.get("mean_shift_sd")),
            "drifted": "drift" if f.get("drifted") else "no drift",
        }
        for name, f in features.items()
        if isinstance(f, dict)
    ]
    return pd.DataFrame(rows, columns=["feature", "adjusted p-value", "PSI", "mean shift (SD)", "drifted"])


def feature_charts(features: pd.DataFrame, alpha: float | None) -> dict[str, alt.LayerChart]:
    """Adjusted p-value, PSI and mean shift per feature, each on an axis of its own."""
    height = 70 + 40 * len(features)
    y = alt.Y("feature:N", title=None, sort=None)
    colour = alt.Color(
        "drifted:N", legend=None, scale=alt.Scale(domain=["no drift", "drift"], range=list(DRIFT_COLOURS))
    )
    shown = features.assign(p=features["adjusted p-value"].clip(lower=SMALLEST_P))
    smallest = min([*shown["p"].dropna(), *([alpha] if alpha else []), 1.0])
    p_scale = alt.Scale(type="log", domain=[10 ** (math.floor(math.log10(smallest)) - 1), 1.0])
    p_axis = alt.X("p:Q", title="log scale", scale=p_scale)
    p_layers: list[alt.Chart] = [
        alt.Chart(shown)
        .mark_point(filled=True, size=90)
        .encode(x=p_axis, y=y, color=colour, tooltip=["feature:N", alt.Tooltip("adjusted p-value:Q", format=".3g")])
    ]
    if alpha is not None and alpha > 0:
        p_layers.append(
            alt.Chart(pd.DataFrame({"p": [alpha]}))
            .mark_rule(color=DRIFT_COLOURS[1], strokeDash=[6, 4])
            .encode(x=p_axis)
        )
    charts = {"Adjusted p-value": alt.LayerChart(layer=p_layers, height=height, title="Adjusted p-value")}
    for column, title, unit in (("PSI", "PSI", None), ("mean shift (SD)", "Mean shift", "reference SDs")):
        x = alt.X(f"{column}:Q", title=unit)
        bars = alt.Chart(features).mark_bar().encode(x=x, y=y, color=colour, tooltip=["feature:N", f"{column}:Q"])
        zero = alt.Chart(pd.DataFrame({column: [0.0]})).mark_rule(color="#888888").encode(x=x)
        charts[title] = alt.LayerChart(layer=[bars, zero], height=height, title=title)
    return charts


def _version_colour(points: pd.DataFrame, shown: list[str] | None = None) -> alt.Color:
    """Versions coloured by name, so that a version keeps its colour from chart to chart; ``shown`` in the legend."""
    versions = sorted(points["version"].unique())
    palette = [VERSION_COLOURS[i % len(VERSION_COLOURS)] for i in range(len(versions))]
    legend = alt.Legend(values=shown) if shown is not None else alt.Legend()
    return alt.Color("version:N", title="version", scale=alt.Scale(domain=versions, range=palette), legend=legend)


def _time(field: str, title: str) -> alt.X:
    """A time axis in UTC."""
    axis = alt.Axis(format="%d %b %H:%M", labelAngle=0, labelOverlap=True)
    return alt.X(f"{field}:T", title=title, scale=alt.Scale(type="utc"), axis=axis)


def _period_marks(periods: pd.DataFrame, *, labels: bool = True) -> list[alt.Chart]:
    """A dotted rule where each period starts, and its label along the top of the chart."""
    if periods.empty:
        return []
    base = alt.Chart(periods).encode(x=_time("start", "time (UTC)"))
    marks = [base.mark_rule(color="#888888", strokeDash=[2, 3]).encode(tooltip=["label:N"])]
    if labels:
        marks.extend(
            base.transform_filter(alt.datum.row == row)
            .mark_text(align="left", baseline="bottom", dx=3, color="#555555", fontSize=11)
            .encode(y=alt.value(-4 - 14 * (PERIOD_LABEL_ROWS - 1 - row)), text="label:N")
            for row in range(PERIOD_LABEL_ROWS)
        )
    return marks


def _pair(bounds: object) -> tuple[float | None, float | None]:
    """A [low, high] interval as two numbers, or two Nones."""
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return None, None
    return as_float(bounds[0]), as_float(bounds[1])
