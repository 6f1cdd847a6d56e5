"""app/ui/panels/drift.py: the drift score against the threshold the API sent, status and per-feature tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.ui.driver import chart_data, chart_spec, charts, metric_values, run_app, tab
from tests.ui.fake_api import DRIFT, DRIFT_HISTORY, FakeApi


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
    assert len(charts(drift)) == 4  # the history, then p-values, PSI and mean shift


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


def history_with(**changes: Any) -> dict[str, Any]:
    """A copy of the canned /drift/history answer with some fields changed."""
    history = copy.deepcopy(DRIFT_HISTORY)
    history.update(changes)
    return history


def test_the_history_plots_each_windows_score_against_the_servers_threshold(fake_api: FakeApi) -> None:
    at = run_app()

    drift = tab(at, "Drift")
    history = charts(drift)[0]
    assert [layer["mark"]["type"] for layer in chart_spec(history)["layer"]] == ["line", "point", "rule", "text"]
    rows = chart_data(history)
    scores = [r["drift_score"] for r in rows if "drift_score" in r]
    assert scores == [w["drift_score"] for w in DRIFT_HISTORY["windows"]]
    flagged = [r["drift"] for r in rows if "drift_score" in r]
    assert flagged.count("drift") == sum(w["drift_detected"] for w in DRIFT_HISTORY["windows"]) == 6
    assert {"threshold": 0.3} in rows  # the rule sits at the threshold the server sent
    assert chart_spec(history)["layer"][3]["encoding"]["text"] == {"value": "alarm threshold 0.30"}
    assert [r.path for r in fake_api.requests if r.path.startswith("/drift/history")] == ["/drift/history?points=20"]


def test_a_history_without_a_threshold_draws_no_rule(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/drift/history?points=20", 200, history_with(threshold=None))

    at = run_app()

    layers = chart_spec(charts(tab(at, "Drift"))[0])["layer"]
    assert [layer["mark"]["type"] for layer in layers] == ["line", "point"]


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        (200, {"windows": [], "threshold": 0.3}, "info"),
        (200, {"windows": [{"end": "?", "drift_score": 0.5}, None]}, "info"),
        (503, {"error": "state store unavailable, try again shortly"}, "error"),
    ],
)
def test_no_history_leaves_the_rest_of_the_tab(fake_api: FakeApi, status: int, body: Any, shown: str) -> None:
    fake_api.reply("GET", "/drift/history?points=20", status, body)

    at = run_app()

    drift = tab(at, "Drift")
    if shown == "info":
        assert drift.info[0].value == "No earlier windows with enough predictions yet."
    else:
        assert drift.error[0].value == (
            "Cannot load the drift history: state store unavailable, try again shortly (HTTP 503)"
        )
    assert len(charts(drift)) == 3 and metric_values(drift)["Drift score"] == "0.120"


def test_p_values_psi_and_mean_shift_each_have_an_axis_of_their_own(fake_api: FakeApi) -> None:
    drift = drift_with()
    drift["features"]["petal_length"].update({"p_value_adjusted": 0.0, "psi": 0.4, "mean_shift_sd": -1.8})
    fake_api.reply("GET", "/drift", 200, drift)

    at = run_app()

    p_values, psi, shift = charts(tab(at, "Drift"))[1:]
    titles = [chart_spec(c)["title"] for c in (p_values, psi, shift)]
    assert titles == ["Adjusted p-value", "PSI", "Mean shift"]
    fields = [chart_spec(c)["layer"][0]["encoding"]["x"]["field"] for c in (p_values, psi, shift)]
    assert fields == ["p", "PSI", "mean shift (SD)"]
    p_axis = chart_spec(p_values)["layer"][0]["encoding"]["x"]["scale"]
    assert p_axis["type"] == "log" and p_axis["domain"] == [1e-17, 1.0]  # a p of 0 is drawn at 1e-16
    assert {"p": 0.05} in chart_data(p_values)  # alpha, as the server sent it, is the rule
    petal = [r for r in chart_data(shift) if r.get("feature") == "Petal Length"]
    assert petal[0]["mean shift (SD)"] == -1.8
    assert "drift below the dashed line at 0.05" in " ".join(c.value for c in tab(at, "Drift").caption)


def test_without_alpha_there_is_no_p_value_rule(fake_api: FakeApi) -> None:
    drift = drift_with()
    del drift["alpha"]
    fake_api.reply("GET", "/drift", 200, drift)

    at = run_app()

    assert len(chart_spec(charts(tab(at, "Drift"))[1])["layer"]) == 1
    assert "dashed line" not in " ".join(c.value for c in tab(at, "Drift").caption)
