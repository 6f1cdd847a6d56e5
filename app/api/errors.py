"""The one error path: every error, ours or werkzeug's, leaves as {"error": ...} with its status."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from app.api.http import json_response
from app.errors import ApiError
from app.store import StoreUnavailable

log = logging.getLogger(__name__)


def register_error_handlers(app: Flask) -> None:
    """Attach the handlers; nothing a client sends can produce a traceback."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(StoreUnavailable, _store_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def _api_error(exc: ApiError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="mlops"'} if exc.status_code == 401 else None
    return json_response(exc.to_dict(), exc.status_code, headers)


def _store_error(exc: StoreUnavailable) -> Response:
    log.error("state store unavailable: %s", exc)
    return json_response({"error": "state store unavailable, try again shortly"}, 503)


def _http_error(exc: HTTPException) -> Response:
    messages = {
        404: f"no such endpoint: {request.method} {request.path}",
        405: f"method {request.method} is not allowed on {request.path}",
        413: f"request body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes",
    }
    code = exc.code or 500
    return json_response({"error": messages.get(code, exc.description or exc.name)}, code)


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return json_response({"error": "internal error; see the server log"}, 500)
