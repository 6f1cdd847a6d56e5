"""The HTTP contract through the Flask test client: shapes, errors, admin, OpenAPI."""

from __future__ import annotations

import json

import jsonschema
import pytest
from prometheus_client import REGISTRY

from app.flask_app import service_of
from app.openapi import openapi_document
from tests.conftest import ADMIN, wait_until

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.5, 3.0, 5.2, 2.0]


def check_schema(response, path: str, method: str = "get") -> None:
    """Validate a response body against the OpenAPI document's schema for it."""
    doc = openapi_document()
    responses = doc["paths"][path][method]["responses"]
    schema = responses[str(response.status_code)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(response.get_json())


def counter(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_predict_matches_the_seed_example(client):
    r = client.post("/predict", json={"features": SETOSA})
    assert r.status_code == 200
    body = r.get_json()
    assert body["prediction"] == 0 and body["class_name"] == "setosa"
    assert body["model_version"] in ("v1", "v2") and r.headers["X-Model-Version"] == body["model_version"]
    assert len(body["probabilities"]) == 3 and abs(sum(body["probabilities"]) - 1) < 1e-9
    assert body["latency_ms"] > 0 and body["timestamp"].endswith("+00:00")
    check_schema(r, "/predict", "post")


def test_predict_by_feature_names(client):
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    r = client.post("/predict", json={"features": dict(zip(names, VIRGINICA))})
    assert r.status_code == 200 and r.get_json()["class_name"] == "virginica"


def test_batch_is_one_variant_and_counts_rows(client, app):
    before_rows = sum(counter("predictions_total", version=v, **{"class": c})
                      for v in ("v1", "v2") for c in ("setosa", "versicolor", "virginica"))
    r = client.post("/predict", json={"instances": [SETOSA, VIRGINICA, SETOSA]})
    assert r.status_code == 200
    body = r.get_json()
    assert body["predictions"] == [0, 2, 0] and body["class_names"] == ["setosa", "virginica", "setosa"]
    assert len(set(body["prediction_ids"])) == 3 and len(body["probabilities"]) == 3
    check_schema(r, "/predict", "post")
    after_rows = sum(counter("predictions_total", version=v, **{"class": c})
                     for v in ("v1", "v2") for c in ("setosa", "versicolor", "virginica"))
    assert after_rows - before_rows == 3
    service = service_of(app)
    service.prediction_log.flush()
    assert service.store.count_predictions() == 3


def test_sticky_user_sees_one_version(client):
    seen = {client.post("/predict", json={"features": SETOSA, "user_id": "alice"}).get_json()["model_version"]
            for _ in range(20)}
    seen_header = {client.post("/predict", json={"features": SETOSA}, headers={"X-User-ID": "alice"})
                   .get_json()["model_version"] for _ in range(20)}
    assert len(seen) == 1 and seen == seen_header


BAD_BODIES = [
    (b"", "empty"),
    (b"not json", "not valid JSON"),
    (b"[5.1, 3.5, 1.4, 0.2]", "JSON object"),
    (b'"text"', "JSON object"),
    (b"{}", "exactly one of"),
    (b'{"features": [5.1, 3.5, 1.4]}', "expected 4"),
    (b'{"features": [5.1, 3.5, 1.4, 0.2, 9]}', "expected 4"),
    (b'{"features": ["5.1", 3.5, 1.4, 0.2]}', "must be a number"),
    (b'{"features": [true, 3.5, 1.4, 0.2]}', "must be a number"),
    (b'{"features": [null, 3.5, 1.4, 0.2]}', "must be a number"),
    (b'{"features": [[5.1], 3.5, 1.4, 0.2]}', "must be a number"),
    (b'{"features": [NaN, 3.5, 1.4, 0.2]}', "NaN"),
    (b'{"features": [Infinity, 3.5, 1.4, 0.2]}', "Infinity"),
    (b'{"features": [-Infinity, 3.5, 1.4, 0.2]}', "Infinity"),
    (b'{"features": [1e999, 3.5, 1.4, 0.2]}', "finite"),
    (b'{"features": [1e300, 3.5, 1.4, 0.2]}', "too large"),
    (b'{"features": [' + b"9" * 400 + b', 3.5, 1.4, 0.2]}', "too large"),
    (b'{"features": [' + b"9" * 5000 + b', 3.5, 1.4, 0.2]}', "not valid JSON"),
    (b'{"features": "5.1,3.5,1.4,0.2"}', "list of 4 numbers"),
    (b'{"features": {"sepal_length": 5.1}}', "missing feature"),
    (b'{"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2, "x": 1}}', "unknown feature"),
    (b'{"features": [5.1, 3.5, 1.4, 0.2], "feature": 1}', "unknown field"),
    (b'{"features": [5.1, 3.5, 1.4, 0.2], "instances": [[5.1, 3.5, 1.4, 0.2]]}', "exactly one of"),
    (b'{"instances": []}', "empty"),
    (b'{"instances": [[5.1, 3.5, 1.4, 0.2], [1, 2]]}', "instances[1] has 2 values"),
    (b'{"instances": [5.1, 3.5, 1.4, 0.2]}', "instances[0] must be a list"),
    (b'{"instances": {"a": 1}}', "must be a list of rows"),
    (b'{"features": [5.1, 3.5, 1.4, 0.2], "user_id": {"a": 1}}', "user_id"),
    (b'{"features": [5.1, 3.5, 1.4, 0.2], "user_id": ""}', "user_id"),
    (b'{"features": [5.1, 3.5, 1.4, 0.2], "user_id": true}', "user_id"),
    (b'{"features": [5.1, 3.5, 1.4, 0.2], "user_id": "\\ud800"}', "not valid Unicode"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
    (b"\xff\xfe{}", "not valid JSON"),
]


@pytest.mark.parametrize("body, message", BAD_BODIES, ids=[m + str(i) for i, (_, m) in enumerate(BAD_BODIES)])
def test_bad_input_is_a_clear_400_and_changes_nothing(client, app, body, message):
    served_before = sum(counter("model_version_requests_total", version=v) for v in ("v1", "v2"))
    errors_before = counter("prediction_errors_total", code="400")
    r = client.post("/predict", data=body, content_type="application/json")
    assert r.status_code == 400
    assert set(r.get_json()) == {"error"} and message in r.get_json()["error"]
    check_schema(r, "/predict", "post")
    assert sum(counter("model_version_requests_total", version=v) for v in ("v1", "v2")) == served_before
    assert counter("prediction_errors_total", code="400") == errors_before + 1
    service = service_of(app)
    service.prediction_log.flush()
    assert service.store.count_predictions() == 0


def test_batch_over_the_limit(settings):
    from app.flask_app import create_app

    app = create_app(settings.with_overrides(max_batch=5))
    try:
        r = app.test_client().post("/predict", json={"instances": [SETOSA] * 6})
        assert r.status_code == 400 and "limit is 5" in r.get_json()["error"]
    finally:
        service_of(app).close()


def test_body_over_one_mebibyte_is_413(client):
    body = b'{"instances": [' + b"[5.1, 3.5, 1.4, 0.2]," * 60_000 + b"[5.1, 3.5, 1.4, 0.2]]}"
    assert len(body) > 1024 * 1024
    r = client.post("/predict", data=body, content_type="application/json")
    assert r.status_code == 413 and "larger than" in r.get_json()["error"]


def test_unknown_route_and_wrong_method_are_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.is_json and "no such endpoint" in r.get_json()["error"]
    r = client.get("/predict")
    assert r.status_code == 405 and r.is_json
    r = client.delete("/config")
    assert r.status_code == 405 and r.is_json


def test_health_and_models_and_config_shapes(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.get_json()["status"] == "healthy" and r.get_json()["models_loaded"]
    assert set(r.get_json()["models"]) == {"v1", "v2"}
    assert r.get_json()["models"]["v2"]["n_estimators"] == 100
    check_schema(r, "/health")
    r = client.get("/config")
    body = r.get_json()
    assert (body["model_v1_weight"], body["model_v2_weight"], body["total_weight"]) == (50, 50, 100)
    assert body["weights"] == {"v1": 50, "v2": 50}
    check_schema(r, "/config")
    r = client.get("/models")
    assert r.get_json()["versions"]["v1"]["params"]["n_estimators"] == 50
    check_schema(r, "/models")


def test_put_config_changes_weights_and_starts_an_experiment(client, app):
    before = client.get("/config").get_json()["experiment"]["id"]
    r = client.put("/config", json={"weights": {"v1": 0, "v2": 10}}, headers=ADMIN)
    assert r.status_code == 200, r.get_json()
    check_schema(r, "/config", "put")
    assert r.get_json()["weights"] == {"v1": 0, "v2": 10} and r.get_json()["experiment"]["id"] == before + 1
    versions = {client.post("/predict", json={"features": SETOSA}).get_json()["model_version"] for _ in range(30)}
    assert versions == {"v2"}
    history = service_of(app).store.experiments()
    assert [e.source for e in history] == ["env", "api"]


@pytest.mark.parametrize(
    "body",
    [
        {"weights": {"v1": -1}},
        {"weights": {"v1": 0, "v2": 0}},
        {"weights": {"v9": 10}},
        {"weights": {"v1": "50"}},
        {"weights": {"v1": 1.5}},
        {"weights": []},
        {"model_v1_weight": 90},
        [],
    ],
)
def test_put_config_validation_changes_nothing(client, body):
    before = client.get("/config").get_json()
    r = client.put("/config", json=body, headers=ADMIN)
    assert r.status_code == 400 and "error" in r.get_json()
    assert client.get("/config").get_json() == before


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-token"},
                                     {"Authorization": "Basic dGVzdA=="}])
def test_admin_needs_the_token(client, headers):
    r = client.put("/config", json={"weights": {"v1": 1}}, headers=headers)
    assert r.status_code == 401 and "token" in r.get_json()["error"]
    assert client.post("/models/reload", headers=headers).status_code == 401


def test_admin_disabled_without_token(settings):
    from app.flask_app import create_app

    app = create_app(settings.with_overrides(admin_token=None))
    try:
        c = app.test_client()
        r = c.put("/config", json={"weights": {"v1": 1}}, headers=ADMIN)
        assert r.status_code == 403 and "disabled" in r.get_json()["error"]
        assert c.post("/models/reload", headers=ADMIN).status_code == 403
    finally:
        service_of(app).close()


def test_reload_with_a_tampered_file_keeps_serving_and_reports_degraded(client, settings):
    with open(settings.models_dir / "model_v1.pkl", "ab") as handle:
        handle.write(b"tampered")
    r = client.post("/models/reload", headers=ADMIN)
    assert r.status_code == 200
    check_schema(r, "/models/reload", "post")
    body = r.get_json()
    assert body["status"] == "degraded" and "sha256 mismatch" in body["failed"]["v1"]
    assert body["kept_previous"] == ["v1"]
    health = client.get("/health").get_json()
    assert health["status"] == "degraded" and "v1" in health["errors"] and "v1" in health["models"]
    assert client.post("/predict", json={"features": SETOSA, "user_id": "u"}).status_code == 200


def test_no_models_means_503(settings, tmp_path):
    from app.flask_app import create_app

    app = create_app(settings.with_overrides(models_dir=tmp_path / "empty"))
    try:
        c = app.test_client()
        assert c.get("/health").status_code == 503
        check_schema(c.get("/health"), "/health")
        r = c.post("/predict", json={"features": SETOSA})
        assert r.status_code == 503 and "no model" in r.get_json()["error"]
    finally:
        service_of(app).close()


def test_feedback_roundtrip_and_correction(client):
    pid = client.post("/predict", json={"features": SETOSA}).get_json()["prediction_id"]
    r = client.post("/feedback", json={"prediction_id": pid, "label": "setosa"})
    assert r.status_code == 200, r.get_json()
    check_schema(r, "/feedback", "post")
    assert r.get_json()["correct"] is True and r.get_json()["label"] == 0
    r = client.post("/feedback", json={"prediction_id": pid, "label": 2})
    assert r.get_json()["correct"] is False and r.get_json()["corrected"] is True


@pytest.mark.parametrize(
    "body, status",
    [
        ({"prediction_id": "00000000-0000-0000-0000-000000000000", "label": 1}, 404),
        ({"label": 1}, 400),
        ({"prediction_id": "x"}, 400),
        ({"prediction_id": "x", "label": 3}, 400),
        ({"prediction_id": "x", "label": -1}, 400),
        ({"prediction_id": "x", "label": "rose"}, 400),
        ({"prediction_id": "x", "label": True}, 400),
        ({"prediction_id": 5, "label": 1}, 400),
        ({"feedback": []}, 400),
        ({"feedback": [{"prediction_id": "x"}]}, 400),
    ],
)
def test_feedback_errors(client, body, status):
    r = client.post("/feedback", json=body)
    assert r.status_code == status and "error" in r.get_json()


def test_batch_feedback(client):
    ids = client.post("/predict", json={"instances": [SETOSA, VIRGINICA]}).get_json()["prediction_ids"]
    r = client.post("/feedback", json={"feedback": [{"prediction_id": ids[0], "label": 0},
                                                    {"prediction_id": ids[1], "label": "versicolor"},
                                                    {"prediction_id": "missing", "label": 0}]})
    assert r.status_code == 200
    check_schema(r, "/feedback", "post")
    body = r.get_json()
    assert body["accepted"] == 2 and body["not_found"] == ["missing"]
    assert [x["correct"] for x in body["results"]] == [True, False]


def test_ab_report_and_drift_shapes(client):
    for _ in range(40):
        client.post("/predict", json={"features": SETOSA})
    r = client.get("/ab/report")
    assert r.status_code == 200
    check_schema(r, "/ab/report")
    assert sum(v["requests"] for v in r.get_json()["variants"].values()) in range(0, 41)
    r = client.get("/drift")
    assert r.status_code == 200
    check_schema(r, "/drift")
    for bad in ("yesterday", "nan", "inf", "1e300", "-1e300", "0001-01-01T00:00:00+14:00", "2026-01-01T00:00:00"):
        r = client.get("/ab/report", query_string={"since": bad})
        assert r.status_code == 400 and "since" in r.get_json()["error"], bad
    assert client.get("/ab/report?since=2020-01-01T00:00:00Z").status_code == 200


def test_metrics_exposes_the_seed_names(client):
    client.post("/predict", json={"features": SETOSA})
    text = client.get("/metrics").get_data(as_text=True)
    for name in ("prediction_requests_total", "model_version_requests_total", "prediction_latency_seconds_bucket",
                 "prediction_errors_total", "model_drift_score", "predictions_total", "model_info",
                 "model_traffic_weight", "model_accuracy"):
        assert name in text, name
    assert 'le="0.0001"' in text and 'le="0.00025"' in text


def test_openapi_lists_every_route(client, app):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    routes = {str(rule) for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    assert routes == set(doc["paths"])
    methods: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            methods.setdefault(str(rule), set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    for path, allowed in methods.items():
        assert set(doc["paths"][path]) == allowed, path


def test_predictions_are_served_while_the_store_is_locked(settings):
    import sqlite3

    from app.flask_app import create_app

    app = create_app(settings.with_overrides(store_busy_timeout=0.1))
    service = service_of(app)
    c = app.test_client()
    lost_before = counter("prediction_log_errors_total", reason="store_unavailable")
    blocker = sqlite3.connect(service.store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for _ in range(5):
            r = c.post("/predict", json={"features": SETOSA})
            assert r.status_code == 200 and r.get_json()["prediction"] == 0
        assert service.prediction_log.flush(timeout=5)
        assert counter("prediction_log_errors_total", reason="store_unavailable") == lost_before + 5
        r = c.put("/config", json={"weights": {"v1": 1}}, headers=ADMIN)
        assert r.status_code == 503 and "store unavailable" in r.get_json()["error"]
        assert c.get("/metrics").status_code == 200
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        service.close()


def test_models_trained_after_start_are_served_after_reload(settings, tmp_path):
    from app.flask_app import create_app
    from app.train_model import load_iris_dataset, train

    empty = tmp_path / "later"
    app = create_app(settings.with_overrides(models_dir=empty))
    try:
        c = app.test_client()
        assert c.post("/predict", json={"features": SETOSA}).status_code == 503
        train(load_iris_dataset(), empty, log=lambda *_: None)
        r = c.post("/models/reload", headers=ADMIN)
        assert r.status_code == 200 and r.get_json()["status"] == "healthy"
        assert c.get("/config").get_json()["weights"] == {"v1": 50, "v2": 50}
        assert c.post("/predict", json={"features": SETOSA}).status_code == 200
    finally:
        service_of(app).close()


def test_unknown_feedback_id_that_is_not_ours_is_not_waited_for(client, app, monkeypatch):
    service = service_of(app)
    flushes = []
    monkeypatch.setattr(service.prediction_log, "flush", lambda *a, **k: flushes.append(1) or True)
    r = client.post("/feedback", json={"prediction_id": "not-a-uuid", "label": 0})
    assert r.status_code == 404 and flushes == []
    r = client.post("/feedback", json={"prediction_id": "00000000-0000-4000-8000-000000000000", "label": 0})
    assert r.status_code == 404 and flushes == []  # a UUID, but not one this service issues (v7)
    import time

    from app.service import new_prediction_ids

    old = new_prediction_ids(1, time.time() - 3600)[0]
    r = client.post("/feedback", json={"prediction_id": old, "label": 0})
    assert r.status_code == 404 and flushes == []  # ours, but an hour old: it would be in the store
    fresh = new_prediction_ids(1, time.time())[0]
    r = client.post("/feedback", json={"prediction_id": fresh, "label": 0})
    assert r.status_code == 404 and flushes == [1]  # just issued: may still be in a worker's buffer


def test_all_zero_environment_weights_fail_at_start(settings):
    from app.flask_app import create_app

    with pytest.raises(ValueError, match="at least one"):
        create_app(settings.with_overrides(env_weights={"v1": 0, "v2": 0}))


def test_weights_that_route_to_no_loaded_version_are_refused(client, settings):
    with open(settings.models_dir / "model_v2.pkl", "ab") as handle:
        handle.write(b"tampered")
    from app.flask_app import create_app

    app = create_app(settings)
    try:
        c = app.test_client()
        assert c.get("/health").get_json()["status"] == "degraded"
        r = c.put("/config", json={"weights": {"v1": 0, "v2": 100}}, headers=ADMIN)
        assert r.status_code == 400 and "no loaded version would get traffic" in r.get_json()["error"]
        assert c.post("/predict", json={"features": SETOSA}).status_code == 200
    finally:
        service_of(app).close()


def test_health_is_503_when_nothing_loaded_can_be_routed(settings):
    from app.flask_app import create_app

    with open(settings.models_dir / "model_v1.pkl", "ab") as handle:
        handle.write(b"tampered")
    app = create_app(settings.with_overrides(env_weights={"v1": 100, "v2": 0}))
    try:
        r = app.test_client().get("/health")
        assert r.status_code == 503 and r.get_json()["status"] == "unhealthy"
        assert "weight above 0" in r.get_json()["errors"]["router"]
        check_schema(r, "/health")
    finally:
        service_of(app).close()


def test_sync_never_goes_back_to_an_older_period(app, monkeypatch):
    service = service_of(app)
    older = service.experiment
    newer = service.set_weights({"v1": 10})
    monkeypatch.setattr(service.store, "latest_experiment", lambda: older)
    service.sync()
    assert service.experiment == newer and service.state.router.weights == newer.weights
