"""The few request and response helpers every blueprint shares, and the checks every request passes first."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from app.api.validation import parse_json
from app.errors import BadRequest, UnsupportedMediaType
from app.serving.service import Service
from app.settings import Settings

EXTENSION = "mlops"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON = "application/json"

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


def register_request_checks(app: Flask, settings: Settings) -> None:
    """Before any blueprint's hook or view: the Host must be an ALLOWED_HOSTS one (when set), and a body
    sent with POST/PUT must be ``application/json`` (a browser's cross-site form post cannot be)."""
    allowed = frozenset(settings.allowed_hosts or ())

    def check_request() -> None:
        if allowed and host_name(request.headers.get("Host", "")) not in allowed:
            raise BadRequest("this API does not answer for that Host: see ALLOWED_HOSTS")
        rule = request.url_rule  # None when nothing matched: the 404 or 405 says more than a 415 would
        if request.method in BODY_METHODS and rule is not None and _has_body() and request.mimetype != JSON:
            raise UnsupportedMediaType(
                f"{request.method} {rule.rule} takes a JSON body: send Content-Type: {JSON} "
                f"(got {request.mimetype[:60] or 'none'})"
            )

    app.before_request(check_request)


def host_name(host: str) -> str:
    """The name part of a Host header value, lower case, without port or trailing dot ('[::1]' for IPv6)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    return host.partition(":")[0].rstrip(".")


def _has_body() -> bool:
    """Whether the request carries a body (a length above 0, or chunked)."""
    if request.content_length:
        return True
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()
