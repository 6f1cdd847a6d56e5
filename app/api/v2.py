"""The Open Inference Protocol (V2) endpoints, next to /predict and served by the same core.

``infer`` without a version goes through the A/B router (sticky by ``parameters.user_id`` or
``X-User-ID``); with a version, that version serves it. Either way the request is counted, logged,
seen by drift and labellable through /feedback exactly like a /predict request: it is one call of
``Service.predict``. The codec lives in ``app.api.inference_protocol``.
"""

from __future__ import annotations

import time
from importlib import metadata

from flask import Blueprint, Response, request

from app.api.http import accepts, current_service, json_response, read_body
from app.api.inference_protocol import (
    EXTENSIONS,
    HEADER_LENGTH,
    Tensor,
    encode_infer,
    model_metadata,
    parse_infer,
)
from app.api.predict import count_prediction_request
from app.errors import BadRequest, ModelUnavailable, NotFound
from app.serving.registry import ModelSet

bp = Blueprint("v2", __name__, url_prefix="/v2")

SERVER_NAME = "mlops-pipeline"
INFER_ENDPOINTS = frozenset({"v2.infer", "v2.infer_version"})
BINARY = "application/octet-stream"


@bp.after_request
def _count(response: Response) -> Response:
    if request.endpoint in INFER_ENDPOINTS:
        count_prediction_request(response)
    return response


@bp.get("")
@bp.get("/")
def server_metadata() -> Response:
    """The server's name, version and protocol extensions."""
    return json_response({"name": SERVER_NAME, "version": _server_version(), "extensions": EXTENSIONS})


@bp.get("/health/live")
def live() -> Response:
    """Live whenever the process answers."""
    return json_response({"live": True})


@bp.get("/health/ready")
def ready() -> Response:
    """Ready while some loaded version gets traffic (as /health's 200)."""
    serving = current_service().health().serving
    return json_response({"ready": serving}, 200 if serving else 503)


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model(name: str, version: str | None = None) -> Response:
    """The model's inputs and outputs, and its versions."""
    models = _models(name, version)
    versions = [version] if version is not None else list(models.manifest.get("versions", {}))
    return json_response(model_metadata(models.model_name, versions, models.feature_names, len(models.class_names)))


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> Response:
    """A version is ready when it is loaded; the model, when the router can send traffic to it."""
    models = _models(name, version)
    is_ready = version in models.versions if version is not None else current_service().health().serving
    body = {"name": models.model_name, "ready": is_ready}
    if version is not None:
        body["version"] = version
    return json_response(body, 200 if is_ready else 503)


@bp.post("/models/<name>/infer")
@accepts(BINARY, None)
def infer(name: str) -> Response:
    """Score the rows through the A/B router."""
    return _infer(name, None)


@bp.post("/models/<name>/versions/<version>/infer")
@accepts(BINARY, None)
def infer_version(name: str, version: str) -> Response:
    """Score the rows with this version."""
    return _infer(name, version)


def _infer(name: str, version: str | None) -> Response:
    started = time.perf_counter()
    service = current_service()
    state = service.state  # one snapshot: validation and prediction see the same models
    models = _models(name, version, state.models)
    if not models.versions:
        raise ModelUnavailable("no model is loaded; see GET /v2/health/ready")
    if request.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise BadRequest("compressed request bodies are not accepted; send Content-Encoding: identity")
    req = parse_infer(
        read_body(),
        request.headers.get(HEADER_LENGTH),
        models.feature_names,
        service.settings.max_batch,
        request.headers.get("X-User-ID"),
    )
    answer = service.predict(req.X, req.user_id, started, state, client=request.remote_addr, version=version)
    n = len(answer.prediction_ids)
    tensors = {
        "predict": lambda: Tensor("predict", "INT64", [n], answer.class_index),
        "predict_proba": lambda: Tensor("predict_proba", "FP64", [n, len(models.class_names)], answer.proba),
        "prediction_id": lambda: Tensor("prediction_id", "BYTES", [n], answer.prediction_ids),
        "feedback_token": lambda: Tensor("feedback_token", "BYTES", [n], answer.feedback_tokens),
    }
    chosen = [(tensors[output](), binary) for output, binary in req.outputs]
    body, header_length = encode_infer(models.model_name, answer.version, req.request_id, chosen)
    headers = {"X-Model-Version": answer.version}
    if header_length is None:
        return Response(body, mimetype="application/json", headers=headers)
    headers[HEADER_LENGTH] = str(header_length)
    return Response(body, mimetype=BINARY, headers=headers)


def _server_version() -> str:
    """The installed package's version; "unknown" where the code runs uninstalled (the Docker image)."""
    try:
        return metadata.version(SERVER_NAME)
    except metadata.PackageNotFoundError:
        return "unknown"


def _models(name: str, version: str | None, models: ModelSet | None = None) -> ModelSet:
    """The served set if ``name`` (and ``version``) are in its manifest; 404 naming what exists otherwise."""
    models = models or current_service().state.models
    if name != models.model_name:
        raise NotFound(f"no model {name[:64]!r}; models: {models.model_name}")
    if version is not None:
        models.known(version)
    return models
