"""Admin authentication: a bearer token compared in constant time, and a limit on failed attempts.

Each failure is logged (the client address, never the token given). A client address with
ADMIN_MAX_FAILURES failures within ADMIN_FAILURE_WINDOW_SECONDS of its first one gets 429 on every
admin call until that window ends, even with the right token, so guessing gains nothing from it. The
count is per worker, in memory: with N workers a client gets at most N times the limit.
"""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time
from collections.abc import Callable

from flask import Flask, current_app, request

from app.errors import Forbidden, TooManyRequests, Unauthorized
from app.settings import Settings

log = logging.getLogger(__name__)

EXTENSION = "mlops.admin_failures"


class FailedAttempts:
    """Failed attempts per client within a window that opens at the client's first failure."""

    MAX_CLIENTS = 10_000
    """Clients tracked at most; beyond it expired windows go first, then the oldest ones."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._clients: dict[str, tuple[float, int]] = {}  # client -> (window start, failures), oldest first
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 while it is under the limit."""
        now = self._clock()
        with self._lock:
            started, failures = self._clients.get(client, (now, 0))
            left = started + self.window - now
            if left <= 0:
                self._clients.pop(client, None)
                return 0.0
            return left if failures >= self.limit else 0.0

    def fail(self, client: str) -> int:
        """Count a failure of ``client``; returns its failures in the current window."""
        now = self._clock()
        with self._lock:
            started, failures = self._clients.get(client, (now, 0))
            if now - started >= self.window:
                started, failures = now, 0
                self._clients.pop(client, None)  # a new window goes to the end of the order
            self._clients[client] = (started, failures + 1)
            if len(self._clients) > self.MAX_CLIENTS:
                self._prune(now)
            return failures + 1

    def _prune(self, now: float) -> None:
        for client in [c for c, (started, _) in self._clients.items() if now - started >= self.window]:
            del self._clients[client]
        while len(self._clients) > self.MAX_CLIENTS:
            del self._clients[next(iter(self._clients))]


def init_app(app: Flask, settings: Settings) -> None:
    """Attach this app's failed-attempt counts."""
    app.extensions[EXTENSION] = FailedAttempts(settings.admin_max_failures, settings.admin_failure_window_seconds)


def require_admin(settings: Settings) -> None:
    """Raise unless the request carries ``Authorization: Bearer <ADMIN_TOKEN>``; 403 when admin is disabled,
    429 while the client is over its failed-attempt limit."""
    token = settings.admin_token
    if not token:
        raise Forbidden("admin endpoints are disabled: start the API with ADMIN_TOKEN set")
    attempts: FailedAttempts = current_app.extensions[EXTENSION]
    client = (request.remote_addr or "unknown")[:64]  # the front door's client once ProxyFix has run
    wait = math.ceil(attempts.retry_after(client))
    if wait > 0:
        raise TooManyRequests(f"too many failed admin attempts from this address: retry in {wait} s", wait)
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        failures = attempts.fail(client)
        log.warning(
            "admin authentication failed from %s on %s %s (%d of %d allowed in %g s)",
            client,
            request.method,
            request.path,
            failures,
            attempts.limit,
            attempts.window,
        )
        if failures == attempts.limit:
            log.warning("admin calls from %s refused for %g s", client, attempts.window)
        raise Unauthorized("missing or wrong admin token: send 'Authorization: Bearer <ADMIN_TOKEN>'")
