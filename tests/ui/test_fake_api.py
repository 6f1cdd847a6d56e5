"""tests/ui/fake_api.py answers like the real API: every field it sends, the real API sends too, same JSON type.

Not checked here: /rollouts/current, which this API does not serve yet (the fake follows the shape the rollout
work specifies), and the timeline's shadow series, which the real API leaves empty until shadow traffic
exists; the fake's shadow points are checked against the real served points instead.
"""

from __future__ import annotations

from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient

from app.api import service_of
from tests.helpers import SETOSA, VIRGINICA, wait_until
from tests.ui.fake_api import FakeApi

ADMIN = {"Authorization": "Bearer test-admin-token-0123456789"}  # the conftest `settings` fixture's token
USERS = 40  # enough rows for drift's per-feature tests and labels on both versions


def json_type(value: object) -> str:
    """The JSON type of a decoded value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def differences(fake: object, real: object, where: str) -> list[str]:
    """Where fake has a field the real reply lacks, or a value of another JSON type (nulls match anything)."""
    if fake is None or real is None:
        return []
    if json_type(fake) != json_type(real):
        return [f"{where}: the fake sends {json_type(fake)}, the real API {json_type(real)}"]
    found: list[str] = []
    if isinstance(fake, dict) and isinstance(real, dict):
        for key, value in fake.items():
            if key not in real:
                found.append(f"{where}.{key}: not sent by the real API")
            else:
                found.extend(differences(value, real[key], f"{where}.{key}"))
    elif isinstance(fake, list) and isinstance(real, list) and fake and real:
        found.extend(differences(fake[0], real[0], f"{where}[0]"))
    return found


def seed(client: FlaskClient) -> None:
    """Predictions and true labels from many users, so every block of /ab/report and /drift is filled in."""
    for i in range(USERS):
        features = SETOSA if i % 2 else VIRGINICA
        reply = client.post("/predict", json={"features": features, "user_id": f"user-{i:04d}"})
        assert reply.status_code == 200, reply.get_json()
        label = 0 if i % 2 else 2
        answer = reply.get_json()
        body = {"prediction_id": answer["prediction_id"], "label": label, "feedback_token": answer["feedback_token"]}
        feedback = client.post("/feedback", json=body)
        assert feedback.status_code in (200, 202), feedback.get_json()  # 202: applied once the row is flushed


def filled_in(client: FlaskClient) -> bool:
    """Whether the prediction log has reached /drift and /ab/report (it is written off the request path)."""
    drift = client.get("/drift").get_json()
    report = client.get("/ab/report").get_json()
    return bool(drift["features"]) and report["comparison"]["p_value_text"] is not None


def test_every_field_the_fake_sends_the_real_api_sends_too(client: FlaskClient, app: Flask, fake_api: FakeApi) -> None:
    seed(client)
    wait_until(lambda: filled_in(client), timeout=10, message="the prediction log in /drift and /ab/report")
    # PUT last: it starts a new experiment period, which empties the report.
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/health", None),
        ("GET", "/models", None),
        ("GET", "/config", None),
        ("GET", "/drift", None),
        ("GET", "/drift/history?points=20", None),
        ("GET", "/ab/report", None),
        ("GET", "/ab/timeline", None),
        ("POST", "/predict", {"features": SETOSA, "user_id": "user-0001"}),
        ("POST", "/feedback", {"prediction_id": "set-below", "label": 0}),
        ("PUT", "/config", {"weights": {"v1": 90, "v2": 10}}),
    ]
    real: dict[tuple[str, str], Any] = {}
    found: list[str] = []
    for method, path, body in calls:
        if path == "/feedback":
            assert body is not None
            body["prediction_id"] = real[("POST", "/predict")]["prediction_id"]
            body["feedback_token"] = real[("POST", "/predict")]["feedback_token"]
            assert service_of(app).prediction_log.flush()  # stored: the label is recorded, not queued
        real_reply = client.open(path, method=method, json=body, headers=ADMIN)
        fake_reply = requests.request(method, f"{fake_api.url}{path}", json=body, timeout=5)
        assert (real_reply.status_code, fake_reply.status_code) == (200, 200), (method, path, real_reply.get_json())
        real[(method, path)] = real_reply.get_json()
        fake = fake_reply.json()
        if path == "/ab/timeline":
            for version, points in fake.pop("shadow").items():
                found.extend(differences(points, real[(method, path)]["versions"]["v1"], f"shadow {version}"))
        if path == "/ab/report":
            fake_shadow = fake.pop("shadow")
        found.extend(differences(fake, real[(method, path)], f"{method} {path}"))

    # A shadow version's block, and a rollout, as the real API sends them.
    shadow = client.put("/config", json={"weights": {"v1": 100, "v2": 0}, "shadow": ["v2"]}, headers=ADMIN)
    assert shadow.status_code == 200, shadow.get_json()
    seed(client)

    def labelled_shadow() -> dict[str, Any] | None:
        block: dict[str, Any] | None = client.get("/ab/report").get_json()["shadow"].get("v2")
        return block if block and block["labeled"] else None

    real_shadow = wait_until(labelled_shadow, timeout=10, message="the shadow version's rows labelled")
    for version, block in fake_shadow.items():
        found.extend(differences(block, real_shadow, f"GET /ab/report.shadow.{version}"))
    started = client.post(
        "/rollouts", json={"candidate": "v2", "baseline": "v1", "steps": [10, 50, 100]}, headers=ADMIN
    )
    assert started.status_code == 201, started.get_json()
    real_rollout = client.get("/rollouts/current").get_json()
    fake_rollout = requests.get(f"{fake_api.url}/rollouts/current", timeout=5).json()
    found.extend(differences(fake_rollout, real_rollout, "GET /rollouts/current"))

    assert found == []
    assert real[("GET", "/drift/history?points=20")]["windows"]  # compared with a real window, not nothing
    assert real[("GET", "/ab/timeline")]["versions"]["v1"][-1]["ci95"] is not None
    # What the page shows without judging it must be there, filled in, in the real replies.
    report = real[("GET", "/ab/report")]
    assert isinstance(report["comparison"]["p_value_text"], str)
    assert isinstance(report["srm"]["p_value_text"], str)
    assert isinstance(real[("GET", "/drift")]["threshold"], float)
    assert real[("GET", "/config")]["shares"] == {"v1": 0.5, "v2": 0.5}
    assert real[("PUT", "/config")]["shares"] == {"v1": 0.9, "v2": 0.1}


def test_differences_finds_missing_fields_and_other_types() -> None:
    fake = {"a": 1, "b": {"c": "x", "d": [{"e": True}]}, "f": None}
    real = {"a": "1", "b": {"d": [{"e": 0}]}, "f": 3}

    assert differences(fake, real, "r") == [
        "r.a: the fake sends number, the real API string",
        "r.b.c: not sent by the real API",
        "r.b.d[0].e: the fake sends boolean, the real API number",
    ]
