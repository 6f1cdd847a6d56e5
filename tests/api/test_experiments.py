"""POST /feedback and GET /ab/report through the test client."""

from __future__ import annotations

import time

import pytest

from app.api import service_of
from app.serving.ids import new_prediction_ids
from tests.api.helpers import check_schema
from tests.helpers import SETOSA, VIRGINICA


def test_feedback_roundtrip_and_correction(client):
    pid = client.post("/predict", json={"features": SETOSA}).get_json()["prediction_id"]
    r = client.post("/feedback", json={"prediction_id": pid, "label": "setosa"})
    assert r.status_code == 200, r.get_json()
    check_schema(r, "/feedback", "post")
    assert r.get_json()["correct"] is True and r.get_json()["label"] == 0
    r = client.post("/feedback", json={"prediction_id": pid, "label": 2})
    assert r.get_json()["correct"] is False and r.get_json()["corrected"] is True


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"prediction_id": "00000000-0000-0000-0000-000000000000", "label": 1}, 404, "no prediction with id"),
        ({"label": 1}, 400, "prediction_id must be"),
        ({"prediction_id": "x"}, 400, "label is missing"),
        ({"prediction_id": "x", "label": 3}, 400, "out of range"),
        ({"prediction_id": "x", "label": -1}, 400, "out of range"),
        ({"prediction_id": "x", "label": "rose"}, 400, "is not a class"),
        ({"prediction_id": "x", "label": True}, 400, "class index or a class name"),
        ({"prediction_id": 5, "label": 1}, 400, "prediction_id must be"),
        ({"prediction_id": "x", "label": 1, "extra": 1}, 400, "unknown field"),
        ({"feedback": []}, 400, "send {"),
        ({"feedback": [{"prediction_id": "x"}]}, 400, "feedback[0]: label is missing"),
    ],
)
def test_feedback_errors(client, body, status, message):
    r = client.post("/feedback", json=body)
    assert r.status_code == status and message in r.get_json()["error"]


def test_batch_feedback(client):
    ids = client.post("/predict", json={"instances": [SETOSA, VIRGINICA]}).get_json()["prediction_ids"]
    items = [
        {"prediction_id": ids[0], "label": 0},
        {"prediction_id": ids[1], "label": "versicolor"},
        {"prediction_id": "missing", "label": 0},
    ]
    r = client.post("/feedback", json={"feedback": items})
    assert r.status_code == 200
    check_schema(r, "/feedback", "post")
    body = r.get_json()
    assert body["accepted"] == 2 and body["not_found"] == ["missing"]
    assert [x["correct"] for x in body["results"]] == [True, False]


def test_unknown_feedback_id_that_is_not_ours_is_not_waited_for(client, app, monkeypatch):
    service = service_of(app)
    flushes: list[int] = []
    monkeypatch.setattr(service.prediction_log, "flush", lambda *a, **k: flushes.append(1) or True)
    r = client.post("/feedback", json={"prediction_id": "not-a-uuid", "label": 0})
    assert r.status_code == 404 and flushes == []
    r = client.post("/feedback", json={"prediction_id": "00000000-0000-4000-8000-000000000000", "label": 0})
    assert r.status_code == 404 and flushes == []  # a UUID, but not one this service issues (v7)
    old = new_prediction_ids(1, time.time() - 3600)[0]
    r = client.post("/feedback", json={"prediction_id": old, "label": 0})
    assert r.status_code == 404 and flushes == []  # ours, but an hour old: it would be in the store
    fresh = new_prediction_ids(1, time.time())[0]
    r = client.post("/feedback", json={"prediction_id": fresh, "label": 0})
    assert r.status_code == 404 and flushes == [1]  # just issued: may still be in a worker's buffer


def test_ab_report_counts_every_logged_request(client, app):
    for _ in range(40):
        client.post("/predict", json={"features": SETOSA})
    service_of(app).prediction_log.flush()
    r = client.get("/ab/report")
    assert r.status_code == 200
    check_schema(r, "/ab/report")
    variants = r.get_json()["variants"]
    assert sum(v["requests"] for v in variants.values()) == 40
    assert {v: variants[v]["expected_share"] for v in variants} == {"v1": 0.5, "v2": 0.5}


@pytest.mark.parametrize(
    "bad", ["yesterday", "nan", "inf", "1e300", "-1e300", "0001-01-01T00:00:00+14:00", "2026-01-01T00:00:00"]
)
def test_ab_report_refuses_a_bad_since(client, bad):
    r = client.get("/ab/report", query_string={"since": bad})
    assert r.status_code == 400 and "since" in r.get_json()["error"]


def test_ab_report_since_covers_every_period(client, app):
    client.post("/predict", json={"features": SETOSA})
    service_of(app).prediction_log.flush()
    r = client.get("/ab/report?since=2020-01-01T00:00:00Z")
    assert r.status_code == 200 and r.get_json()["since"].startswith("2020-01-01")
    assert sum(v["requests"] for v in r.get_json()["variants"].values()) == 1
