"""The feedback loop: POST /feedback labels predictions, GET /ab/report judges the versions, GET /ab/timeline
shows them over time."""

from __future__ import annotations

from flask import Blueprint, Response, request

from app.api.auth import require_admin
from app.api.http import current_service, json_body, json_response
from app.api.validation import parse_feedback, parse_since_arg
from app.serving.service import FeedbackItem

bp = Blueprint("experiments", __name__)

# The status each outcome of a single label is answered with.
_STATUS = {"recorded": 200, "relabelled": 200, "queued": 202, "refused": 409, "not_found": 404, "forbidden": 403}


@bp.post("/feedback")
def feedback() -> Response:
    """Record the true label of one prediction, or of many in one transaction.

    Each label carries the ``feedback_token`` its prediction was answered with; with the admin token
    (``Authorization: Bearer``) no feedback token is needed and labels may be replaced.
    """
    service = current_service()
    admin = "Authorization" in request.headers
    if admin:
        require_admin(service.settings)  # a wrong admin token is a 401, never a silent downgrade
    req = parse_feedback(json_body(), service.models.class_names, service.settings.max_batch)
    results = service.feedback([FeedbackItem(*item) for item in req.items], admin=admin)
    if not req.bulk:
        result = results[0]
        return json_response(result.body, _STATUS[result.status])
    done = [r.body for r in results if r.status in ("recorded", "relabelled")]
    return json_response(
        {
            "results": done,
            "accepted": len(done),
            "queued": [r.body["prediction_id"] for r in results if r.status == "queued"],
            "not_found": [r.body["prediction_id"] for r in results if r.status == "not_found"],
            "rejected": [r.body for r in results if r.status in ("refused", "forbidden")],
        }
    )


@bp.get("/ab/report")
def ab_report() -> Response:
    """Which version is better and how sure we are, for the current period or since ``?since=``."""
    return json_response(current_service().ab_report(parse_since_arg(request.args.get("since"))))


@bp.get("/ab/timeline")
def ab_timeline() -> Response:
    """Each version's accuracy and share over time with the experiment periods, since ``?since=`` (7 days)."""
    return json_response(current_service().timeline(parse_since_arg(request.args.get("since"))))
