"""Admin authentication: a bearer token compared in constant time."""

from __future__ import annotations

import hmac

from flask import request

from app.errors import Forbidden, Unauthorized
from app.settings import Settings


def require_admin(settings: Settings) -> None:
    """Raise unless the request carries ``Authorization: Bearer <ADMIN_TOKEN>``; 403 when admin is disabled."""
    token = settings.admin_token
    if not token:
        raise Forbidden("admin endpoints are disabled: start the API with ADMIN_TOKEN set")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("missing or wrong admin token: send 'Authorization: Bearer <ADMIN_TOKEN>'")
