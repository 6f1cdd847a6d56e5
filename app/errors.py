"""The errors a client may see. Each carries its HTTP status; the API's one handler turns them into JSON.

Domain code (the serving core, the registry) raises these without knowing about Flask: the status is
part of what the error means (bad input, not found, unavailable), not of how it is sent.
"""

from __future__ import annotations


class ApiError(Exception):
    """Base of every error a client may see; ``message`` is safe to show."""

    status_code = 500

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def to_dict(self) -> dict[str, object]:
        """The JSON body of the error response."""
        return {"error": self.message, **self.extra}


class BadRequest(ApiError):
    """The request cannot be understood or fails validation."""

    status_code = 400


class Unauthorized(ApiError):
    """An admin endpoint was called without the right bearer token."""

    status_code = 401


class Forbidden(ApiError):
    """Admin endpoints are disabled (no ADMIN_TOKEN configured)."""

    status_code = 403


class NotFound(ApiError):
    """The named resource does not exist."""

    status_code = 404


class Conflict(ApiError):
    """The request conflicts with the state it would change (a rollout runs, or none does)."""

    status_code = 409


class UnsupportedMediaType(ApiError):
    """A request body that is not ``application/json`` (e.g. a cross-site form post)."""

    status_code = 415


class TooManyRequests(ApiError):
    """The client must wait ``retry_after`` seconds before trying again."""

    status_code = 429

    def __init__(self, message: str, retry_after: int, **extra: object) -> None:
        super().__init__(message, **extra)
        self.retry_after = max(1, retry_after)


class ModelUnavailable(ApiError):
    """No model can serve the request right now."""

    status_code = 503


class IntegrityError(Exception):
    """A model artifact does not match its manifest (sha256), or the manifest its signature."""
