"""Per-client quotas of prediction-log rows, so one client cannot push everyone else's rows out of retention."""

from __future__ import annotations

import threading
import time


class ClientQuota:
    """At most ``per_minute`` rows per client in each wall-clock minute (0: no limit), in this worker."""

    def __init__(self, per_minute: int) -> None:
        self._limit = per_minute
        self._minute = -1
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, client: str | None, rows: int, now: float | None = None) -> bool:
        """Take ``rows`` from the client's quota; False (and nothing taken) when they do not fit."""
        if self._limit == 0 or client is None:
            return True
        minute = int((time.time() if now is None else now) // 60)
        with self._lock:
            if minute != self._minute:
                self._minute = minute
                self._used.clear()  # a new minute: every quota is whole again, and the table stays small
            used = self._used.get(client, 0)
            if used + rows > self._limit:
                return False
            self._used[client] = used + rows
            return True
