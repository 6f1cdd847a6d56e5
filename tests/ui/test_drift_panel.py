"""app/ui/panels/drift.py: the drift score against the threshold the API sent, status and per-feature tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.ui.driver import charts, metric_values, run_app, tab
from tests.ui.fake_api import DRIFT, FakeApi


def drift_with(**changes: Any) -> dict[str, Any]:
    """A copy of the canned /drift answer with some fields changed."""
    drift = copy.deepcopy(DRIFT)
    drift.update(changes)
    return drift


def test_drift_panel_shows_score_threshold_and_features(fake_api: FakeApi) -> None:
    at = run_app()

    drift = tab(at, "Drift")
    assert metric_values(drift) == {"Drift score": "0.120", "Alarm threshold": "0.30", "Samples in window": "87 / 100"}
    (bar,) = drift.progress
    assert (bar.value, bar.text) == (40, "Drift score 0.12 of the 0.30 threshold")  # 0.12 of 0.3
    assert drift.success[0].value == "No drift: live inputs look like the training data (status OK)."
    table = drift.dataframe[0].value
    assert list(table["feature"]) == ["Sepal Length", "Sepal Width", "Petal Length", "Petal Width"]
    assert {"p-value", "adjusted p-value", "PSI", "mean shift (SD)"} <= set(table.columns)
    assert list(table["drifted"]) == ["no"] * 4
    assert len(charts(drift)) == 1


@pytest.mark.parametrize(("threshold", "shown", "filled"), [(0.5, "0.50", 24), (0.2, "0.20", 60), (0.1, "0.10", 100)])
def test_the_threshold_is_the_one_the_api_sent(fake_api: FakeApi, threshold: float, shown: str, filled: int) -> None:
    fake_api.reply("GET", "/drift", 200, drift_with(threshold=threshold))

    at = run_app()

    drift = tab(at, "Drift")
    assert metric_values(drift)["Alarm threshold"] == shown
    assert drift.progress[0].value == filled
    assert drift.progress[0].text == f"Drift score 0.12 of the {shown} threshold"


@pytest.mark.parametrize("threshold", ["absent", None, "0.3", 0])
def test_without_a_usable_threshold_there_is_no_bar(fake_api: FakeApi, threshold: object) -> None:
    drift = drift_with(threshold=threshold)
    if threshold == "absent":
        del drift["threshold"]
    fake_api.reply("GET", "/drift", 200, drift)

    at = run_app()

    metrics = metric_values(tab(at, "Drift"))
    assert metrics["Drift score"] == "0.120"
    assert metrics["Alarm threshold"] == ("0.00" if threshold == 0 else "—")
    assert not tab(at, "Drift").progress
    assert not at.error


def test_drift_panel_warns_and_names_drifted_features(fake_api: FakeApi) -> None:
    drift = drift_with(drift_score=0.5, drift_detected=True, status="WARNING")
    drift["features"]["petal_length"].update({"drifted": True, "psi": 0.4, "mean_shift_sd": 1.8})
    fake_api.reply("GET", "/drift", 200, drift)

    at = run_app()

    (warning,) = tab(at, "Drift").warning
    assert warning.value == (
        "Drift detected (status WARNING): live inputs differ from the training data (Petal Length)."
    )
    assert tab(at, "Drift").progress[0].value == 100
    assert list(tab(at, "Drift").dataframe[0].value["drifted"]) == ["no", "no", "⚠️ yes", "no"]


def test_drift_panel_with_insufficient_data(fake_api: FakeApi) -> None:
    fake_api.reply(
        "GET", "/drift", 200, drift_with(status="INSUFFICIENT_DATA", samples=5, drift_score=None, features={})
    )

    at = run_app()

    drift = tab(at, "Drift")
    assert drift.info[0].value == "Not enough live data yet: 5 of 100 samples."
    assert metric_values(drift)["Drift score"] == "—"
    assert not drift.progress
    assert not drift.dataframe


def test_an_unknown_status_is_passed_on(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/drift", 200, drift_with(status="RECALIBRATING"))

    at = run_app()

    assert tab(at, "Drift").info[0].value == "Drift status: RECALIBRATING"
