"""The few request and response helpers every blueprint shares, and the checks every request passes first."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

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


def read_body() -> bytes:
    """The request body; an unreadable one is a 400, an oversized one a 413."""
    try:
        return request.get_data(cache=False)
    except HTTPException:
        raise
    except Exception:  # noqa: BLE001 - the server's body reader failed (e.g. a malformed chunked body)
        raise BadRequest("could not read the request body") from None


def json_body() -> Any:
    """The request body parsed as strict JSON."""
    return parse_json(read_body())


_View = TypeVar("_View", bound=Callable[..., Any])


def accepts(*media_types: str | None) -> Callable[[_View], _View]:
    """Let a view take bodies of these media types besides JSON (None: a body with no Content-Type)."""

    def mark(view: _View) -> _View:
        view.accepts = frozenset(media_types)  # type: ignore[attr-defined]
        return view

    return mark


def register_request_checks(app: Flask, settings: Settings) -> None:
    """Before any blueprint's hook or view: the Host must be an ALLOWED_HOSTS one (when set), and a body
    sent with POST/PUT must be ``application/json`` (a browser's cross-site form post cannot be) or a
    type the view accepts (``accepts``): the V2 protocol's binary tensors, and clients that send none
    (tritonclient), as long as they are not a browser (a cross-site ``fetch`` of an untyped Blob needs no
    preflight, but carries an ``Origin`` header)."""
    allowed = frozenset(settings.allowed_hosts or ())

    def check_request() -> None:
        if allowed and host_name(request.headers.get("Host", "")) not in allowed:
            raise BadRequest("this API does not answer for that Host: see ALLOWED_HOSTS")
        rule = request.url_rule  # None when nothing matched: the 404 or 405 says more than a 415 would
        if request.method not in BODY_METHODS or rule is None or not _has_body() or request.mimetype == JSON:
            return
        extra: frozenset[str | None] = getattr(app.view_functions.get(rule.endpoint), "accepts", frozenset())
        if request.mimetype and request.mimetype in extra:
            return  # not a type a cross-site page can send without a preflight
        if not request.mimetype and None in extra and "Origin" not in request.headers:
            return  # an untyped body from a client that is not a browser: browsers send Origin on every POST
        wanted = " or ".join([JSON, *sorted(t for t in extra if t)])
        raise UnsupportedMediaType(
            f"{request.method} {rule.rule} takes a JSON body: send Content-Type: {wanted} "
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
