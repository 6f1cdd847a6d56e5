"""The feedback loop: POST /feedback labels predictions, GET /ab/report judges the versions."""

from __future__ import annotations

from flask import Blueprint, Response, request

from app.api.http import current_service, json_body, json_response
from app.api.validation import parse_feedback, parse_since_arg
from app.errors import NotFound

bp = Blueprint("experiments", __name__)


@bp.post("/feedback")
def feedback() -> Response:
    """Record the true label of one prediction, or of many in one transaction."""
    service = current_service()
    req = parse_feedback(json_body(), service.models.class_names, service.settings.max_batch)
    results = service.feedback(req.items)
    if req.bulk:
        missing = [pid for (pid, _), r in zip(req.items, results, strict=True) if r is None]
        found = [r for r in results if r is not None]
        return json_response({"results": found, "not_found": missing, "accepted": len(found)})
    if results[0] is None:
        raise NotFound(f"no prediction with id {req.items[0][0]!r}")
    return json_response(results[0])


@bp.get("/ab/report")
def ab_report() -> Response:
    """Which version is better and how sure we are, for the current period or since ``?since=``."""
    return json_response(current_service().ab_report(parse_since_arg(request.args.get("since"))))
