"""Streamlit UI for the Iris model API: predict, watch the A/B experiment, drift and admin.

Run with ``streamlit run app/streamlit_app.py --server.port 8501``; the API is
found through ``API_URL`` (default http://localhost:5000).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import streamlit as st

from app.ui.client import ApiClient, one_line

PAGE_TITLE = "Iris Classifier — MLOps A/B Demo"
TABS = ["Predict", "Experiment", "Drift", "Admin"]
HISTORY_LIMIT = 20
DEFAULT_DRIFT_THRESHOLD = 0.3
# Accept ids from the URL only if they look like ids, so a crafted link cannot
# push arbitrary text into the API's logs and metrics labels.
_UID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_FLAT_WEIGHT = re.compile(r"model_(\w+)_weight")


# ---------------------------------------------------------------- formatting


def display_name(name: Any) -> str:
    """Turn a class or feature name like "petal_length" into "Petal Length"."""
    return str(name).replace("_", " ").strip().title()


def as_float(value: Any) -> float | None:
    """Return value as a finite float, or None for null, text and NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def pct(value: Any) -> str:
    """Format a 0..1 share as a percentage, or a dash when unknown."""
    number = as_float(value)
    return "—" if number is None else f"{number:.1%}"


def format_p(value: Any) -> str:
    """Format a p-value the way a report would quote it."""
    number = as_float(value)
    if number is None:
        return "—"
    return "< 0.001" if number < 0.001 else f"{number:.3f}"


def format_ms(value: Any) -> str:
    """Format a latency in milliseconds, or a dash when unknown."""
    number = as_float(value)
    return "—" if number is None else f"{number:.1f} ms"


def format_interval(bounds: Any) -> str:
    """Format a [low, high] share interval, or a dash when unknown."""
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return "—"
    low, high = (as_float(b) for b in bounds)
    if low is None or high is None:
        return "—"
    return f"{low:.1%} – {high:.1%}"


def parse_utc(timestamp: Any) -> datetime | None:
    """Parse an ISO timestamp, converted to UTC when it carries a zone."""
    try:
        moment = datetime.fromisoformat(str(timestamp))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment


def format_when(timestamp: Any) -> str:
    """Format an ISO timestamp as "2026-11-24 03:00 UTC", or pass other text through."""
    moment = parse_utc(timestamp)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else str(timestamp or "?")


def class_label(value: Any, class_names: list[str]) -> str:
    """Name a class given as an index or a name, in Title Case."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(class_names):
        return display_name(class_names[value])
    return display_name(value)


@contextmanager
def panel(name: str) -> Iterator[None]:
    """Contain a panel's failures so one malformed reply cannot break the others."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - no traceback may reach the page
        reason = f"{type(exc).__name__}: {exc}"
        st.error(one_line(f"{name} is unavailable: unexpected reply from the API ({reason})"))


# ---------------------------------------------------------------- session


def user_id() -> str:
    """Return this browser's stable A/B user id, kept in session state and ?uid=."""
    uid = st.session_state.get("user_id")
    if not uid:
        candidate = str(st.query_params.get("uid", ""))
        # A reload starts a new session; the id in the URL carries over so the
        # sticky router keeps sending this browser to the same version.
        uid = candidate if _UID_PATTERN.match(candidate) else str(uuid.uuid4())
        st.session_state["user_id"] = uid
    if st.query_params.get("uid") != uid:
        st.query_params["uid"] = uid
    return uid


def history() -> list[dict[str, Any]]:
    """This session's predictions, oldest first."""
    return st.session_state.setdefault("history", [])


def feedback_given() -> dict[str, dict[str, Any]]:
    """Feedback replies of this session, keyed by prediction id."""
    return st.session_state.setdefault("feedback", {})


# ---------------------------------------------------------------- sidebar


def render_sidebar(client: ApiClient, uid: str) -> None:
    """Show which API the page talks to, its health and this browser's user id."""
    st.header("Connection")
    st.caption(f"API: `{client.base_url}`")
    health = client.health()
    if not health.ok:
        st.error(health.error)
    else:
        show_health(health.data)
    st.caption(f"Your user id: `{uid}` — it keeps your A/B assignment sticky.")
    # Any rerun re-reads the API; the button just gives the operator one.
    st.button("Refresh", key="refresh", width="stretch")


def show_health(data: dict[str, Any]) -> None:
    """Show the API's health status as a coloured one-liner."""
    status = str(data.get("status", "unknown"))
    loaded = "models loaded" if data.get("models_loaded") else "no models loaded"
    line = f"API {status} · {loaded}"
    if status == "healthy":
        st.success(line)
    elif status == "degraded":
        st.warning(line)
    else:
        st.error(line)


# ---------------------------------------------------------------- predict


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


def feature_sliders(feature_names: list[str], specs: dict[str, Any]) -> list[float]:
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


def render_predict(client: ApiClient, uid: str) -> None:
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
    values = feature_sliders(feature_names, manifest.data.get("features") or {})
    if st.button("Get Prediction", key="predict", type="primary", width="stretch"):
        run_prediction(client, values, uid)
    show_last_prediction(client, class_names)
    show_history()


def run_prediction(client: ApiClient, values: list[float], uid: str) -> None:
    """Ask the API for a prediction and remember it in this session."""
    result = client.predict(values, uid)
    if not result.ok:
        st.session_state["last_prediction"] = None
        st.error(f"Prediction failed: {result.error}")
        return
    st.session_state["last_prediction"] = result.data
    history().append(history_row(result.data))


def history_row(prediction: dict[str, Any]) -> dict[str, Any]:
    """One history entry for a prediction reply."""
    return {
        "prediction_id": prediction.get("prediction_id"),
        "time": clock_time(prediction.get("timestamp")),
        "version": str(prediction.get("model_version", "?")),
        "class": display_name(prediction.get("class_name", prediction.get("prediction", "?"))),
        "latency": format_ms(prediction.get("latency_ms")),
        "correct": None,
    }


def clock_time(timestamp: Any) -> str:
    """HH:MM:SS (UTC) of an ISO timestamp, falling back to now."""
    return (parse_utc(timestamp) or datetime.now(timezone.utc)).strftime("%H:%M:%S")


def show_last_prediction(client: ApiClient, class_names: list[str]) -> None:
    """Show the latest prediction of this session with its probabilities and feedback."""
    prediction = st.session_state.get("last_prediction")
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
    show_probabilities(prediction.get("probabilities"), class_names)
    render_feedback(client, prediction, class_names)


def show_probabilities(probabilities: Any, class_names: list[str]) -> None:
    """Bar chart of the class probabilities."""
    if not isinstance(probabilities, list) or not probabilities:
        return
    names = [
        class_label(i, class_names) if i < len(class_names) else f"Class {i}" for i in range(len(probabilities))
    ]
    shares = [as_float(p) or 0.0 for p in probabilities]
    frame = pd.DataFrame({"probability": shares}, index=pd.Index(names, name="class"))
    # With horizontal=True the labels follow the data axes: y is the value axis.
    st.bar_chart(frame, horizontal=True, sort=False, x_label="", y_label="probability", height=160)


def render_feedback(client: ApiClient, prediction: dict[str, Any], class_names: list[str]) -> None:
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
        send_feedback(client, str(prediction_id), class_names.index(truth))
    verdict = feedback_given().get(str(prediction_id))
    if verdict:
        show_verdict(verdict, class_names)


def send_feedback(client: ApiClient, prediction_id: str, label: int) -> None:
    """Post the true label and record whether the prediction was right."""
    result = client.feedback(prediction_id, label)
    if not result.ok:
        st.error(f"Feedback not recorded: {result.error}")
        return
    feedback_given()[prediction_id] = result.data
    for row in history():
        if row["prediction_id"] == prediction_id:
            row["correct"] = bool(result.data.get("correct"))


def show_verdict(verdict: dict[str, Any], class_names: list[str]) -> None:
    """Say whether the labelled prediction was correct."""
    version = verdict.get("model_version", "the model")
    predicted = class_label(verdict.get("prediction"), class_names)
    actual = class_label(verdict.get("label"), class_names)
    if verdict.get("correct"):
        st.success(f"Correct: {version} predicted {predicted}, and it was {actual}.")
    else:
        st.warning(f"Wrong: {version} predicted {predicted}, but it was {actual}.")


def show_history() -> None:
    """Table of this session's latest predictions, newest first."""
    rows = history()[-HISTORY_LIMIT:]
    if not rows:
        return
    st.subheader("Your predictions this session")
    marks = {None: "", True: "✅ yes", False: "❌ no"}
    table = pd.DataFrame(
        [
            {
                "time (UTC)": row["time"],
                "version": row["version"],
                "class": row["class"],
                "latency": row["latency"],
                "correct": marks[row["correct"]],
            }
            for row in reversed(rows)
        ]
    )
    st.dataframe(table, hide_index=True)


# ---------------------------------------------------------------- experiment


def render_experiment(client: ApiClient) -> None:
    """The A/B report: verdict, traffic split, accuracy with intervals and significance."""
    result = client.ab_report()
    if not result.ok:
        st.error(f"Cannot load the A/B report: {result.error}")
        return
    report = result.data
    experiment = report.get("experiment") or {}
    st.caption(f"Experiment #{experiment.get('id', '?')} · started {format_when(experiment.get('started_at'))}")
    recommendation = report.get("recommendation")
    if recommendation:
        st.info(f"**Recommendation:** {recommendation}")
    show_srm(report.get("srm") or {})
    variants = report.get("variants") or {}
    if not variants:
        st.info("No traffic recorded in this experiment yet.")
        return
    show_traffic(variants)
    show_accuracy(variants)
    show_comparisons(report.get("comparison"), report.get("comparisons") or [])
    show_variant_table(variants)


def show_srm(srm: dict[str, Any]) -> None:
    """Warn when the observed traffic split does not match the configured weights."""
    if not srm.get("mismatch"):
        return
    st.warning(
        "Sample ratio mismatch: the observed traffic split differs from the configured "
        f"weights (p = {format_p(srm.get('p_value'))} < {srm.get('threshold', 0.001)}). "
        "Check the router before trusting this comparison."
    )


def show_traffic(variants: dict[str, Any]) -> None:
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


def show_accuracy(variants: dict[str, Any]) -> None:
    """Accuracy per version on labelled predictions, with its 95% interval."""
    st.subheader("Accuracy on labelled predictions")
    for column, (name, variant) in zip(st.columns(len(variants)), variants.items()):
        column.metric(f"{name} accuracy", pct(variant.get("accuracy")))
        labeled = variant.get("labeled") or 0
        if labeled:
            column.caption(
                f"95% CI {format_interval(variant.get('accuracy_ci95'))} · "
                f"{variant.get('correct', 0)}/{labeled} correct"
            )
        else:
            column.caption("No labelled predictions yet.")


def p_clause(value: Any) -> str:
    """Quote a p-value as "p = 0.012" or "p < 0.001"."""
    text = format_p(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def decision_p(comparison: dict[str, Any]) -> Any:
    """The p-value the significance call was made on."""
    # With several challengers the API corrects for multiple comparisons;
    # quoting the raw p-value next to its verdict would contradict it.
    adjusted = comparison.get("p_value_adjusted")
    return comparison.get("p_value") if adjusted is None else adjusted


def comparison_sentence(comparison: dict[str, Any]) -> str:
    """One sentence on whether the challenger differs from the baseline."""
    challenger = comparison.get("challenger", "challenger")
    baseline = comparison.get("baseline", "baseline")
    diff = as_float(comparison.get("accuracy_diff"))
    diff_text = "unknown" if diff is None else f"{diff * 100:+.1f} points"
    head = (
        f"{challenger} vs {baseline}: accuracy difference {diff_text}, "
        f"{p_clause(decision_p(comparison))} ({comparison.get('method') or 'test'})"
    )
    if comparison.get("significant"):
        return f"{head}: significant, {comparison.get('winner') or 'neither'} is better."
    more = comparison.get("additional_samples_needed")
    tail = f"about {more} more labelled predictions per version needed" if more else "more data needed"
    return f"{head}: not significant yet, {tail}."


def show_comparisons(comparison: dict[str, Any] | None, comparisons: list[Any]) -> None:
    """The p-value of the baseline-versus-challenger test(s), in words."""
    st.subheader("Is the difference real?")
    # The API sends a comparison with null numbers until both versions have labels.
    if not comparison or as_float(decision_p(comparison)) is None:
        st.info("Not enough labelled predictions to compare the versions yet.")
        return
    diff = as_float(comparison.get("accuracy_diff"))
    diff_col, p_col, sig_col = st.columns(3)
    diff_col.metric("Accuracy difference", "—" if diff is None else f"{diff * 100:+.1f} pp")
    p_col.metric("p-value", format_p(decision_p(comparison)))
    sig_col.metric("Significant", "yes" if comparison.get("significant") else "no")
    extra = [
        c for c in comparisons if isinstance(c, dict) and c != comparison and as_float(decision_p(c)) is not None
    ]
    for other in [comparison, *extra]:
        st.write(comparison_sentence(other))


def show_variant_table(variants: dict[str, Any]) -> None:
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


# ---------------------------------------------------------------- drift


def render_drift(client: ApiClient) -> None:
    """Drift score against its threshold, the status and per-feature test results."""
    result = client.drift()
    if not result.ok:
        st.error(f"Cannot load the drift status: {result.error}")
        return
    drift = result.data
    score = as_float(drift.get("drift_score"))
    threshold = as_float(drift.get("threshold")) or DEFAULT_DRIFT_THRESHOLD
    show_drift_status(drift)
    score_col, threshold_col, samples_col = st.columns(3)
    score_col.metric("Drift score", "—" if score is None else f"{score:.3f}")
    threshold_col.metric("Alarm threshold", f"{threshold:.2f}")
    samples_col.metric("Samples in window", f"{drift.get('samples', 0)} / {drift.get('window_size', '?')}")
    if score is not None:
        # The bar fills up as the score approaches the alarm threshold.
        st.progress(
            min(max(score / threshold, 0.0), 1.0),
            text=f"Drift score {score:.2f} of the {threshold:.2f} threshold",
        )
    show_drift_features(drift.get("features") or {})


def show_drift_status(drift: dict[str, Any]) -> None:
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


def show_drift_features(features: dict[str, Any]) -> None:
    """Per-feature p-value, PSI and mean shift as a chart and a table."""
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
    st.bar_chart(
        table.set_index("feature")[["PSI", "mean shift (SD)"]].fillna(0.0),
        stack=False,
        sort=False,
    )
    st.dataframe(table.round(4), hide_index=True)


# ---------------------------------------------------------------- admin


def current_weights(config: dict[str, Any]) -> dict[str, int]:
    """Routing weights per version from a /config reply."""
    weights = config.get("weights")
    if isinstance(weights, dict) and weights:
        return {str(k): int(v) for k, v in weights.items()}
    # Fall back to the flat model_<version>_weight keys the reply also carries.
    flat = ((_FLAT_WEIGHT.fullmatch(k), v) for k, v in config.items())
    return {match.group(1): int(v) for match, v in flat if match}


def render_admin(client: ApiClient) -> None:
    """Current routing weights and, with the admin token, a form to change them."""
    result = client.config()
    weights_box = st.container()
    if not result.ok:
        weights_box.error(f"Cannot load the routing config: {result.error}")
        return
    weights = current_weights(result.data)
    token = st.text_input("Admin token", type="password", key="admin_token")
    shown = result.data
    if not token:
        st.info("Enter the admin token to change the weights.")
    elif weights:
        shown = weights_form(client, weights, token) or result.data
    # Filled last so a successful update shows the new weights in this same run.
    with weights_box:
        show_weights(shown)


def show_weights(config: dict[str, Any]) -> None:
    """Current weights per version with their share of traffic."""
    st.subheader("Routing weights")
    weights = current_weights(config)
    total = sum(weights.values())
    for column, (name, weight) in zip(st.columns(max(len(weights), 1)), weights.items()):
        share = f"{weight / total:.0%} of traffic" if total else "no traffic"
        column.metric(name, str(weight), delta=share, delta_color="off", delta_arrow="off")
    experiment = config.get("experiment") or {}
    st.caption(
        f"Experiment #{experiment.get('id', '?')} · started {format_when(experiment.get('started_at'))} "
        f"· weights from {experiment.get('source', '?')}"
    )


def weights_form(client: ApiClient, weights: dict[str, int], token: str) -> dict[str, Any] | None:
    """A number input per version; returns the new config after a successful update."""
    with st.form("weights_form"):
        columns = st.columns(len(weights))
        new_weights = {
            name: int(column.number_input(f"{name} weight", min_value=0, value=weight, step=1))
            for column, (name, weight) in zip(columns, weights.items())
        }
        submitted = st.form_submit_button("Update weights", type="primary")
    if not submitted:
        return None
    result = client.update_weights(new_weights, token)
    if not result.ok:
        st.error(f"Weights not changed: {result.error}")
        return None
    st.success("Weights updated: " + ", ".join(f"{k} {v}" for k, v in current_weights(result.data).items()) + ".")
    return result.data


# ---------------------------------------------------------------- page


def main() -> None:
    """Render the whole page; each panel fails on its own."""
    st.set_page_config(page_title=PAGE_TITLE, page_icon="🌸", layout="wide")
    st.title(f"🌸 {PAGE_TITLE}")
    client = ApiClient.from_env()
    uid = user_id()
    with st.sidebar, panel("Connection"):
        render_sidebar(client, uid)
    predict_tab, experiment_tab, drift_tab, admin_tab = st.tabs(TABS)
    with predict_tab, panel("Predict"):
        render_predict(client, uid)
    with experiment_tab, panel("Experiment"):
        render_experiment(client)
    with drift_tab, panel("Drift"):
        render_drift(client)
    with admin_tab, panel("Admin"):
        render_admin(client)


if __name__ == "__main__":
    main()
