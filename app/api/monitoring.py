"""What operators and Prometheus read: /health, /drift, /drift/history, /metrics."""

from __future__ import annotations

from flask import Blueprint, Response, request

from app.api.http import current_service, json_response
from app.api.validation import parse_points_arg
from app.serving import metrics

bp = Blueprint("monitoring", __name__)


@bp.get("/health")
def health() -> Response:
    """Loaded models and their checks; 503 when no loaded version can get traffic."""
    result = current_service().health()
    return json_response(result.body, 200 if result.serving else 503)


@bp.get("/drift")
def drift() -> Response:
    """Drift of the live window against the training data."""
    return json_response(current_service().drift())


@bp.get("/drift/history")
def drift_history() -> Response:
    """Drift of ``?points=`` successive windows back through the log, oldest first."""
    return json_response(current_service().drift_history(parse_points_arg(request.args.get("points"))))


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Every worker's counters plus the scrape-time gauges."""
    body, content_type = metrics.render(metrics.StateCollector(current_service().metrics_snapshot))
    return Response(body, content_type=content_type)
