"""What the API is: the index of its endpoints and its OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from app.api.http import json_response
from app.api.openapi import openapi_document

bp = Blueprint("meta", __name__)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of every endpoint."""
    return json_response(openapi_document())


@bp.get("/")
def index() -> Response:
    """The endpoints this API serves."""
    rules = current_app.url_map.iter_rules()
    return json_response(
        {
            "service": "mlops-pipeline",
            "endpoints": sorted(str(rule) for rule in rules if rule.endpoint != "static"),
            "docs": "/openapi.json",
        }
    )
