"""The one error path: every error, ours or werkzeug's, leaves as {"error": ...} with its status.

Messages may quote what the client sent (a key, a path, a value): every message is capped at
MAX_ERROR_CHARS here, whatever raised it, so an error body stays small whatever the request was.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from app.api.http import json_response
from app.errors import ApiError, TooManyRequests
from app.store import StoreUnavailable

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 400
"""The longest "error" message a response carries; longer ones are cut."""
_MAX_PATH_CHARS = 100


def register_error_handlers(app: Flask) -> None:
    """Attach the handlers; nothing a client sends can produce a traceback."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(StoreUnavailable, _store_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def capped(message: str) -> str:
    """``message``, cut to MAX_ERROR_CHARS."""
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"


def _api_error(exc: ApiError) -> Response:
    headers: dict[str, str] = {}
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="mlops"'
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    return json_response({**exc.to_dict(), "error": capped(exc.message)}, exc.status_code, headers or None)


def _store_error(exc: StoreUnavailable) -> Response:
    log.error("state store unavailable: %s", exc)
    return json_response({"error": "state store unavailable, try again shortly"}, 503)


def _http_error(exc: HTTPException) -> Response:
    path = request.path if len(request.path) <= _MAX_PATH_CHARS else request.path[:_MAX_PATH_CHARS] + "…"
    messages = {
        404: f"no such endpoint: {request.method} {path}",
        405: f"method {request.method} is not allowed on {path}",
        413: f"request body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes",
    }
    code = exc.code or 500
    return json_response({"error": capped(messages.get(code, exc.description or exc.name))}, code)


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path[:_MAX_PATH_CHARS])
    return json_response({"error": "internal error; see the server log"}, 500)
