"""Canary rollouts: POST /rollouts starts one (admin), GET /rollouts/current shows it, DELETE aborts it (admin)."""

from __future__ import annotations

from flask import Blueprint, Response

from app.api.auth import require_admin
from app.api.http import current_service, json_body, json_response
from app.api.validation import parse_rollout_plan

bp = Blueprint("rollouts", __name__)


@bp.post("/rollouts")
def start_rollout() -> Response:
    """Start moving traffic to a candidate step by step; the controller promotes it or rolls it back."""
    service = current_service()
    require_admin(service.settings)
    return json_response(service.start_rollout(parse_rollout_plan(json_body())), 201)


@bp.get("/rollouts/current")
def current_rollout() -> Response:
    """The latest rollout: its state, step, weights, every decision and the live evidence of its step."""
    return json_response(current_service().current_rollout())


@bp.delete("/rollouts/current")
def abort_rollout() -> Response:
    """Abort the running rollout; the baseline gets all traffic back."""
    service = current_service()
    require_admin(service.settings)
    return json_response(service.abort_rollout())
