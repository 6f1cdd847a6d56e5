"""The few request and response helpers every blueprint shares."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException

from app.api.validation import parse_json
from app.errors import BadRequest
from app.serving.service import Service

EXTENSION = "mlops"

_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def current_service() -> Service:
    """The serving core of the app handling this request."""
    service: Service = current_app.extensions[EXTENSION]
    return service


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Strict JSON (no NaN) with the API's content type."""
    return Response(_ENCODER.encode(body), status=status, mimetype="application/json", headers=headers)


def json_body() -> Any:
    """The request body parsed as strict JSON; an unreadable body is a 400, an oversized one a 413."""
    try:
        data = request.get_data(cache=False)
    except HTTPException:
        raise
    except Exception:  # noqa: BLE001 - the server's body reader failed (e.g. a malformed chunked body)
        raise BadRequest("could not read the request body") from None
    return parse_json(data)
