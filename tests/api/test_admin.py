"""GET/PUT /config, GET /models and POST /models/reload: shapes, the admin token, validation, reloads."""

from __future__ import annotations

import pytest

from app.api import service_of
from app.training.datasets import load_iris_dataset
from app.training.trainer import train
from tests.api.helpers import check_schema
from tests.helpers import ADMIN, SETOSA


def test_config_and_models_shapes(client):
    r = client.get("/config")
    body = r.get_json()
    assert (body["model_v1_weight"], body["model_v2_weight"], body["total_weight"]) == (50, 50, 100)
    assert body["weights"] == {"v1": 50, "v2": 50} and body["shares"] == {"v1": 0.5, "v2": 0.5}
    check_schema(r, "/config")
    r = client.get("/models")
    assert r.get_json()["versions"]["v1"]["params"]["n_estimators"] == 50
    assert r.get_json()["loaded"] == ["v1", "v2"]
    check_schema(r, "/models")


def test_put_config_changes_weights_and_starts_an_experiment(client, app):
    before = client.get("/config").get_json()["experiment"]["id"]
    r = client.put("/config", json={"weights": {"v1": 0, "v2": 10}}, headers=ADMIN)
    assert r.status_code == 200, r.get_json()
    check_schema(r, "/config", "put")
    body = r.get_json()
    assert body["weights"] == {"v1": 0, "v2": 10} and body["experiment"]["id"] == before + 1
    assert body["shares"] == {"v1": 0.0, "v2": 1.0}
    versions = {client.post("/predict", json={"features": SETOSA}).get_json()["model_version"] for _ in range(30)}
    assert versions == {"v2"}
    assert [e.source for e in service_of(app).store.experiments()] == ["env", "api"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"weights": {"v1": -1}}, "between 0 and"),
        ({"weights": {"v1": 0, "v2": 0}}, "at least one weight"),
        ({"weights": {"v9": 10}}, "unknown model version 'v9'"),
        ({"weights": {"v1": "50"}}, "non-negative integer"),
        ({"weights": {"v1": 1.5}}, "non-negative integer"),
        ({"weights": []}, "non-empty object"),
        ({"model_v1_weight": 90}, "send {"),
        ([], "JSON object"),
    ],
)
def test_put_config_validation_changes_nothing(client, app, body, message):
    before = client.get("/config").get_json()
    r = client.put("/config", json=body, headers=ADMIN)
    assert r.status_code == 400 and message in r.get_json()["error"]
    assert client.get("/config").get_json() == before
    assert len(service_of(app).store.experiments()) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "test-admin-token-0123456789"},
        {"Authorization": "Basic dGVzdA=="},
    ],
)
def test_admin_needs_the_token(client, headers):
    r = client.put("/config", json={"weights": {"v1": 1}}, headers=headers)
    assert r.status_code == 401 and "token" in r.get_json()["error"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/models/reload", headers=headers).status_code == 401
    assert client.get("/config").get_json()["weights"] == {"v1": 50, "v2": 50}


def test_admin_disabled_without_token(make_app):
    c = make_app(admin_token=None).test_client()
    r = c.put("/config", json={"weights": {"v1": 1}}, headers=ADMIN)
    assert r.status_code == 403 and "disabled" in r.get_json()["error"]
    assert c.post("/models/reload", headers=ADMIN).status_code == 403


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


def test_models_trained_after_start_are_served_after_reload(make_app, tmp_path):
    empty = tmp_path / "later"
    c = make_app(models_dir=empty).test_client()
    assert c.post("/predict", json={"features": SETOSA}).status_code == 503
    assert c.get("/models").status_code == 503
    assert c.post("/models/reload", headers=ADMIN).status_code == 503  # still nothing to load
    train(load_iris_dataset(), empty, log=lambda *_: None)
    r = c.post("/models/reload", headers=ADMIN)
    assert r.status_code == 200 and r.get_json()["status"] == "healthy"
    assert c.get("/config").get_json()["weights"] == {"v1": 50, "v2": 50}
    assert c.post("/predict", json={"features": SETOSA}).status_code == 200


def test_weights_that_route_to_no_loaded_version_are_refused(make_app, settings):
    with open(settings.models_dir / "model_v2.pkl", "ab") as handle:
        handle.write(b"tampered")
    c = make_app().test_client()
    assert c.get("/health").get_json()["status"] == "degraded"
    r = c.put("/config", json={"weights": {"v1": 0, "v2": 100}}, headers=ADMIN)
    assert r.status_code == 400 and "no loaded version would get traffic" in r.get_json()["error"]
    assert c.post("/predict", json={"features": SETOSA}).status_code == 200


def test_all_zero_environment_weights_fail_at_start(make_app):
    with pytest.raises(ValueError, match="at least one"):
        make_app(env_weights={"v1": 0, "v2": 0})
