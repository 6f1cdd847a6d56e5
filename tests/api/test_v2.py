"""The Open Inference Protocol (V2) endpoints through the test client: metadata, health, JSON and binary
tensors, routing and versions, hostile input, and the same counters, log and feedback as /predict."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from open_inference.openapi.types import InferenceResponse, MetadataModelResponse, MetadataServerResponse

from app.api import service_of
from tests.api.helpers import check_schema, counter, served
from tests.helpers import SETOSA, VIRGINICA

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = [SETOSA, VIRGINICA, [6.0, 2.9, 4.5, 1.5]]
INFER = "/v2/models/iris/infer"


def tensor(rows: list[list[float]], datatype: str = "FP64", **extra: Any) -> dict[str, Any]:
    return {"name": "features", "shape": [len(rows), len(rows[0])], "datatype": datatype, "data": rows, **extra}


def outputs_of(body: dict[str, Any]) -> dict[str, Any]:
    return {o["name"]: o for o in body["outputs"]}


def binary_request(X: np.ndarray, datatype: str, **payload: Any) -> tuple[bytes, dict[str, str]]:
    raw = X.tobytes()
    header = {
        "inputs": [
            {"name": "x", "shape": list(X.shape), "datatype": datatype, "parameters": {"binary_data_size": len(raw)}}
        ],
        **payload,
    }
    head = json.dumps(header).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}


def decode_binary(response: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON header and every output as an array (BYTES as a list of str)."""
    n = int(response.headers["Inference-Header-Content-Length"])
    data = response.get_data()
    header, rest = json.loads(data[:n]), data[n:]
    values: dict[str, Any] = {}
    for out in header["outputs"]:
        size = out["parameters"]["binary_data_size"]
        chunk, rest = rest[:size], rest[size:]
        if out["datatype"] == "BYTES":
            items, i = [], 0
            while i < len(chunk):
                length = int.from_bytes(chunk[i : i + 4], "little")
                items.append(chunk[i + 4 : i + 4 + length].decode())
                i += 4 + length
            values[out["name"]] = items
        else:
            dtype = {"INT64": "<i8", "FP64": "<f8"}[out["datatype"]]
            values[out["name"]] = np.frombuffer(chunk, dtype=dtype).reshape(out["shape"])
    assert rest == b""
    return header, values


def test_server_metadata_and_health(client):
    for path in ("/v2", "/v2/"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
        body = MetadataServerResponse.parse_obj(r.get_json())
        assert body.name == "mlops-pipeline" and "binary_tensor_data" in body.extensions
        check_schema(r, "/v2")
    assert client.get("/v2/health/live").get_json() == {"live": True}
    r = client.get("/v2/health/ready")
    assert r.status_code == 200 and r.get_json() == {"ready": True}


def test_model_metadata_names_the_manifests_features_and_versions(client):
    r = client.get("/v2/models/iris")
    check_schema(r, "/v2/models/{name}")
    body = MetadataModelResponse.parse_obj(r.get_json())
    assert body.name == "iris" and body.versions == ["v1", "v2"]
    assert [(t.name, t.datatype, t.shape) for t in body.inputs] == [("features", "FP32", [-1, 4])]
    assert {t.name: t.shape for t in body.outputs} == {
        "predict": [-1],
        "predict_proba": [-1, 3],
        "prediction_id": [-1],
        "feedback_token": [-1],
    }
    assert r.get_json()["parameters"]["feature_names"] == FEATURES
    versioned = client.get("/v2/models/iris/versions/v1").get_json()
    assert versioned["versions"] == ["v1"]
    for path in ("/v2/models/iris/ready", "/v2/models/iris/versions/v2/ready"):
        r = client.get(path)
        assert r.status_code == 200 and r.get_json()["ready"] is True


@pytest.mark.parametrize(
    "path",
    ["/v2/models/nope", "/v2/models/nope/ready", "/v2/models/iris/versions/v9", "/v2/models/iris/versions/v9/ready"],
)
def test_unknown_models_and_versions_are_404_json(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/json"
    assert "iris" in r.get_json()["error"] or "v1, v2" in r.get_json()["error"]


def test_json_infer_matches_predict_for_the_same_rows_and_user(client):
    r = client.post(INFER, json={"id": "req-1", "inputs": [tensor(ROWS)], "parameters": {"user_id": "alice"}})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    check_schema(r, "/v2/models/{name}/infer", "post")
    body = InferenceResponse.parse_obj(r.get_json())
    assert body.model_name == "iris" and body.id == "req-1"
    out = outputs_of(r.get_json())
    expected = client.post("/predict", json={"instances": ROWS, "user_id": "alice"}).get_json()
    assert body.model_version == expected["model_version"] == r.headers["X-Model-Version"]
    assert out["predict"]["data"] == expected["predictions"] and out["predict"]["shape"] == [3]
    assert out["predict"]["datatype"] == "INT64" and out["predict_proba"]["shape"] == [3, 3]
    np.testing.assert_allclose(np.reshape(out["predict_proba"]["data"], (3, 3)), expected["probabilities"], atol=0)
    assert len(set(out["prediction_id"]["data"])) == 3 and len(out["feedback_token"]["data"]) == 3


@pytest.mark.parametrize(
    "inputs",
    [
        [tensor(ROWS)],
        [{**tensor(ROWS), "data": [v for row in ROWS for v in row]}],  # flat data
        [tensor([[int(v) for v in row] for row in ROWS], "INT64")],
        [tensor(ROWS, "FP32")],
        [
            {"name": name, "shape": [len(ROWS)], "datatype": "FP64", "data": [row[i] for row in ROWS]}
            for i, name in reversed(list(enumerate(FEATURES)))  # per feature, in any order
        ],
    ],
    ids=["nested", "flat", "int64", "fp32", "per-feature"],
)
def test_every_input_layout_gives_the_same_answer(client, app, inputs):
    X = np.array(inputs[0]["data"] if len(inputs) == 1 else ROWS, dtype=np.float64).reshape(len(ROWS), 4)
    body = {"inputs": inputs, "outputs": [{"name": "predict_proba"}]}
    r = client.post("/v2/models/iris/versions/v2/infer", json=body)
    assert r.status_code == 200, r.get_json()
    out = outputs_of(r.get_json())
    assert list(out) == ["predict_proba"]
    estimator = service_of(app).models.versions["v2"].estimator
    np.testing.assert_allclose(np.reshape(out["predict_proba"]["data"], (3, 3)), estimator.predict_proba(X), atol=1e-12)


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "INT32", "INT64"])
def test_binary_tensors_in_and_out(client, app, datatype):
    dtype = {"FP32": "<f4", "FP64": "<f8", "INT32": "<i4", "INT64": "<i8"}[datatype]
    X = (np.array(ROWS) * (1 if datatype.startswith("FP") else 10)).astype(dtype)
    data, headers = binary_request(X, datatype, parameters={"binary_data_output": True})
    r = client.post("/v2/models/iris/versions/v1/infer", data=data, headers=headers)
    assert r.status_code == 200, r.data[:300]
    assert r.headers["Content-Type"] == "application/octet-stream"
    header, values = decode_binary(r)
    assert header["model_version"] == "v1" and [o["name"] for o in header["outputs"]] == [
        "predict",
        "predict_proba",
        "prediction_id",
        "feedback_token",
    ]
    estimator = service_of(app).models.versions["v1"].estimator
    expected = estimator.predict_proba(X.astype(np.float64))
    np.testing.assert_allclose(values["predict_proba"], expected, atol=1e-12)
    np.testing.assert_array_equal(values["predict"], expected.argmax(axis=1))
    assert len(values["prediction_id"]) == 3 and all(len(i) == 36 for i in values["prediction_id"])


def test_binary_and_json_outputs_can_be_mixed_per_output(client):
    data, headers = binary_request(
        np.array(ROWS, dtype="<f4"),
        "FP32",
        outputs=[{"name": "predict", "parameters": {"binary_data": True}}, {"name": "prediction_id"}],
    )
    r = client.post(INFER, data=data, headers=headers)
    n = int(r.headers["Inference-Header-Content-Length"])
    header = json.loads(r.get_data()[:n])
    predict, ids = header["outputs"]
    assert predict["parameters"] == {"binary_data_size": 24} and "data" not in predict
    assert len(ids["data"]) == 3 and len(r.get_data()) == n + 24
    assert np.frombuffer(r.get_data()[n:], "<i8").tolist() == [0, 2, 1]


def test_a_client_that_sends_no_content_type_is_served_unless_it_is_a_browser(client):
    r = client.post(INFER, data=json.dumps({"inputs": [tensor(ROWS)]}))
    assert r.status_code == 200
    r = client.post(INFER, data=json.dumps({"inputs": [tensor(ROWS)]}), content_type="text/plain")
    assert r.status_code == 415 and r.headers["Content-Type"] == "application/json"
    # A browser's cross-site fetch of an untyped Blob needs no preflight, but it says where it comes from.
    served_before = served()
    r = client.post(INFER, data=json.dumps({"inputs": [tensor(ROWS)]}), headers={"Origin": "https://evil.example"})
    assert r.status_code == 415 and served() == served_before


def test_routing_is_sticky_like_predict_and_a_version_is_counted_as_served(client):
    seen = {
        client.post(INFER, json={"inputs": [tensor([SETOSA])]}, headers={"X-User-ID": "bob"}).get_json()[
            "model_version"
        ]
        for _ in range(10)
    }
    assert len(seen) == 1
    assert seen == {client.post("/predict", json={"features": SETOSA, "user_id": "bob"}).get_json()["model_version"]}
    before = counter("model_version_requests_total", version="v1")
    for _ in range(3):
        client.post("/v2/models/iris/versions/v1/infer", json={"inputs": [tensor([SETOSA])]})
    assert counter("model_version_requests_total", version="v1") - before == 3


def test_infer_is_counted_logged_and_labelled_like_predict(client, app):
    requests_before, served_before = counter("prediction_requests_total"), served()
    rows_before = counter("predictions_total", version="v2", **{"class": "setosa"})
    r = client.post("/v2/models/iris/versions/v2/infer", json={"inputs": [tensor(ROWS)]})
    out = outputs_of(r.get_json())
    assert counter("prediction_requests_total") - requests_before == 1 and served() - served_before == 1
    assert counter("predictions_total", version="v2", **{"class": "setosa"}) - rows_before == 1
    service = service_of(app)
    service.prediction_log.flush()
    pid, token = out["prediction_id"]["data"][1], out["feedback_token"]["data"][1]
    stored = service.store.find_prediction(pid)
    assert stored is not None and stored["model_version"] == "v2"
    r = client.post("/feedback", json={"prediction_id": pid, "label": "virginica", "feedback_token": token})
    assert r.status_code == 200 and r.get_json()["correct"] is True


def test_a_versioned_request_is_outside_the_experiment_a_routed_one_inside(client, app):
    def report_requests() -> int:
        service_of(app).prediction_log.flush()
        return sum(v["requests"] for v in client.get("/ab/report").get_json()["variants"].values())

    before = report_requests()
    client.post("/v2/models/iris/versions/v1/infer", json={"inputs": [tensor(ROWS)]})
    assert report_requests() == before  # the router did not assign it: no sample-ratio skew
    client.post(INFER, json={"inputs": [tensor(ROWS)]})
    assert report_requests() == before + 3


def _hostile() -> list[tuple[Any, dict[str, str], str]]:
    good = tensor([SETOSA])
    nan = np.array([SETOSA], dtype="<f4")
    nan[0, 1] = np.nan
    nan_body, nan_headers = binary_request(nan, "FP32")
    short_body, short_headers = binary_request(np.array([SETOSA], dtype="<f4"), "FP32")
    return [
        ({"inputs": []}, {}, "non-empty list"),
        ({"inputs": [good], "extra": 1}, {}, "unknown field"),
        ({"inputs": [{**good, "shape": [1, 3]}]}, {}, "'data' is nested as [1, 4]; the shape is [1, 3]"),
        ({"inputs": [{**good, "shape": [2, 2], "data": [[1, 2], [3, 4]]}]}, {}, "expected [N, 4]"),
        ({"inputs": [{**good, "data": [[1, 2], [3, 4]]}]}, {}, "nested as [2, 2]; the shape is [1, 4]"),
        ({"inputs": [{**good, "shape": [1, 3], "data": [1, 2, 3, 4]}]}, {}, "the shape needs 3"),
        ({"inputs": [{**good, "shape": [0, 10**30], "data": []}]}, {}, "a dimension of its shape is above the limit"),
        ({"inputs": [{**good, "datatype": "INT32", "data": [[1, 2, 3, 2**40]]}]}, {}, "outside the range of int32"),
        ({"inputs": [good], "id": "\ud800"}, {}, "'id' must be a string"),
        ({"inputs": [{**good, "shape": [1, 3], "data": [1, 2, 3]}]}, {}, "expected [N, 4]"),
        ({"inputs": [{**good, "datatype": "BOOL"}]}, {}, "not supported"),
        ({"inputs": [{**good, "data": [[1, 2, 3, "4"]]}]}, {}, "str values"),
        ({"inputs": [{**good, "data": [[1, 2, 3, True]]}]}, {}, "bool values"),
        ({"inputs": [{**good, "data": [[1, 2, 3, None]]}]}, {}, "NoneType values"),
        ({"inputs": [{**good, "data": [[1, 2, 3.5, 4]], "datatype": "INT64"}]}, {}, "float values"),
        ({"inputs": [{**good, "data": [[1, 2, [3], 4]]}]}, {}, "list values"),
        ({"inputs": [{**good, "data": [[1, 2, 3, 1e39]]}]}, {}, "too large"),
        ({"inputs": [{**good, "data": [[1, 2, 3, 10**400]]}]}, {}, "too large"),
        ({"inputs": [{**good, "shape": [0, 4], "data": []}]}, {}, "0 rows"),
        ({"inputs": [{**good, "shape": [4], "data": SETOSA}]}, {}, "one [N] tensor named"),
        ({"inputs": [good], "outputs": [{"name": "logits"}]}, {}, "unknown output"),
        ({"inputs": [good], "outputs": [{"name": "predict"}, {"name": "predict"}]}, {}, "twice"),
        ({"inputs": [good], "parameters": {"user_id": ["x"]}}, {}, "user_id"),
        ({"inputs": [good], "id": 7}, {}, "'id' must be a string"),
        ({"inputs": [{**good, "parameters": {"binary_data_size": 16}}]}, {}, "either 'data'"),
        (nan_body, nan_headers, "the value at [0, 1] is missing or NaN"),
        (short_body, {**short_headers, "Inference-Header-Content-Length": "\u00b2"}, "byte count"),
        (short_body[:-4], short_headers, "runs past the end"),
        (short_body + b"xx", short_headers, "2 bytes of binary data after"),
        (short_body, {**short_headers, "Inference-Header-Content-Length": "99999"}, "but the body has"),
        (short_body, {**short_headers, "Inference-Header-Content-Length": "-5"}, "byte count"),
        (b"{not json", {"Content-Type": "application/json"}, "not valid JSON"),
    ]


@pytest.mark.parametrize(("body", "headers", "message"), _hostile())
def test_hostile_input_is_a_clear_400_that_changes_nothing(client, app, body, headers, message):
    served_before = served()
    errors_before = counter("prediction_errors_total", code="400")
    r = client.post(INFER, data=body, headers=headers) if isinstance(body, bytes) else client.post(INFER, json=body)
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/json"
    assert message in r.get_json()["error"]
    assert served() == served_before
    assert counter("prediction_errors_total", code="400") - errors_before == 1
    service = service_of(app)
    service.prediction_log.flush()
    assert service.store.count_predictions() == 0


def test_a_batch_over_the_limit_is_refused(make_app):
    client = make_app(max_batch=2).test_client()
    r = client.post(INFER, json={"inputs": [tensor(ROWS)]})
    assert r.status_code == 400 and "the limit is 8" in r.get_json()["error"]


def test_a_version_that_failed_to_load_is_503_and_an_unknown_one_404(make_app, settings):
    (settings.models_dir / "model_v1.pkl").write_bytes(b"tampered")
    client = make_app().test_client()
    r = client.post("/v2/models/iris/versions/v1/infer", json={"inputs": [tensor([SETOSA])]})
    assert r.status_code == 503 and "not loaded" in r.get_json()["error"]
    assert client.get("/v2/models/iris/versions/v1/ready").status_code == 503
    r = client.post("/v2/models/iris/versions/v7/infer", json={"inputs": [tensor([SETOSA])]})
    assert r.status_code == 404 and "versions: v1, v2" in r.get_json()["error"]
    r = client.post("/v2/models/other/infer", json={"inputs": [tensor([SETOSA])]})
    assert r.status_code == 404 and "models: iris" in r.get_json()["error"]


def test_not_ready_when_nothing_is_loaded(make_app, settings):
    for version in ("v1", "v2"):
        (settings.models_dir / f"model_{version}.pkl").write_bytes(b"tampered")
    client = make_app().test_client()
    r = client.get("/v2/health/ready")
    assert r.status_code == 503 and r.get_json() == {"ready": False}
    assert client.get("/v2/health/live").status_code == 200
    r = client.post(INFER, json={"inputs": [tensor([SETOSA])]})
    assert r.status_code == 503 and r.headers["Content-Type"] == "application/json"


def test_the_model_name_comes_from_the_manifest(make_app, settings):
    manifest = json.loads((settings.models_dir / "manifest.json").read_text())
    (settings.models_dir / "manifest.json").write_text(json.dumps({**manifest, "model_name": "flowers"}))
    client = make_app().test_client()
    assert client.get("/v2/models/flowers").get_json()["name"] == "flowers"
    assert client.get("/v2/models/iris").status_code == 404
    r = client.post("/v2/models/flowers/infer", json={"inputs": [tensor([SETOSA])]})
    assert r.status_code == 200 and r.get_json()["model_name"] == "flowers"
