"""POST /predict: one row or a batch, routed by the A/B router. Its request and error counters live here."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, request

from app.api.http import current_service, json_body, json_response
from app.api.validation import parse_predict
from app.errors import ModelUnavailable
from app.serving import metrics

bp = Blueprint("predict", __name__)


def count_prediction_request(response: Response) -> Response:
    """Count one prediction request (/predict or V2 infer), accepted or rejected, and its error status."""
    metrics.PREDICTION_REQUESTS.inc()
    if response.status_code >= 400:
        metrics.PREDICTION_ERRORS.labels(str(response.status_code)).inc()
    return response


# After-request hooks also run for responses made by the error handlers, so every /predict, accepted
# or rejected (by the app's request checks too), is counted here once, whatever raised.
bp.after_request(count_prediction_request)


@bp.post("/predict")
def predict() -> Response:
    """Validate the rows, route them to one version, answer with classes, probabilities and ids."""
    started = time.perf_counter()
    service = current_service()
    state = service.state  # one snapshot: validation and prediction see the same models
    if not state.models.versions:
        raise ModelUnavailable("no model is loaded; see GET /health")
    req = parse_predict(
        json_body(), state.models.feature_names, service.settings.max_batch, request.headers.get("X-User-ID")
    )
    result = service.predict(req.X, req.user_id, started, state, client=request.remote_addr)
    body: dict[str, Any]
    if req.batch:
        body = {
            "predictions": result.classes,
            "class_names": result.class_names,
            "probabilities": result.probabilities,
            "prediction_ids": result.prediction_ids,
            "feedback_tokens": result.feedback_tokens,
            "model_version": result.version,
            "timestamp": result.timestamp,
            "latency_ms": result.latency_ms,
        }
    else:
        body = {
            "prediction": result.classes[0],
            "class_name": result.class_names[0],
            "probabilities": result.probabilities[0],
            "model_version": result.version,
            "prediction_id": result.prediction_ids[0],
            "feedback_token": result.feedback_tokens[0],
            "timestamp": result.timestamp,
            "latency_ms": result.latency_ms,
        }
    return json_response(body, headers={"X-Model-Version": result.version})
