"""The Predict tab: one slider per manifest feature, the prediction, feedback on it and this session's history."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from app.ui.client import ApiClient
from app.ui.format import as_float, class_label, clock_time, display_name, format_ms

HISTORY_LIMIT = 20
_CORRECT_MARKS = {None: "", True: "✅ yes", False: "❌ no"}


@dataclass
class HistoryRow:
    """One prediction of this session as the history table shows it; ``correct`` is filled in by feedback."""

    prediction_id: str | None
    time: str
    version: str
    species: str
    latency: str
    correct: bool | None = None


def render(client: ApiClient, uid: str) -> None:
    """Sliders, the Get Prediction button, the result, feedback and history."""
    manifest = client.models()
    if not manifest.ok:
        st.error(f"Cannot load the model manifest: {manifest.error}")
        return
    feature_names = [str(n) for n in manifest.data.get("feature_names") or []]
    class_names = [str(n) for n in manifest.data.get("class_names") or []]
    if not feature_names:
        st.error("The API's model manifest lists no features.")
        return
    st.subheader("Flower measurements")
    values = _feature_sliders(feature_names, manifest.data.get("features") or {})
    if st.button("Get Prediction", key="predict", type="primary", width="stretch"):
        _run_prediction(client, values, uid)
    _show_last_prediction(client, class_names)
    _show_history()


def slider_bounds(spec: dict[str, Any]) -> tuple[float, float, float]:
    """Slider minimum, maximum and default for one feature's manifest entry."""
    low_raw = as_float(spec.get("min"))
    high_raw = as_float(spec.get("max"))
    low = 0.0 if low_raw is None else math.floor(round(low_raw * 10, 6)) / 10
    high = 10.0 if high_raw is None else math.ceil(round(high_raw * 10, 6)) / 10
    if high <= low:
        # A feature that was constant in training still needs a movable slider.
        high = low + 1.0
    default = as_float(spec.get("default"))
    if default is None:
        default = as_float(spec.get("mean"))
    if default is None:
        default = (low + high) / 2
    return round(low, 1), round(high, 1), round(min(max(default, low), high), 1)


def _history() -> list[HistoryRow]:
    """This session's predictions, oldest first."""
    rows: list[HistoryRow] = st.session_state.setdefault("history", [])
    return rows


def _feedback_given() -> dict[str, dict[str, Any]]:
    """Feedback replies of this session, keyed by prediction id."""
    given: dict[str, dict[str, Any]] = st.session_state.setdefault("feedback", {})
    return given


def _feature_sliders(feature_names: list[str], specs: dict[str, Any]) -> list[float]:
    """Render one slider per feature and return the chosen values in manifest order."""
    values: list[float] = []
    for index, name in enumerate(feature_names):
        # Rows of two keep reading and tab order the same as the manifest order.
        if index % 2 == 0:
            columns = st.columns(2)
        low, high, default = slider_bounds(specs.get(name) or {})
        value = columns[index % 2].slider(
            display_name(name),
            min_value=low,
            max_value=high,
            value=default,
            step=0.1,
            format="%.1f",
            key=f"feature_{name}",
        )
        # Sliders hand back binary floats like 5.1000000000000005.
        values.append(round(float(value), 4))
    return values


def _run_prediction(client: ApiClient, values: list[float], uid: str) -> None:
    """Ask the API for a prediction and remember it in this session."""
    result = client.predict(values, uid)
    if not result.ok:
        st.session_state["last_prediction"] = None
        st.error(f"Prediction failed: {result.error}")
        return
    st.session_state["last_prediction"] = result.data
    _history().append(_history_row(result.data))


def _history_row(prediction: dict[str, Any]) -> HistoryRow:
    """One history entry for a prediction reply."""
    prediction_id = prediction.get("prediction_id")
    return HistoryRow(
        prediction_id=None if prediction_id is None else str(prediction_id),
        time=clock_time(prediction.get("timestamp")),
        version=str(prediction.get("model_version", "?")),
        species=display_name(prediction.get("class_name", prediction.get("prediction", "?"))),
        latency=format_ms(prediction.get("latency_ms")),
    )


def _show_last_prediction(client: ApiClient, class_names: list[str]) -> None:
    """Show the latest prediction of this session with its probabilities and feedback."""
    prediction: dict[str, Any] | None = st.session_state.get("last_prediction")
    if not prediction:
        st.caption("Adjust the measurements and press Get Prediction.")
        return
    species = prediction.get("class_name")
    if species is None:
        species = class_label(prediction.get("prediction"), class_names)
    species_col, version_col, latency_col = st.columns(3)
    species_col.metric("Species", display_name(species))
    version_col.metric("Model version", str(prediction.get("model_version", "?")))
    latency_col.metric("Latency", format_ms(prediction.get("latency_ms")))
    _show_probabilities(prediction.get("probabilities"), class_names)
    _render_feedback(client, prediction, class_names)


def _show_probabilities(probabilities: object, class_names: list[str]) -> None:
    """Bar chart of the class probabilities."""
    if not isinstance(probabilities, list) or not probabilities:
        return
    names = [class_label(i, class_names) if i < len(class_names) else f"Class {i}" for i in range(len(probabilities))]
    shares = [as_float(p) or 0.0 for p in probabilities]
    frame = pd.DataFrame({"probability": shares}, index=pd.Index(names, name="class"))
    # With horizontal=True the labels follow the data axes: y is the value axis.
    st.bar_chart(frame, horizontal=True, sort=False, x_label="", y_label="probability", height=160)


def _render_feedback(client: ApiClient, prediction: dict[str, Any], class_names: list[str]) -> None:
    """Let the user tell the API the true class of the latest prediction."""
    prediction_id = prediction.get("prediction_id")
    if not prediction_id or not class_names:
        return
    predicted = prediction.get("prediction")
    default = predicted if isinstance(predicted, int) and 0 <= predicted < len(class_names) else 0
    # Keys carry the prediction id so each new prediction starts from its own guess.
    truth = st.selectbox(
        "What was it really?",
        class_names,
        index=default,
        format_func=display_name,
        key=f"truth_{prediction_id}",
    )
    if st.button("Send feedback", key=f"send_feedback_{prediction_id}"):
        token = prediction.get("feedback_token")
        _send_feedback(client, str(prediction_id), class_names.index(truth), token if isinstance(token, str) else None)
    verdict = _feedback_given().get(str(prediction_id))
    if verdict:
        _show_verdict(verdict, class_names)


def _send_feedback(client: ApiClient, prediction_id: str, label: int, token: str | None) -> None:
    """Post the true label and record whether the prediction was right."""
    result = client.feedback(prediction_id, label, token)
    if not result.ok:
        st.error(f"Feedback not recorded: {result.error}")
        return
    if result.data.get("status") == "queued":
        st.info("Feedback received: it is counted as soon as the API has stored this prediction (within a second).")
        return
    _feedback_given()[prediction_id] = result.data
    for row in _history():
        if row.prediction_id == prediction_id:
            row.correct = bool(result.data.get("correct"))


def _show_verdict(verdict: dict[str, Any], class_names: list[str]) -> None:
    """Say whether the labelled prediction was correct."""
    version = verdict.get("model_version", "the model")
    predicted = class_label(verdict.get("prediction"), class_names)
    actual = class_label(verdict.get("label"), class_names)
    if verdict.get("correct"):
        st.success(f"Correct: {version} predicted {predicted}, and it was {actual}.")
    else:
        st.warning(f"Wrong: {version} predicted {predicted}, but it was {actual}.")


def _show_history() -> None:
    """Table of this session's latest predictions, newest first."""
    rows = _history()[-HISTORY_LIMIT:]
    if not rows:
        return
    st.subheader("Your predictions this session")
    table = pd.DataFrame(
        [
            {
                "time (UTC)": row.time,
                "version": row.version,
                "class": row.species,
                "latency": row.latency,
                "correct": _CORRECT_MARKS[row.correct],
            }
            for row in reversed(rows)
        ]
    )
    st.dataframe(table, hide_index=True)
