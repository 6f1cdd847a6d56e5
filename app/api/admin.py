"""Routing and models: GET/PUT /config, GET /models, POST /models/reload (the writes need the admin token)."""

from __future__ import annotations

from flask import Blueprint, Response

from app.api.auth import require_admin
from app.api.http import current_service, json_body, json_response
from app.api.validation import parse_config_update

bp = Blueprint("admin", __name__)


@bp.get("/config")
def get_config() -> Response:
    """The weights in force (the seed's flat keys too), their traffic shares and the experiment period."""
    return json_response(current_service().config())


@bp.put("/config")
def put_config() -> Response:
    """Change the weights, the shadow versions or the routing policy in every worker; a new experiment period starts."""
    service = current_service()
    require_admin(service.settings)
    return json_response(service.set_config(parse_config_update(json_body())))


@bp.get("/models")
def models() -> Response:
    """The manifest being served."""
    return json_response(current_service().manifest())


@bp.post("/models/reload")
def reload_models() -> Response:
    """Reload MODELS_DIR in every worker; 503 when nothing loads."""
    service = current_service()
    require_admin(service.settings)
    result = service.reload()
    return json_response(result, 200 if result["models"] else 503)
