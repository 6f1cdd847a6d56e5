"""Batched, off-request-path writes of the prediction log.

Requests put records on a bounded queue and return; one thread per worker writes them in a
single transaction at least every ``flush_seconds``. A crash loses at most what is queued (the
last flush interval); a clean shutdown drains the queue first. When the store fails, rows are
dropped and counted, never raised to the client.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Sequence

from app.store import PredictionRecord, Store, StoreUnavailable

log = logging.getLogger(__name__)

_TRIM_EVERY_ROWS = 1000


class PredictionLog:
    """A bounded queue of prediction records and the thread that flushes it to the store."""

    def __init__(
        self,
        store: Store,
        *,
        flush_seconds: float = 0.2,
        max_queue: int = 50_000,
        retention_rows: int = 1_000_000,
        on_lost: Callable[[str, int], None] = lambda reason, n: None,
    ) -> None:
        self._store = store
        self._flush_seconds = flush_seconds
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._retention = retention_rows
        self._on_lost = on_lost
        self._since_trim = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def record(self, records: Sequence[PredictionRecord]) -> None:
        """Queue records for writing; never blocks the request."""
        try:
            self._queue.put_nowait(list(records))
        except queue.Full:
            self._on_lost("queue_full", len(records))

    def flush(self, timeout: float = 5.0) -> bool:
        """Write everything queued so far; True once it is in the store (or was counted lost)."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Drain the queue and stop the writer thread."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.flush(timeout)  # wakes the writer, which drains what is queued and then exits
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch, waiters = self._collect()
            if batch:
                self._write(batch)
            for waiter in waiters:
                waiter.set()
            if self._stopping.is_set() and self._queue.empty():
                return

    def _collect(self) -> tuple[list[PredictionRecord], list[threading.Event]]:
        """Wait for the first item up to one flush interval, then take everything queued."""
        batch: list[PredictionRecord] = []
        waiters: list[threading.Event] = []
        deadline = time.monotonic() + self._flush_seconds
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=max(remaining, 0.001)) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return batch, waiters
            if isinstance(item, threading.Event):
                waiters.append(item)
                # A flush request is answered with what is queued now, not after the interval.
                deadline = time.monotonic()
            else:
                batch.extend(item)

    def _write(self, batch: list[PredictionRecord]) -> None:
        try:
            self._store.write_predictions(batch)
        except StoreUnavailable as exc:
            log.error("prediction log: %d rows not written: %s", len(batch), exc)
            self._on_lost("store_unavailable", len(batch))
            return
        self._since_trim += len(batch)
        if self._since_trim >= _TRIM_EVERY_ROWS:
            self._since_trim = 0
            try:
                self._store.trim(self._retention)
            except StoreUnavailable as exc:
                log.error("prediction log: retention trim failed: %s", exc)
