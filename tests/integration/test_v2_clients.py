"""The Open Inference Protocol with the real clients from PyPI, against a live 2-worker gunicorn API:
tritonclient's HTTP client (binary tensors, its default, and JSON) and open-inference-openapi. Each gets
the classes and probabilities /predict gives for the same rows, and the counters, the prediction log,
drift and feedback see those requests.

KServe's own ``InferenceRESTClient`` is not installed: kserve 0.21 needs pandas < 3 (the stack pins
pandas 3.1), grpcio, fastapi and the kubernetes client.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import requests
import tritonclient.http as triton
from open_inference.openapi.client import OpenInferenceClient
from open_inference.openapi.types import InferenceRequest, RequestInput, RequestOutput
from tritonclient.utils import InferenceServerException

from tests.helpers import scrape, total, wait_until
from tests.serving.test_predictor import random_rows

pytestmark = pytest.mark.integration

MODEL = "iris"
ROWS = random_rows(200, seed=21).round(2)


@pytest.fixture(scope="module")
def triton_client(live_api):
    client = triton.InferenceServerClient(url=live_api.url.removeprefix("http://"), concurrency=1)
    yield client
    client.close()


def _predict(live_api, rows: np.ndarray, user: str | None = None) -> dict:
    body = {"instances": rows.tolist(), **({"user_id": user} if user else {})}
    response = requests.post(f"{live_api.url}/predict", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _triton_inputs(rows: np.ndarray, binary: bool) -> list[triton.InferInput]:
    tensor = triton.InferInput("features", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows.astype(np.float64), binary_data=binary)
    return [tensor]


def test_triton_client_reads_health_and_metadata(triton_client):
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert triton_client.is_model_ready(MODEL) and triton_client.is_model_ready(MODEL, "v1")
    assert not triton_client.is_model_ready("nope")
    server = triton_client.get_server_metadata()
    assert server["name"] == "mlops-pipeline" and "binary_tensor_data" in server["extensions"]
    model = triton_client.get_model_metadata(MODEL)
    assert model["versions"] == ["v1", "v2"] and model["inputs"][0]["shape"] == [-1, 4]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_client_gets_what_predict_gives(triton_client, live_api, binary):
    outputs = (
        None if binary else [triton.InferRequestedOutput(n, binary_data=False) for n in ("predict", "predict_proba")]
    )
    result = triton_client.infer(
        MODEL, _triton_inputs(ROWS, binary), outputs=outputs, parameters={"user_id": "carol"}, request_id="t-1"
    )
    response = result.get_response()
    expected = _predict(live_api, ROWS, "carol")
    assert response["model_version"] == expected["model_version"] and response["id"] == "t-1"
    np.testing.assert_array_equal(result.as_numpy("predict"), expected["predictions"])
    np.testing.assert_allclose(result.as_numpy("predict_proba"), expected["probabilities"], rtol=0, atol=1e-12)
    if binary:
        ids = result.as_numpy("prediction_id")
        assert ids.shape == (len(ROWS),) and len({i.decode() for i in ids}) == len(ROWS)


def test_triton_client_with_a_version_and_fp32_binary(triton_client, live_api):
    tensor = triton.InferInput("features", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS.astype(np.float32))
    result = triton_client.infer(MODEL, [tensor], model_version="v1")
    assert result.get_response()["model_version"] == "v1"
    health = requests.get(f"{live_api.url}/health", timeout=5).json()
    assert health["models"]["v1"]["batch_backend"] == "tl2cgen"
    # FP64 rows are compared as float32 too, so both answers are the same.
    v1 = triton_client.infer(MODEL, _triton_inputs(ROWS, True), model_version="v1").as_numpy("predict_proba")
    np.testing.assert_allclose(result.as_numpy("predict_proba"), v1, rtol=0, atol=1e-12)


def test_triton_client_sees_the_servers_errors(triton_client):
    bad = triton.InferInput("features", [2, 3], "FP64")
    bad.set_data_from_numpy(np.ones((2, 3)))
    with pytest.raises(InferenceServerException, match=r"expected \[N, 4\]"):
        triton_client.infer(MODEL, [bad])
    with pytest.raises(InferenceServerException, match="no model 'lilies'"):
        triton_client.infer("lilies", _triton_inputs(ROWS, True))
    with pytest.raises(InferenceServerException, match="has no version 'v9'"):
        triton_client.infer(MODEL, _triton_inputs(ROWS, True), model_version="v9")


def test_open_inference_client_gets_what_predict_gives(live_api):
    with httpx.Client(timeout=10) as http:
        client = OpenInferenceClient(base_url=live_api.url, httpx_client=http)
        client.check_server_liveness()
        client.check_server_readiness()
        client.check_model_readiness(MODEL)
        client.check_model_version_readiness(MODEL, "v1")
        assert client.read_server_metadata().name == "mlops-pipeline"
        assert client.read_model_metadata(MODEL).versions == ["v1", "v2"]
        assert client.read_model_version_metadata(MODEL, "v2").versions == ["v2"]
        request = InferenceRequest(
            inputs=[RequestInput(name="features", shape=list(ROWS.shape), datatype="FP64", data=ROWS.tolist())],
            outputs=[RequestOutput(name="predict"), RequestOutput(name="predict_proba")],
            parameters={"user_id": "dave"},
        )
        response = client.model_infer(MODEL, request=request)
    expected = _predict(live_api, ROWS, "dave")
    assert response.model_name == MODEL and response.model_version == expected["model_version"]
    by_name = {o.name: o for o in response.outputs}
    assert by_name["predict"].shape == [len(ROWS)] and by_name["predict_proba"].shape == [len(ROWS), 3]
    assert [int(v) for v in by_name["predict"].data.__root__] == expected["predictions"]
    proba = np.reshape(by_name["predict_proba"].data.__root__, (len(ROWS), 3))
    np.testing.assert_allclose(proba, expected["probabilities"], rtol=0, atol=1e-12)


def test_v2_requests_reach_the_counters_the_log_drift_and_feedback(api_server_factory):
    server = api_server_factory(extra_env={"DRIFT_CLIENT_SHARE": "1"})
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    shifted = ROWS[:60] * np.array([1.0, 1.0, 1.8, 2.5])  # long petals: far from the training data
    before = scrape(server.url)
    outputs = [triton.InferRequestedOutput(n) for n in ("predict", "prediction_id", "feedback_token")]
    result = client.infer(MODEL, _triton_inputs(shifted, True), outputs=outputs)  # routed: in the experiment
    client.close()
    after = scrape(server.url)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    version = result.get_response()["model_version"]
    assert grew("prediction_requests_total") == 1 and grew("model_version_requests_total", version=version) == 1
    assert grew("predictions_total", version=version) == 60
    ids = [i.decode() for i in result.as_numpy("prediction_id")]
    tokens = [t.decode() for t in result.as_numpy("feedback_token")]
    labels = result.as_numpy("predict").tolist()
    feedback = [
        {"prediction_id": pid, "label": label, "feedback_token": token}
        for pid, label, token in zip(ids, labels, tokens, strict=True)
    ]
    answer = requests.post(f"{server.url}/feedback", json={"feedback": feedback}, timeout=10).json()
    # Labels for rows the worker has not flushed yet are queued and applied when the rows are written.
    assert answer["accepted"] + len(answer["queued"]) == 60 and answer["not_found"] == []

    def drift() -> dict:
        return requests.get(f"{server.url}/drift", timeout=5).json()

    # Each worker caches its drift answer for a second: both conditions are read from one answer.
    wait_until(
        lambda: (answer := drift())["samples"] == 60 and answer["drift_detected"] is True,
        timeout=15,
        message="the 60 shifted V2 rows in the drift window, detected as drift",
    )

    def in_report() -> dict:
        return requests.get(f"{server.url}/ab/report", timeout=5).json()["variants"][version]

    wait_until(lambda: in_report()["labeled"] == 60, timeout=10, message="the 60 labels in the A/B report")
    assert in_report()["correct"] == 60 and in_report()["requests"] == 60  # each label was the predicted class
