"""/health, /drift and /metrics through the test client."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris

from app.api import service_of
from tests.api.helpers import check_schema
from tests.helpers import SETOSA


def gauges(client) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def test_health_shape(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.get_json()["status"] == "healthy" and r.get_json()["models_loaded"]
    assert set(r.get_json()["models"]) == {"v1", "v2"}
    assert r.get_json()["models"]["v2"]["n_estimators"] == 100
    check_schema(r, "/health")


def test_no_models_means_503(make_app, tmp_path):
    c = make_app(models_dir=tmp_path / "empty").test_client()
    r = c.get("/health")
    assert r.status_code == 503 and r.get_json()["models_loaded"] is False
    check_schema(r, "/health")


def test_health_is_503_when_nothing_loaded_can_be_routed(make_app, settings):
    with open(settings.models_dir / "model_v1.pkl", "ab") as handle:
        handle.write(b"tampered")
    r = make_app(env_weights={"v1": 100, "v2": 0}).test_client().get("/health")
    assert r.status_code == 503 and r.get_json()["status"] == "unhealthy"
    assert "weight above 0" in r.get_json()["errors"]["router"]
    check_schema(r, "/health")


def test_metrics_exposes_the_seed_names(client):
    assert client.post("/predict", json={"features": SETOSA}).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    exported = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    for name in (
        "prediction_requests_total",
        "model_version_requests_total",
        "prediction_latency_seconds_bucket",
        "model_drift_score",
        "model_drift_detected",
        "predictions_total",
        "model_info",
        "model_traffic_weight",
    ):
        assert name in exported, name
    edges = {
        s.labels["le"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "prediction_latency_seconds_bucket"
    }
    assert {"0.0001", "0.00025"} <= edges, edges


def test_drift_shape(client):
    r = client.get("/drift")
    assert r.status_code == 200 and r.get_json()["status"] == "INSUFFICIENT_DATA"
    check_schema(r, "/drift")


def iris_rows(shift: float) -> list[list[float]]:
    """100 Iris rows, petal length moved by ``shift`` cm."""
    rows = np.asarray(load_iris().data[::3][:50].tolist() * 2)
    rows[:, 2] += shift
    return np.round(rows, 1).tolist()


@pytest.mark.parametrize("threshold", [0.3, 0.9])
@pytest.mark.parametrize(("shift", "drifted"), [(0.0, False), (2.0, True)])
def test_drift_gauge_is_the_api_decision_at_any_threshold(make_app, threshold, shift, drifted):
    app = make_app(drift_threshold=threshold, drift_client_share=1.0)  # one client sends the window
    c = app.test_client()
    assert c.post("/predict", json={"instances": iris_rows(shift)}).status_code == 200
    service_of(app).prediction_log.flush()
    drift = c.get("/drift").get_json()
    assert drift["threshold"] == threshold and drift["samples"] == 100
    assert drift["drift_detected"] is drifted and (drift["drift_score"] >= threshold) is drifted
    values = gauges(c)
    assert values["model_drift_detected"] == float(drifted)
    assert values["model_drift_score"] == drift["drift_score"]


def test_drift_history_shows_the_score_rising_window_by_window(make_app):
    app = make_app(drift_window=50, drift_client_share=1.0)  # one client sends every row
    c = app.test_client()
    for shift in (0.0, 0.0, 2.0):  # 100 rows each: two windows of 50 per batch
        assert c.post("/predict", json={"instances": iris_rows(shift)}).status_code == 200
        service_of(app).prediction_log.flush()
    r = c.get("/drift/history")
    assert r.status_code == 200
    check_schema(r, "/drift/history")
    body = r.get_json()
    assert body["window_size"] == 50 and body["threshold"] == 0.3
    assert [w["rows"] for w in body["windows"]] == [50] * 6
    assert [w["drift_detected"] for w in body["windows"]] == [False] * 4 + [True] * 2
    assert [w["end"] for w in c.get("/drift/history?points=2").get_json()["windows"]] == [
        w["end"] for w in body["windows"][-2:]
    ]


def test_drift_history_is_cached_for_a_few_seconds(make_app):
    app = make_app(drift_client_share=1.0)
    c = app.test_client()
    assert c.get("/drift/history").get_json()["windows"] == []
    c.post("/predict", json={"instances": iris_rows(0.0)})
    service_of(app).prediction_log.flush()
    assert c.get("/drift/history").get_json()["windows"] == []  # the same answer within 5 s
    assert c.get("/drift/history?points=3").get_json()["windows"] == []  # whatever points: one history, cached


@pytest.mark.parametrize("points", ["0", "101", "-1", "1.5", "", "abc", "1e2", "٣", "99999999999999999999"])
def test_drift_history_refuses_points_out_of_range(client, points):
    r = client.get("/drift/history", query_string={"points": points})
    assert r.status_code == 400 and "points must be a whole number from 1 to 100" in r.get_json()["error"]
    check_schema(r, "/drift/history")


def test_drift_history_points_are_the_newest_windows_of_one_history(make_app):
    app = make_app(drift_client_share=1.0, drift_window=30, drift_min_samples=30)
    c = app.test_client()
    for shift in (0.0, 0.0, 3.0):  # three windows of 30 rows, the newest shifted
        c.post("/predict", json={"instances": iris_rows(shift)[::3][:30]})
    service_of(app).prediction_log.flush()
    three = c.get("/drift/history?points=3").get_json()["windows"]
    assert len(three) == 3 and three[-1]["drift_detected"] and not three[0]["drift_detected"]
    assert c.get("/drift/history?points=1").get_json()["windows"] == three[-1:]
