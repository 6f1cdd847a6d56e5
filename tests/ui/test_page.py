"""AppTest tests of the Streamlit UI, with the model API faked at the HTTP boundary."""

from __future__ import annotations

import copy
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.settings import REPO_DIR
from streamlit.testing.v1 import AppTest

from app.ui.client import ApiClient

APP_PATH = REPO_DIR / "app" / "streamlit_app.py"
RUN_TIMEOUT = 15.0

MANIFEST: dict[str, Any] = {
    "feature_names": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "class_names": ["setosa", "versicolor", "virginica"],
    "features": {
        "sepal_length": {"min": 4.3, "max": 7.9, "mean": 5.84, "std": 0.83, "default": 5.0},
        "sepal_width": {"min": 2.0, "max": 4.4, "mean": 3.06, "std": 0.44, "default": 3.4},
        "petal_length": {"min": 1.0, "max": 6.9, "mean": 3.76, "std": 1.77, "default": 1.5},
        "petal_width": {"min": 0.1, "max": 2.5, "mean": 1.2, "std": 0.76, "default": 0.2},
    },
    "versions": {
        "v1": {"file": "model_v1.pkl", "sha256": "ab" * 32, "params": {"n_estimators": 50, "max_depth": 5}, "accuracy": 0.9667},
        "v2": {"file": "model_v2.pkl", "sha256": "cd" * 32, "params": {"n_estimators": 100, "max_depth": 10}, "accuracy": 0.9333},
    },
}

CONFIG: dict[str, Any] = {
    "model_v1_weight": 50,
    "model_v2_weight": 50,
    "total_weight": 100,
    "weights": {"v1": 50, "v2": 50},
    "experiment": {"id": 1, "started_at": "2026-11-24T03:00:00+00:00", "source": "env"},
}

AB_REPORT: dict[str, Any] = {
    "experiment": {"id": 1, "started_at": "2026-11-24T03:00:00+00:00", "weights": {"v1": 50, "v2": 50}},
    "baseline": "v1",
    "variants": {
        "v1": {
            "weight": 50, "expected_share": 0.5, "requests": 120, "observed_share": 0.52, "labeled": 40,
            "correct": 40, "accuracy": 1.0, "accuracy_ci95": [0.912, 1.0], "latency_p50_ms": 0.3, "latency_p95_ms": 0.6,
        },
        "v2": {
            "weight": 50, "expected_share": 0.5, "requests": 110, "observed_share": 0.48, "labeled": 80,
            "correct": 57, "accuracy": 0.7125, "accuracy_ci95": [0.605, 0.8], "latency_p50_ms": 0.4, "latency_p95_ms": 0.9,
        },
    },
    "comparison": {
        "baseline": "v1", "challenger": "v2", "accuracy_diff": -0.2875, "p_value": 0.0004, "p_value_adjusted": 0.0004,
        "significant": True, "method": "z-test", "samples_needed_per_variant": 30, "additional_samples_needed": 0,
        "winner": "v1",
    },
    "comparisons": [],
    "srm": {
        "statistic": 0.4, "p_value": 0.5, "mismatch": False, "threshold": 0.001,
        "observed_share": {"v1": 0.52, "v2": 0.48}, "expected_share": {"v1": 0.5, "v2": 0.5},
    },
    "recommendation": "v1 is more accurate (100.0% vs 71.3%, p < 0.001): shift traffic to v1",
}

DRIFT: dict[str, Any] = {
    "drift_score": 0.12,
    "threshold": 0.3,
    "drift_detected": False,
    "status": "OK",
    "window_size": 100,
    "samples": 87,
    "features": {
        name: {
            "test": "ks", "statistic": 0.1, "p_value": 0.5, "p_value_adjusted": 1.0,
            "psi": 0.02, "mean_shift_sd": 0.1, "drifted": False,
        }
        for name in MANIFEST["feature_names"]
    },
    "timestamp": "2026-11-24T03:00:00+00:00",
}

HEALTH: dict[str, Any] = {"status": "healthy", "models_loaded": True}


def _predict(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    # Enough of a model to tell setosa-like from virginica-like measurements.
    features = body.get("features") or [0, 0, 0, 0]
    index = 2 if features[2] > 4.5 else 0
    probabilities = [0.0, 0.0, 0.0]
    probabilities[index] = 1.0
    return 200, {
        "prediction": index,
        "class_name": MANIFEST["class_names"][index],
        "probabilities": probabilities,
        "model_version": "v1",
        "prediction_id": str(uuid.uuid4()),
        "timestamp": "2026-11-24T03:00:00.123456+00:00",
        "latency_ms": 0.4,
    }


def _feedback(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, {
        "prediction_id": body["prediction_id"],
        "model_version": "v1",
        "prediction": 0,
        "label": body["label"],
        "correct": body["label"] in (0, "setosa"),
    }


def _put_config(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    weights = body["weights"]
    reply = copy.deepcopy(CONFIG)
    reply.update({f"model_{k}_weight": v for k, v in weights.items()})
    reply["weights"] = weights
    reply["total_weight"] = sum(weights.values())
    reply["experiment"] = {"id": 2, "started_at": "2026-11-24T04:00:00+00:00", "source": "api"}
    return 200, reply


Reply = tuple[int, Any] | Callable[[dict[str, Any]], tuple[int, Any]]


@dataclass
class Recorded:
    """One request the fake API received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeApi:
    """Canned-JSON stand-in for the model API that records what it was sent."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Reply] = {
            ("GET", "/health"): (200, HEALTH),
            ("GET", "/models"): (200, MANIFEST),
            ("POST", "/predict"): _predict,
            ("POST", "/feedback"): _feedback,
            ("GET", "/config"): (200, CONFIG),
            ("PUT", "/config"): _put_config,
            ("GET", "/drift"): (200, DRIFT),
            ("GET", "/ab/report"): (200, AB_REPORT),
        }
        self.requests: list[Recorded] = []
        self.delay = 0.0
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the fake API."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reply(self, method: str, path: str, status: int, body: Any) -> None:
        """Make the fake answer method+path with this status and JSON body."""
        self.routes[(method, path)] = (status, body)

    def sent(self, method: str, path: str) -> list[Recorded]:
        """The requests received for method+path, in order."""
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Wake sleeping handlers and shut the server down."""
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _make_handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve()

        def do_POST(self) -> None:  # noqa: N802
            self._serve()

        def do_PUT(self) -> None:  # noqa: N802
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            api.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
            if api.delay:
                # An Event instead of sleep so teardown does not wait it out.
                api.stopping.wait(api.delay)
            route = api.routes.get((self.command, self.path), (404, {"error": "not found"}))
            status, payload = route(body or {}) if callable(route) else route
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up after its timeout

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    """A running fake API, with API_URL pointing at it."""
    api = FakeApi()
    api.start()
    monkeypatch.setenv("API_URL", api.url)
    monkeypatch.delenv("API_TIMEOUT_SECONDS", raising=False)
    yield api
    api.stop()


def run_app(query_params: dict[str, str] | None = None) -> AppTest:
    """Run the app once and check nothing leaked out as an exception."""
    at = AppTest.from_file(str(APP_PATH), default_timeout=RUN_TIMEOUT)
    at.query_params.update(query_params or {})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    """Rerun after an interaction and check nothing leaked out as an exception."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric_values(block: Any) -> dict[str, str]:
    """Label to value of every st.metric in block."""
    return {m.label: m.value for m in block.metric}


def button(at: AppTest, label: str) -> Any:
    """The first button with this label."""
    return next(b for b in at.button if b.label == label)


def sliders(at: AppTest) -> dict[str, Any]:
    """Label to slider widget."""
    return {s.label: s for s in at.slider}


def charts(block: Any) -> list[Any]:
    """Vega-Lite charts (st.bar_chart) in block."""
    return list(block.get("vega_lite_chart"))


def tab(at: AppTest, label: str) -> Any:
    """The tab with this label."""
    return next(t for t in at.tabs if t.label == label)


def predict(at: AppTest) -> AppTest:
    """Press Get Prediction."""
    button(at, "Get Prediction").click()
    return rerun(at)


# ---------------------------------------------------------------- layout and predict


def test_layout_has_title_and_tabs_with_predict_first(fake_api: FakeApi) -> None:
    at = run_app()

    assert "Iris Classifier" in at.title[0].value
    assert [t.label for t in at.tabs] == ["Predict", "Experiment", "Drift", "Admin"]
    assert not at.error


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
            "features": {"weight_kg": {"min": 2, "max": 40, "mean": 12, "default": 4}, "ear_length": {"min": 3, "max": 3}},
            "versions": {},
        },
    )

    at = run_app()

    by_label = sliders(at)
    assert list(by_label) == ["Weight Kg", "Ear Length"]
    assert (by_label["Weight Kg"].min, by_label["Weight Kg"].max, by_label["Weight Kg"].value) == (2.0, 40.0, 4.0)
    # A constant feature still gets a usable range.
    assert by_label["Ear Length"].max > by_label["Ear Length"].min


def test_get_prediction_shows_species_version_latency_and_chart(fake_api: FakeApi) -> None:
    at = predict(run_app())

    predict_tab = tab(at, "Predict")
    assert metric_values(predict_tab) == {"Species": "Setosa", "Model version": "v1", "Latency": "0.4 ms"}
    assert len(charts(predict_tab)) == 1
    (sent,) = fake_api.sent("POST", "/predict")
    assert sent.body["features"] == [5.0, 3.4, 1.5, 0.2]


def test_user_id_is_a_uuid_kept_in_session_and_url(fake_api: FakeApi) -> None:
    at = run_app()
    uid = at.session_state["user_id"]
    assert str(uuid.UUID(uid)) == uid
    assert at.query_params["uid"] == uid

    predict(at)
    predict(at)

    assert [r.body["user_id"] for r in fake_api.sent("POST", "/predict")] == [uid, uid]
    assert run_app().session_state["user_id"] != uid


def test_user_id_from_the_url_survives_a_reload(fake_api: FakeApi) -> None:
    uid = str(uuid.uuid4())

    at = predict(run_app({"uid": uid}))

    assert at.session_state["user_id"] == uid
    assert fake_api.sent("POST", "/predict")[0].body["user_id"] == uid


def test_a_malformed_uid_in_the_url_is_replaced(fake_api: FakeApi) -> None:
    at = run_app({"uid": "<script>"})

    assert at.session_state["user_id"] != "<script>"
    assert at.query_params["uid"] == at.session_state["user_id"]


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


def test_history_lists_this_sessions_predictions(fake_api: FakeApi) -> None:
    at = predict(run_app())
    sliders(at)["Petal Length"].set_value(6.0)
    at = predict(at)

    table = tab(at, "Predict").dataframe[0].value
    assert list(table.columns) == ["time (UTC)", "version", "class", "latency", "correct"]
    assert list(table["class"]) == ["Virginica", "Setosa"]
    assert list(table["version"]) == ["v1", "v1"]


# ---------------------------------------------------------------- feedback


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
    assert sent.body == {"prediction_id": prediction_id, "label": 2}
    (warning,) = tab(at, "Predict").warning
    assert warning.value.startswith("Wrong")
    assert "Virginica" in warning.value
    assert list(tab(at, "Predict").dataframe[0].value["correct"]) == ["❌ no"]


def test_correct_feedback_is_confirmed(fake_api: FakeApi) -> None:
    at = predict(run_app())
    button(at, "Send feedback").click()
    at = rerun(at)

    assert tab(at, "Predict").success[0].value.startswith("Correct")
    assert list(tab(at, "Predict").dataframe[0].value["correct"]) == ["✅ yes"]


def test_feedback_error_is_shown_in_words(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/feedback", 404, {"error": "unknown prediction_id"})
    at = predict(run_app())
    button(at, "Send feedback").click()
    at = rerun(at)

    (error,) = tab(at, "Predict").error
    assert "unknown prediction_id" in error.value


# ---------------------------------------------------------------- experiment


def test_experiment_panel_shows_report_not_json(fake_api: FakeApi) -> None:
    at = run_app()

    experiment = tab(at, "Experiment")
    assert not at.json
    assert AB_REPORT["recommendation"] in experiment.info[0].value
    metrics = metric_values(experiment)
    assert metrics["v1 accuracy"] == "100.0%"
    assert metrics["v2 accuracy"] == "71.2%"
    assert metrics["p-value"] == "< 0.001"
    assert metrics["Significant"] == "yes"
    sentences = " ".join(m.value for m in experiment.markdown)
    assert "v2 vs v1: accuracy difference -28.7 points, p < 0.001 (z-test): significant, v1 is better." in sentences
    captions = " ".join(c.value for c in experiment.caption)
    assert "95% CI 91.2% – 100.0%" in captions
    assert "v1: 120 requests" in captions
    assert len(charts(experiment)) == 1
    table = experiment.dataframe[0].value
    assert list(table["observed share"]) == ["52.0%", "48.0%"]
    assert not experiment.warning


def test_experiment_panel_warns_on_sample_ratio_mismatch(fake_api: FakeApi) -> None:
    report = copy.deepcopy(AB_REPORT)
    report["srm"].update({"mismatch": True, "p_value": 0.00001})
    fake_api.reply("GET", "/ab/report", 200, report)

    at = run_app()

    (warning,) = tab(at, "Experiment").warning
    assert "Sample ratio mismatch" in warning.value


def test_experiment_panel_without_labelled_data(fake_api: FakeApi) -> None:
    report = copy.deepcopy(AB_REPORT)
    for variant in report["variants"].values():
        variant.update({"labeled": 0, "correct": 0, "accuracy": None, "accuracy_ci95": None,
                        "latency_p50_ms": None, "latency_p95_ms": None})
    # The real API keeps the comparison object but nulls its numbers.
    report["comparison"] = {key: None for key in AB_REPORT["comparison"]} | {
        "baseline": "v1", "challenger": "v2", "significant": False,
    }
    report["comparisons"] = [report["comparison"]]
    report["recommendation"] = "collect more labelled data"
    fake_api.reply("GET", "/ab/report", 200, report)

    at = run_app()

    experiment = tab(at, "Experiment")
    assert metric_values(experiment)["v1 accuracy"] == "—"
    assert any("Not enough labelled" in i.value for i in experiment.info)
    assert not at.error


def test_experiment_panel_says_when_the_difference_is_not_significant_yet(fake_api: FakeApi) -> None:
    report = copy.deepcopy(AB_REPORT)
    report["comparison"].update({"p_value": 0.141, "p_value_adjusted": 0.141, "significant": False,
                                 "winner": None, "additional_samples_needed": 207})
    fake_api.reply("GET", "/ab/report", 200, report)

    at = run_app()

    experiment = tab(at, "Experiment")
    assert metric_values(experiment)["p-value"] == "0.141"
    assert metric_values(experiment)["Significant"] == "no"
    sentences = " ".join(m.value for m in experiment.markdown)
    assert "p = 0.141 (z-test): not significant yet, about 207 more labelled predictions" in sentences


# ---------------------------------------------------------------- drift


def test_drift_panel_shows_score_threshold_and_features(fake_api: FakeApi) -> None:
    at = run_app()

    drift = tab(at, "Drift")
    metrics = metric_values(drift)
    assert metrics["Drift score"] == "0.120"
    assert metrics["Alarm threshold"] == "0.30"
    assert metrics["Samples in window"] == "87 / 100"
    assert drift.progress[0].value == 40  # 0.12 of 0.3
    assert "No drift" in drift.success[0].value
    table = drift.dataframe[0].value
    assert list(table["feature"]) == ["Sepal Length", "Sepal Width", "Petal Length", "Petal Width"]
    assert {"p-value", "PSI", "mean shift (SD)"} <= set(table.columns)
    assert len(charts(drift)) == 1


def test_drift_panel_warns_and_names_drifted_features(fake_api: FakeApi) -> None:
    drift = copy.deepcopy(DRIFT)
    drift.update({"drift_score": 0.5, "drift_detected": True, "status": "WARNING"})
    drift["features"]["petal_length"].update({"drifted": True, "psi": 0.4, "mean_shift_sd": 1.8})
    fake_api.reply("GET", "/drift", 200, drift)

    at = run_app()

    (warning,) = tab(at, "Drift").warning
    assert "Drift detected" in warning.value
    assert "Petal Length" in warning.value
    assert tab(at, "Drift").progress[0].value == 100


def test_drift_panel_with_insufficient_data(fake_api: FakeApi) -> None:
    drift = copy.deepcopy(DRIFT)
    drift.update({"status": "INSUFFICIENT_DATA", "samples": 5, "drift_score": None, "features": {}})
    fake_api.reply("GET", "/drift", 200, drift)

    at = run_app()

    assert "5 of 100" in tab(at, "Drift").info[0].value
    assert metric_values(tab(at, "Drift"))["Drift score"] == "—"


# ---------------------------------------------------------------- admin


def test_admin_shows_weights_and_needs_a_token(fake_api: FakeApi) -> None:
    at = run_app()

    admin = tab(at, "Admin")
    assert metric_values(admin) == {"v1": "50", "v2": "50"}
    assert "admin token" in admin.info[0].value
    assert not admin.number_input
    assert not fake_api.sent("PUT", "/config")


def _admin_with_token(token: str = "s3cret") -> AppTest:
    at = run_app()
    at.text_input(key="admin_token").input(token)
    return rerun(at)


def _submit_weights(at: AppTest, weights: dict[str, int]) -> AppTest:
    inputs = {n.label: n for n in at.number_input}
    for version, weight in weights.items():
        inputs[f"{version} weight"].set_value(weight)
    button(at, "Update weights").click()
    return rerun(at)


def test_admin_changes_weights_with_the_token(fake_api: FakeApi) -> None:
    at = _admin_with_token()
    assert [n.value for n in at.number_input] == [50, 50]

    at = _submit_weights(at, {"v1": 90, "v2": 10})

    (sent,) = fake_api.sent("PUT", "/config")
    assert sent.headers["Authorization"] == "Bearer s3cret"
    assert sent.body == {"weights": {"v1": 90, "v2": 10}}
    admin = tab(at, "Admin")
    assert "v1 90, v2 10" in admin.success[0].value
    assert metric_values(admin) == {"v1": "90", "v2": "10"}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "at least one weight must be above 0"}, "at least one weight must be above 0"),
        (401, {"error": "missing or wrong admin token"}, "missing or wrong admin token"),
        (401, {}, "Admin token missing or wrong"),
        (403, {}, "Admin changes are disabled on the server (ADMIN_TOKEN is not set)"),
    ],
)
def test_admin_shows_the_apis_error_in_words(fake_api: FakeApi, status: int, body: dict[str, str], expected: str) -> None:
    fake_api.reply("PUT", "/config", status, body)

    at = _submit_weights(_admin_with_token(), {"v1": 0, "v2": 0})

    (shown,) = tab(at, "Admin").error
    assert shown.value == f"Weights not changed: {expected} (HTTP {status})"
    assert metric_values(tab(at, "Admin")) == {"v1": "50", "v2": "50"}


# ---------------------------------------------------------------- API trouble


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _assert_one_line_errors_everywhere(at: AppTest, phrase: str) -> None:
    assert not at.exception
    for label in ["Predict", "Experiment", "Drift", "Admin"]:
        errors = tab(at, label).error
        assert len(errors) == 1, label
        assert phrase in errors[0].value and "\n" not in errors[0].value
        assert "Traceback" not in errors[0].value
    assert phrase in at.sidebar.error[0].value


def test_api_down_says_so_in_one_line_per_panel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_URL", f"http://127.0.0.1:{_closed_port()}")

    at = run_app()

    _assert_one_line_errors_everywhere(at, "Cannot reach the API")
    assert not at.slider
    at.button(key="refresh").click()
    _assert_one_line_errors_everywhere(rerun(at), "Cannot reach the API")


def test_api_too_slow_says_so_and_waits_only_once(fake_api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TIMEOUT_SECONDS", "0.3")
    fake_api.delay = 5.0

    at = run_app()

    _assert_one_line_errors_everywhere(at, "did not answer within 0.3 s")
    # The first timeout short-circuits the other calls of the same run, so the
    # page waits out one timeout, not one per panel.
    assert len(fake_api.requests) == 1


def test_a_malformed_reply_breaks_only_its_own_panel(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/drift", 200, {"drift_score": "high", "features": {"x": {"psi": [1]}}, "samples": None})
    fake_api.reply("GET", "/ab/report", 200, b"<html>gateway</html>")

    at = run_app()

    assert "not JSON" in tab(at, "Experiment").error[0].value
    assert metric_values(tab(at, "Drift"))["Drift score"] == "—"
    assert metric_values(tab(at, "Admin")) == {"v1": "50", "v2": "50"}
    assert len(sliders(at)) == 4


def test_a_panel_crash_is_contained(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/config", 200, {"weights": {"v1": "lots"}})

    at = run_app()

    (error,) = tab(at, "Admin").error
    assert error.value.startswith("Admin is unavailable")
    assert metric_values(tab(at, "Drift"))["Drift score"] == "0.120"


# ---------------------------------------------------------------- client


@pytest.mark.parametrize(("raw", "expected"), [("", 3.0), ("0.5", 0.5), ("soon", 3.0), ("-1", 3.0)])
def test_client_reads_url_and_timeout_from_env(monkeypatch: pytest.MonkeyPatch, raw: str, expected: float) -> None:
    monkeypatch.setenv("API_URL", "http://flask-api:5000/")
    monkeypatch.setenv("API_TIMEOUT_SECONDS", raw)

    client = ApiClient.from_env()

    assert (client.base_url, client.timeout) == ("http://flask-api:5000", expected)


def test_client_defaults_to_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_URL", raising=False)

    assert ApiClient.from_env().base_url == "http://localhost:5000"
