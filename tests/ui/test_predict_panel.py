"""app/ui/panels/predict.py: sliders from the manifest, the prediction, feedback and the session's history."""

from __future__ import annotations

from typing import Any

import pytest

from app.ui.panels.predict import slider_bounds
from tests.ui.driver import button, charts, metric_values, predict, rerun, run_app, sliders, tab
from tests.ui.fake_api import FakeApi


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"min": 4.3, "max": 7.9, "mean": 5.84, "default": 5.0}, (4.3, 7.9, 5.0)),
        ({"min": 4.31, "max": 7.89, "mean": 5.84}, (4.3, 7.9, 5.8)),
        ({"min": 3, "max": 3}, (3.0, 4.0, 3.5)),
        ({"min": 1.0, "max": 2.0, "default": 9.0}, (1.0, 2.0, 2.0)),
        ({}, (0.0, 10.0, 5.0)),
        ({"min": "low", "max": None, "default": "x", "mean": 2.0}, (0.0, 10.0, 2.0)),
    ],
)
def test_slider_bounds(spec: dict[str, Any], expected: tuple[float, float, float]) -> None:
    assert slider_bounds(spec) == expected


def test_sliders_come_from_the_manifest(fake_api: FakeApi) -> None:
    at = run_app()

    by_label = sliders(at)
    assert list(by_label) == ["Sepal Length", "Sepal Width", "Petal Length", "Petal Width"]
    sepal = by_label["Sepal Length"]
    assert (sepal.min, sepal.max, sepal.value, sepal.step) == (4.3, 7.9, 5.0, 0.1)
    assert by_label["Petal Width"].value == 0.2


def test_a_custom_model_gets_its_own_sliders(fake_api: FakeApi) -> None:
    fake_api.reply(
        "GET",
        "/models",
        200,
        {
            "feature_names": ["weight_kg", "ear_length"],
            "class_names": ["cat", "dog"],
            "features": {
                "weight_kg": {"min": 2, "max": 40, "mean": 12, "default": 4},
                "ear_length": {"min": 3, "max": 3},
            },
            "versions": {},
        },
    )

    at = run_app()

    by_label = sliders(at)
    assert list(by_label) == ["Weight Kg", "Ear Length"]
    assert (by_label["Weight Kg"].min, by_label["Weight Kg"].max, by_label["Weight Kg"].value) == (2.0, 40.0, 4.0)
    # A constant feature still gets a usable range.
    assert by_label["Ear Length"].max > by_label["Ear Length"].min


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (503, {"error": "no model manifest is loaded"}, "Cannot load the model manifest: no model manifest is loaded"),
        (200, {"feature_names": [], "class_names": ["a"]}, "The API's model manifest lists no features."),
    ],
)
def test_no_usable_manifest_is_said_in_words(fake_api: FakeApi, status: int, body: object, expected: str) -> None:
    fake_api.reply("GET", "/models", status, body)

    at = run_app()

    (error,) = tab(at, "Predict").error
    assert error.value.startswith(expected)
    assert not at.slider


def test_get_prediction_shows_species_version_latency_and_chart(fake_api: FakeApi) -> None:
    at = run_app()
    assert "press Get Prediction" in tab(at, "Predict").caption[0].value

    at = predict(at)

    predict_tab = tab(at, "Predict")
    assert metric_values(predict_tab) == {"Species": "Setosa", "Model version": "v1", "Latency": "0.4 ms"}
    assert len(charts(predict_tab)) == 1
    (sent,) = fake_api.sent("POST", "/predict")
    assert sent.body["features"] == [5.0, 3.4, 1.5, 0.2]


def test_moving_sliders_changes_the_prediction(fake_api: FakeApi) -> None:
    at = run_app()
    by_label = sliders(at)
    by_label["Petal Length"].set_value(6.0)
    by_label["Petal Width"].set_value(2.2)

    at = predict(at)

    assert metric_values(tab(at, "Predict"))["Species"] == "Virginica"
    assert fake_api.sent("POST", "/predict")[-1].body["features"] == [5.0, 3.4, 6.0, 2.2]


def test_prediction_error_is_shown_in_words(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/predict", 503, {"error": "no model is loaded"})

    at = predict(run_app())

    (error,) = tab(at, "Predict").error
    assert error.value == "Prediction failed: no model is loaded (HTTP 503)"
    assert "Species" not in metric_values(at)


def test_history_lists_this_sessions_predictions_newest_first(fake_api: FakeApi) -> None:
    at = predict(run_app())
    sliders(at)["Petal Length"].set_value(6.0)
    at = predict(at)

    table = tab(at, "Predict").dataframe[0].value
    assert list(table.columns) == ["time (UTC)", "version", "class", "latency", "correct"]
    assert list(table["class"]) == ["Virginica", "Setosa"]
    assert list(table["version"]) == ["v1", "v1"]
    assert list(table["time (UTC)"]) == ["03:00:00", "03:00:00"]
    assert list(table["correct"]) == ["", ""]


def test_feedback_posts_the_label_and_says_if_it_was_right(fake_api: FakeApi) -> None:
    at = predict(run_app())
    prediction_id = at.session_state["last_prediction"]["prediction_id"]
    (truth,) = at.selectbox
    assert truth.label == "What was it really?"
    assert truth.value == "setosa"  # the prediction is the first guess

    truth.select("virginica")
    button(at, "Send feedback").click()
    at = rerun(at)

    (sent,) = fake_api.sent("POST", "/feedback")
    assert sent.body == {"prediction_id": prediction_id, "label": 2, "feedback_token": f"token-{prediction_id}"}
    (warning,) = tab(at, "Predict").warning
    assert warning.value == "Wrong: v1 predicted Setosa, but it was Virginica."
    assert list(tab(at, "Predict").dataframe[0].value["correct"]) == ["❌ no"]


def test_correct_feedback_is_confirmed(fake_api: FakeApi) -> None:
    at = predict(run_app())
    button(at, "Send feedback").click()
    at = rerun(at)

    assert tab(at, "Predict").success[0].value == "Correct: v1 predicted Setosa, and it was Setosa."
    assert list(tab(at, "Predict").dataframe[0].value["correct"]) == ["✅ yes"]


def test_a_queued_label_is_acknowledged_without_a_verdict(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/feedback", 202, {"prediction_id": "p", "label": 0, "status": "queued"})
    at = predict(run_app())
    button(at, "Send feedback").click()
    at = rerun(at)

    assert "Feedback received" in tab(at, "Predict").info[0].value
    assert not tab(at, "Predict").success and not tab(at, "Predict").warning
    assert list(tab(at, "Predict").dataframe[0].value["correct"]) == [""]


def test_feedback_error_is_shown_in_words(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/feedback", 404, {"error": "unknown prediction_id"})
    at = predict(run_app())
    button(at, "Send feedback").click()
    at = rerun(at)

    (error,) = tab(at, "Predict").error
    assert error.value == "Feedback not recorded: unknown prediction_id (HTTP 404)"
    assert list(tab(at, "Predict").dataframe[0].value["correct"]) == [""]
