"""POST /feedback and GET /ab/report through the test client."""

from __future__ import annotations

import time

import pytest

from app.api import service_of
from app.clock import iso
from app.serving.ids import new_prediction_ids
from tests.api.helpers import check_schema
from tests.helpers import ADMIN, SETOSA, VIRGINICA


def predict(client, rows=None):
    body = {"instances": rows} if rows else {"features": SETOSA}
    return client.post("/predict", json=body).get_json()


def flushed(app):
    assert service_of(app).prediction_log.flush()


def test_feedback_roundtrip_needs_the_token_and_relabelling_the_admin(client, app):
    answer = predict(client)
    pid, token = answer["prediction_id"], answer["feedback_token"]
    flushed(app)
    r = client.post("/feedback", json={"prediction_id": pid, "label": "setosa", "feedback_token": token})
    assert r.status_code == 200, r.get_json()
    check_schema(r, "/feedback", "post")
    assert r.get_json()["correct"] is True and r.get_json()["label"] == 0 and r.get_json()["corrected"] is False
    again = client.post("/feedback", json={"prediction_id": pid, "label": 2, "feedback_token": token})
    assert again.status_code == 409 and "relabelling needs the admin token" in again.get_json()["error"]
    admin = client.post("/feedback", json={"prediction_id": pid, "label": 2}, headers=ADMIN)
    assert admin.status_code == 200 and admin.get_json()["correct"] is False and admin.get_json()["corrected"] is True
    counts = service_of(app).store.variant_counts(experiment_id=service_of(app).experiment.id)
    assert sum(c.labeled for c in counts) == 1 and sum(c.correct for c in counts) == 0


@pytest.mark.parametrize(
    ("token", "message"),
    [(None, "feedback_token is missing"), ("A" * 22, "feedback_token does not match")],
)
def test_feedback_without_proof_changes_nothing(client, app, token, message):
    pid = predict(client)["prediction_id"]
    flushed(app)
    body = {"prediction_id": pid, "label": 2} | ({"feedback_token": token} if token else {})
    r = client.post("/feedback", json=body)
    assert r.status_code == 403 and message in r.get_json()["error"]
    assert service_of(app).store.find_prediction(pid)["label"] is None


def test_another_predictions_token_does_not_work(client, app):
    first, second = predict(client), predict(client)
    flushed(app)
    body = {"prediction_id": first["prediction_id"], "label": 0, "feedback_token": second["feedback_token"]}
    assert client.post("/feedback", json=body).status_code == 403


def test_a_wrong_admin_token_is_refused_not_downgraded(client):
    pid = predict(client)["prediction_id"]
    r = client.post("/feedback", json={"prediction_id": pid, "label": 0}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_a_label_before_its_row_is_stored_is_queued_at_once_and_applied(make_app, monkeypatch):
    app = make_app(log_flush_seconds=60)  # the row stays in the worker's buffer until stop or flush
    c = app.test_client()
    answer = predict(c)
    body = {"prediction_id": answer["prediction_id"], "label": 0, "feedback_token": answer["feedback_token"]}

    def must_not_wait(*args, **kwargs):
        raise AssertionError("feedback waited on the request thread")

    with monkeypatch.context() as patch:
        patch.setattr(service_of(app).prediction_log, "flush", must_not_wait)
        patch.setattr("app.serving.service.time.sleep", must_not_wait)
        r = c.post("/feedback", json=body)
    assert r.status_code == 202 and r.get_json() == {
        "prediction_id": answer["prediction_id"],
        "label": 0,
        "status": "queued",
    }
    flushed(app)
    assert service_of(app).store.find_prediction(answer["prediction_id"])["label"] == 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"prediction_id": "not-a-uuid", "label": 1}, 404, "no prediction with id"),
        ({"prediction_id": "00000000-0000-0000-0000-000000000000", "label": 1}, 404, "no prediction with id"),
        ({"label": 1}, 400, "prediction_id must be"),
        ({"prediction_id": "x"}, 400, "label is missing"),
        ({"prediction_id": "x", "label": 3}, 400, "out of range"),
        ({"prediction_id": "x", "label": -1}, 400, "out of range"),
        ({"prediction_id": "x", "label": "rose"}, 400, "is not a class"),
        ({"prediction_id": "x", "label": True}, 400, "class index or a class name"),
        ({"prediction_id": 5, "label": 1}, 400, "prediction_id must be"),
        ({"prediction_id": "x", "label": 1, "feedback_token": 7}, 400, "feedback_token must be"),
        ({"prediction_id": "x", "label": 1, "extra": 1}, 400, "unknown field"),
        ({"feedback": []}, 400, "send {"),
        ({"feedback": [{"prediction_id": "x"}]}, 400, "feedback[0]: label is missing"),
    ],
)
def test_feedback_errors(client, body, status, message):
    r = client.post("/feedback", json=body, headers=ADMIN)
    assert r.status_code == status and message in r.get_json()["error"]


def test_an_old_id_that_is_not_stored_is_not_queued(client, app):
    old = new_prediction_ids(1, time.time() - 3600)[0]
    r = client.post("/feedback", json={"prediction_id": old, "label": 0}, headers=ADMIN)
    assert r.status_code == 404
    flushed(app)
    assert service_of(app).store.find_prediction(old) is None


def test_batch_feedback(client, app):
    answer = predict(client, [SETOSA, VIRGINICA, SETOSA])
    ids, tokens = answer["prediction_ids"], answer["feedback_tokens"]
    flushed(app)
    items = [
        {"prediction_id": ids[0], "label": 0, "feedback_token": tokens[0]},
        {"prediction_id": ids[1], "label": "versicolor", "feedback_token": tokens[1]},
        {"prediction_id": ids[2], "label": 0, "feedback_token": tokens[0]},
    ]
    r = client.post("/feedback", json={"feedback": items})
    assert r.status_code == 200
    check_schema(r, "/feedback", "post")
    body = r.get_json()
    assert body["accepted"] == 2 and [x["correct"] for x in body["results"]] == [True, False]
    assert body["queued"] == [] and body["not_found"] == []
    assert [x["prediction_id"] for x in body["rejected"]] == [ids[2]]


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
    assert r.status_code == 200 and sum(v["requests"] for v in r.get_json()["variants"].values()) == 1
    check_schema(r, "/ab/report")
    # Earlier than anything counted: clamped to the oldest counted hour, and said so.
    hour = int(time.time() // 3600) * 3600
    assert r.get_json()["since_clamped"] is True and r.get_json()["since"] == iso(hour)
    within = client.get("/ab/report", query_string={"since": str(time.time())}).get_json()
    assert within["since_clamped"] is False and within["since"] == iso(hour)  # rounded down to the hour


def test_ab_timeline_has_each_versions_points_and_the_periods(client, app):
    answers = [predict(client) for _ in range(30)]
    flushed(app)
    items = [{"prediction_id": a["prediction_id"], "label": 0, "feedback_token": a["feedback_token"]} for a in answers]
    assert client.post("/feedback", json={"feedback": items}).get_json()["accepted"] == 30
    assert client.put("/config", json={"weights": {"v1": 90, "v2": 10}}, headers=ADMIN).status_code == 200
    predict(client)
    flushed(app)

    r = client.get("/ab/timeline")
    assert r.status_code == 200
    check_schema(r, "/ab/timeline")
    body = r.get_json()
    first, second = body["periods"]
    assert first["ended_at"] == second["started_at"] and second["ended_at"] is None
    assert second["weights"] == {"v1": 90, "v2": 10} and second["shares"] == {"v1": 0.9, "v2": 0.1}
    assert (second["shadow"], second["policy"]) == ([], None) and body["shadow"] == {}
    points = [p for series in body["versions"].values() for p in series]
    assert sum(p["requests"] for p in points) == 31
    assert {p["experiment_id"] for p in points} == {first["id"], second["id"]}
    assert sum(series[-1]["labeled"] for series in body["versions"].values()) == 30
    assert all(series[-1]["accuracy"] == 1.0 for series in body["versions"].values() if series[-1]["labeled"])
    later = client.get("/ab/timeline", query_string={"since": str(time.time() + 7200)}).get_json()
    assert later["versions"] == {} and [p["id"] for p in later["periods"]] == [second["id"]]


@pytest.mark.parametrize("bad", ["yesterday", "nan", "2026-01-01T00:00:00"])
def test_ab_timeline_refuses_a_bad_since(client, bad):
    r = client.get("/ab/timeline", query_string={"since": bad})
    assert r.status_code == 400 and "since" in r.get_json()["error"]
    check_schema(r, "/ab/timeline")
