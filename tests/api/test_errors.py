"""The one error path: every error is JSON with its status, and stays small whatever the request quoted."""

from __future__ import annotations

import json

import pytest

from app.api import service_of
from app.api.errors import MAX_ERROR_CHARS
from app.errors import BadRequest, TooManyRequests
from tests.api.helpers import check_schema
from tests.helpers import ADMIN, SETOSA

TOKEN = ADMIN["Authorization"].removeprefix("Bearer ")
MANY = 70_000


def keys(n: int) -> dict[str, int]:
    return {f"key{i}": 1 for i in range(n)}


QUOTING = [
    ("post", "/predict", json.dumps(keys(MANY)), "unknown field(s): 'key0', 'key1', 'key10'"),
    ("post", "/predict", json.dumps({"features": keys(MANY)}), "unknown feature(s) 'key0', 'key1', 'key2'"),
    ("post", "/predict", json.dumps({"instances": [{"x" * 500_000: 1}]}), "unknown feature(s) 'xxxxx"),
    ("post", "/feedback", json.dumps({"prediction_id": "p", "label": 0, **keys(MANY)}), "unknown field(s)"),
    ("put", "/config", json.dumps({"weights": {"v" * 500_000: 1}}), "'vvvvv"),
    ("put", "/config", '{"weights": {"v1": ' + "9" * 4000 + "}}", "between 0 and 1000000"),
    ("put", "/config", json.dumps({"weights": {"v1": ["x" * 500_000]}}), "non-negative integer, got a list"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "start"), QUOTING, ids=[f"{m} {p} {s}"[:40] for m, p, _, s in QUOTING]
)
def test_an_error_quoting_the_request_stays_small(client, method, path, body, start):
    assert len(body) < 1024 * 1024  # under MAX_BODY_BYTES: the validator sees it all
    r = getattr(client, method)(path, data=body, content_type="application/json", headers=ADMIN)
    assert r.status_code == 400 and set(r.get_json()) == {"error"}
    error = r.get_json()["error"]
    assert start in error and len(error) <= MAX_ERROR_CHARS and len(r.data) <= MAX_ERROR_CHARS + 50


def test_seventy_thousand_unknown_keys_say_how_many(client):
    error = client.post("/predict", json=keys(MANY)).get_json()["error"]
    assert f"and {MANY - 5} more" in error and len(error) < 200


def test_every_error_message_is_capped_whoever_raised_it(client, app, monkeypatch):
    def loud(*args, **kwargs):
        raise BadRequest("x" * 100_000)

    monkeypatch.setattr(service_of(app), "predict", loud)
    r = client.post("/predict", json={"features": SETOSA})
    assert r.status_code == 400 and len(r.get_json()["error"]) == MAX_ERROR_CHARS
    assert r.get_json()["error"].endswith("…")
    check_schema(r, "/predict", "post")


def test_a_long_unknown_path_is_not_echoed_whole(client):
    r = client.get("/" + "a" * 5000)
    assert r.status_code == 404 and r.get_json()["error"].startswith("no such endpoint: GET /aaa")
    assert len(r.get_json()["error"]) < 150
    r = client.put("/" + "b" * 5000, data=b"x", content_type="text/plain")
    assert r.status_code == 404 and len(r.get_json()["error"]) < 150


def test_too_many_requests_carries_retry_after(client, app, monkeypatch):
    def busy(*args, **kwargs):
        raise TooManyRequests("slow down", retry_after=0)

    monkeypatch.setattr(service_of(app), "predict", busy)
    r = client.post("/predict", json={"features": SETOSA})
    assert r.status_code == 429 and r.headers["Retry-After"] == "1" and r.get_json() == {"error": "slow down"}


def test_unauthorized_says_how_to_authenticate(client):
    r = client.post("/models/reload")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="mlops"'
