"""POST /predict through the test client: the seed's shapes, routing, hostile input, limits, counters."""

from __future__ import annotations

import pytest

from app.api import service_of
from tests.api.helpers import check_schema, counter, served
from tests.helpers import SETOSA, VIRGINICA

CLASSES = ("setosa", "versicolor", "virginica")


def predictions_counted() -> float:
    return sum(counter("predictions_total", version=v, **{"class": c}) for v in ("v1", "v2") for c in CLASSES)


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
    r = client.post("/predict", json={"features": dict(zip(names, VIRGINICA, strict=True))})
    assert r.status_code == 200 and r.get_json()["class_name"] == "virginica"


def test_batch_is_one_variant_and_counts_rows(client, app):
    before_rows, before_served = predictions_counted(), served()
    r = client.post("/predict", json={"instances": [SETOSA, VIRGINICA, SETOSA]})
    assert r.status_code == 200
    body = r.get_json()
    assert body["predictions"] == [0, 2, 0] and body["class_names"] == ["setosa", "virginica", "setosa"]
    assert len(set(body["prediction_ids"])) == 3 and len(body["probabilities"]) == 3
    check_schema(r, "/predict", "post")
    assert predictions_counted() - before_rows == 3
    assert served() - before_served == 1  # one request, one version
    service = service_of(app)
    service.prediction_log.flush()
    assert service.store.count_predictions() == 3


def test_sticky_user_sees_one_version(client):
    seen = {
        client.post("/predict", json={"features": SETOSA, "user_id": "alice"}).get_json()["model_version"]
        for _ in range(20)
    }
    seen_header = {
        client.post("/predict", json={"features": SETOSA}, headers={"X-User-ID": "alice"}).get_json()["model_version"]
        for _ in range(20)
    }
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
    (b'{"features": [' + b"9" * 400 + b", 3.5, 1.4, 0.2]}", "too large"),
    (b'{"features": [' + b"9" * 5000 + b", 3.5, 1.4, 0.2]}", "not valid JSON"),
    (b'{"features": "5.1,3.5,1.4,0.2"}', "list of 4 numbers"),
    (b'{"features": {"sepal_length": 5.1}}', "missing feature"),
    (
        b'{"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2, "x": 1}}',
        "unknown feature",
    ),
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


@pytest.mark.parametrize(("body", "message"), BAD_BODIES, ids=[m + str(i) for i, (_, m) in enumerate(BAD_BODIES)])
def test_bad_input_is_a_clear_400_and_changes_nothing(client, app, body, message):
    served_before = served()
    requests_before = counter("prediction_requests_total")
    errors_before = counter("prediction_errors_total", code="400")
    r = client.post("/predict", data=body, content_type="application/json")
    assert r.status_code == 400
    assert set(r.get_json()) == {"error"} and message in r.get_json()["error"]
    check_schema(r, "/predict", "post")
    assert served() == served_before
    assert counter("prediction_requests_total") == requests_before + 1
    assert counter("prediction_errors_total", code="400") == errors_before + 1
    service = service_of(app)
    service.prediction_log.flush()
    assert service.store.count_predictions() == 0


def test_batch_over_the_limit(make_app):
    r = make_app(max_batch=5).test_client().post("/predict", json={"instances": [SETOSA] * 6})
    assert r.status_code == 400 and "limit is 5" in r.get_json()["error"]


def test_body_over_the_limit_is_a_counted_413(client):
    body = b'{"instances": [' + b"[5.1, 3.5, 1.4, 0.2]," * 60_000 + b"[5.1, 3.5, 1.4, 0.2]]}"
    assert len(body) > 1024 * 1024
    before = counter("prediction_errors_total", code="413")
    r = client.post("/predict", data=body, content_type="application/json")
    assert r.status_code == 413 and "larger than" in r.get_json()["error"]
    assert counter("prediction_errors_total", code="413") == before + 1


def test_no_models_means_a_counted_503(make_app, tmp_path):
    c = make_app(models_dir=tmp_path / "empty").test_client()
    before = counter("prediction_errors_total", code="503")
    r = c.post("/predict", json={"features": SETOSA})
    assert r.status_code == 503 and "no model" in r.get_json()["error"]
    assert counter("prediction_errors_total", code="503") == before + 1


def test_an_unexpected_failure_is_a_counted_json_500_without_traceback(client, app, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service_of(app), "predict", broken)
    before = counter("prediction_errors_total", code="500")
    r = client.post("/predict", json={"features": SETOSA})
    assert r.status_code == 500 and r.get_json() == {"error": "internal error; see the server log"}
    assert counter("prediction_errors_total", code="500") == before + 1


def test_errors_elsewhere_are_not_prediction_errors(client):
    before = sum(counter("prediction_errors_total", code=c) for c in ("400", "404", "405"))
    assert client.post("/feedback", data=b"nope", content_type="application/json").status_code == 400
    assert client.get("/nope").status_code == 404
    assert client.get("/predict").status_code == 405
    assert sum(counter("prediction_errors_total", code=c) for c in ("400", "404", "405")) == before
