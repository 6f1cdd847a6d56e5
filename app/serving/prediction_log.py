"""Batched, off-request-path writes of the prediction log.

Requests append records to an in-memory buffer and return: no lock, no thread wake-up, so the
request thread never hands the GIL to the writer. One thread per worker wakes every
``flush_seconds`` (or when asked to flush) and writes everything buffered in one transaction.
A crash loses at most what is buffered (the last flush interval); a clean shutdown drains the
buffer first. When the store fails, the rows stay in memory and the next flush writes them once the
store is back; only what exceeds the queue bound (or is still refused at shutdown) is dropped, and
every dropped row is counted (``on_lost``). Nothing is ever raised to the client.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence

from app.store import PredictionRecord, Store, StoreUnavailable

log = logging.getLogger(__name__)

_TRIM_EVERY_ROWS = 1000


class PredictionLog:
    """A bounded buffer of prediction records and the thread that flushes it to the store."""

    def __init__(
        self,
        store: Store,
        *,
        flush_seconds: float = 0.2,
        max_queue: int = 50_000,
        retention_rows: int = 1_000_000,
        pending_seconds: float = 600.0,
        on_lost: Callable[[str, int], None] = lambda reason, n: None,
    ) -> None:
        self._store = store
        self._flush_seconds = flush_seconds
        self._max_rows = max_queue
        self._retention = retention_rows
        self._pending_seconds = pending_seconds
        self._on_lost = on_lost
        self._pending: deque[PredictionRecord] = deque()
        self._waiters: list[threading.Event] = []
        self._waiters_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._since_trim = 0
        self._unwritten: list[PredictionRecord] = []  # rows a failed write keeps for the next flush
        self._errors: dict[tuple[int | None, str], int] = {}  # failed predictions per (period, version)
        self._errors_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> None:
        """Start the writer thread (the service does, once the worker is ready to serve)."""
        self._thread.start()

    def record(self, records: Sequence[PredictionRecord]) -> None:
        """Buffer records for writing; never blocks the request."""
        if self.admits(len(records)):
            self.extend(records)

    def admits(self, rows: int, *, share: float = 1.0) -> bool:
        """Whether ``rows`` more rows fit in ``share`` of the buffer; if not, they are counted lost now, so a caller
        can skip building records that would be dropped (a big batch while the store falls behind)."""
        if self._stopping.is_set():
            self._on_lost("shutdown", rows)  # a request that outlived the graceful timeout
            return False
        if len(self._pending) + len(self._unwritten) + rows > self._max_rows * share:
            self._on_lost("queue_full", rows)
            return False
        return True

    def extend(self, records: Sequence[PredictionRecord]) -> None:
        """Buffer records ``admits`` let in."""
        self._pending.extend(records)  # deque.extend is atomic under the GIL

    def count_errors(self, experiment_id: int | None, version: str, rows: int) -> None:
        """Count rows a version failed to predict; written with the next flush (a failure never waits for the store)."""
        with self._errors_lock:
            key = (experiment_id, version)
            self._errors[key] = self._errors.get(key, 0) + rows

    def flush(self, timeout: float = 5.0) -> bool:
        """Write everything buffered so far; True once it is in the store (or was counted lost)."""
        if not self._thread.is_alive():
            return not self._pending
        done = threading.Event()
        with self._waiters_lock:
            self._waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Drain the buffer and stop the writer thread."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        if self._thread.ident is None:  # never started: write what was buffered here
            self._drain()
            self._give_up()
            return
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._drain()  # anything a request added while the writer was finishing
        self._give_up()

    @property
    def unwritten(self) -> int:
        """Rows kept in memory because the store refused them (written at the next flush that works)."""
        return len(self._unwritten)

    def _give_up(self) -> None:
        """At shutdown, rows the store still refuses are lost: count them."""
        if self._unwritten:
            log.error("prediction log: %d rows lost at shutdown, the store is unavailable", len(self._unwritten))
            self._on_lost("store_unavailable", len(self._unwritten))
            self._unwritten = []

    def _run(self) -> None:
        while True:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            stopping = self._stopping.is_set()
            with self._waiters_lock:
                # Waiters registered now asked after their records were buffered: drain, then answer.
                waiters, self._waiters = self._waiters, []
            self._drain()
            for waiter in waiters:
                waiter.set()
            if stopping:
                return

    def _drain(self) -> None:
        self._write_errors()
        pending = self._pending
        fresh = [pending.popleft() for _ in range(len(pending))]
        if self._unwritten:
            self._write(self._unwritten + fresh, retry=True)
        elif fresh:
            self._write(fresh, retry=False)

    def _write_errors(self) -> None:
        with self._errors_lock:
            errors, self._errors = self._errors, {}
        for (experiment_id, version), rows in errors.items():
            try:
                self._store.count_errors(experiment_id, version, rows)
            except StoreUnavailable:
                self.count_errors(experiment_id, version, rows)  # kept for the next flush

    def _write(self, batch: list[PredictionRecord], *, retry: bool) -> None:
        try:
            self._store.write_predictions(batch, retry=retry)
        except StoreUnavailable as exc:
            # Kept for the next flush (the store heals); beyond the queue bound the oldest rows go, counted.
            keep = batch[-self._max_rows :]
            dropped = len(batch) - len(keep)
            if dropped:
                self._on_lost("store_unavailable", dropped)
            if not self._unwritten:
                log.error("prediction log: store unavailable, keeping %d rows to retry: %s", len(keep), exc)
            self._unwritten = keep
            return
        if self._unwritten:
            log.warning("prediction log: store back, %d kept rows written", len(self._unwritten))
        self._unwritten = []
        self._since_trim += len(batch)
        if self._since_trim >= _TRIM_EVERY_ROWS:
            self._since_trim = 0
            try:
                self._store.trim(self._retention, pending_seconds=self._pending_seconds)
            except StoreUnavailable as exc:
                log.error("prediction log: retention trim failed: %s", exc)
