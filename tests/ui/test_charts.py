"""app/ui/charts.py: the frames built from API replies, and the charts' scales, colours and rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.ui import charts
from tests.ui.fake_api import DRIFT, DRIFT_HISTORY, TIMELINE


def point(at: str, accuracy: float | None, ci: list[float] | None = None, **extra: Any) -> dict[str, Any]:
    return (
        {"at": at, "experiment_id": 1, "requests": 10, "share": 0.5, "labeled": 10, "accuracy": accuracy}
        | {
            "ci95": ci,
            "cs": ci,
        }
        | extra
    )


def test_the_timeline_frame_has_every_served_and_shadow_point() -> None:
    frame = charts.timeline_frame(TIMELINE)

    served = frame[frame["kind"] == charts.SERVED]
    shadow = frame[frame["kind"] == charts.SHADOW]
    assert len(served) == sum(len(points) for points in TIMELINE["versions"].values())
    assert set(shadow["version"]) == {"v3"} and shadow["share"].isna().all()
    assert served["at"].iloc[0] == datetime(2026, 11, 21, 13, tzinfo=UTC)


@pytest.mark.parametrize(
    "timeline",
    [
        {},
        {"versions": None, "shadow": 5},
        {"versions": {"v1": "points"}},
        {"versions": {"v1": [None, 3, {"at": None}, {"at": "noon"}]}},
    ],
)
def test_a_malformed_timeline_gives_an_empty_frame(timeline: dict[str, Any]) -> None:
    frame = charts.timeline_frame(timeline)

    assert frame.empty and list(frame.columns)[:3] == ["version", "kind", "at"]


def test_intervals_that_are_not_pairs_of_numbers_are_left_blank() -> None:
    timeline = {"versions": {"v1": [point("2026-11-24T03:00:00+00:00", 0.9, ci=[0.8]), point("x", 0.9)]}}

    (row,) = charts.timeline_frame(timeline).to_dict("records")

    assert row["accuracy"] == 0.9 and row["ci_lo"] is None and row["cs_hi"] is None


def test_periods_start_no_earlier_than_since_and_take_turns_for_their_label_lines() -> None:
    timeline = {
        "since": "2026-11-22T00:00:00+00:00",
        "periods": [
            {"id": i, "started_at": f"2026-11-2{i}T00:00:00+00:00", "weights": {"v1": i}, "source": "api", "shadow": []}
            for i in range(1, 6)
        ]
        + [{"id": 9}, None],
    }

    frame = charts.periods_frame(timeline)

    assert list(frame["start"].dt.day) == [22, 22, 23, 24, 25]
    assert list(frame["label"]) == [f"#{i} api: v1 {i}" for i in range(1, 6)]
    assert list(frame["row"]) == [0, 1, 2, 0, 1]


def test_the_accuracy_axis_starts_below_the_lowest_line_or_interval() -> None:
    points = charts.timeline_frame(
        {"versions": {"v1": [point("2026-11-24T03:00:00+00:00", 0.93, ci=[0.71, 0.97])]}, "shadow": {}}
    )

    chart = charts.accuracy_chart(points, charts.periods_frame({})).to_dict()

    assert chart["layer"][0]["encoding"]["y"]["scale"] == {"clamp": True, "domain": [0.6, 1.0]}
    assert len(chart["layer"]) == 3  # two bands and the lines; no periods, no rules


def test_a_version_keeps_its_colour_in_both_charts() -> None:
    points = charts.timeline_frame(TIMELINE)
    periods = charts.periods_frame(TIMELINE)

    accuracy = charts.accuracy_chart(points, periods).to_dict()["layer"][2]["encoding"]["color"]["scale"]
    share = charts.share_chart(points, periods).to_dict()["layer"][0]["encoding"]["color"]["scale"]

    assert accuracy == share == {"domain": ["v1", "v2", "v3"], "range": charts.VERSION_COLOURS[:3]}


def test_the_drift_history_frame_keeps_the_windows_with_a_time_and_a_score() -> None:
    history = {"windows": [*DRIFT_HISTORY["windows"][:2], {"end": "?", "drift_score": 1}, {"end": "2026-11-24"}, 7]}

    frame = charts.drift_history_frame(history)

    assert list(frame["drift_score"]) == [w["drift_score"] for w in DRIFT_HISTORY["windows"][:2]]
    assert list(frame["drift"]) == ["no drift", "no drift"]


def test_features_are_three_charts_whose_height_grows_with_their_number() -> None:
    frame = charts.feature_frame({**DRIFT["features"], "odd": "not a feature"})

    plotted = charts.feature_charts(frame, alpha=0.05)

    assert list(frame["feature"]) == ["Sepal Length", "Sepal Width", "Petal Length", "Petal Width"]
    assert list(plotted) == ["Adjusted p-value", "PSI", "Mean shift"]
    assert {c.to_dict()["height"] for c in plotted.values()} == {70 + 40 * 4}
