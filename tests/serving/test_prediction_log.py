"""The prediction log: batched writes off the request path, drained on close, losses counted, never raised."""

from __future__ import annotations

import sqlite3
import time

import pytest

from app.serving.prediction_log import PredictionLog
from app.store import PredictionRecord, SQLiteStore
from tests.helpers import counter, wait_until


def record(i: int) -> PredictionRecord:
    return PredictionRecord(f"id-{i}", time.time(), 1, "v1", [5.1, 3.5, 1.4, 0.2], 0, [1.0, 0.0, 0.0], 0.5)


def started(log: PredictionLog) -> PredictionLog:
    log.start()
    return log


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "state.db", busy_timeout=0.2, create=True)
    yield s
    s.close()


def lost(reason: str) -> float:
    """Rows the prediction log has counted as lost for ``reason``."""
    return counter("prediction_log_errors_total", reason=reason)


def test_log_flushes_off_the_request_path(store):
    log = started(PredictionLog(store, flush_seconds=0.05))
    try:
        log.record([record(i) for i in range(10)])
        wait_until(lambda: store.count_predictions() == 10, timeout=1.0, message="flush within 1 s")
    finally:
        log.close()


def test_close_drains_the_queue(store):
    log = PredictionLog(store, flush_seconds=60)  # only close() can write these
    log.record([record(i) for i in range(500)])
    log.close()
    assert store.count_predictions() == 500


def test_retention_is_bounded(store):
    log = started(PredictionLog(store, flush_seconds=0.01, retention_rows=300))
    try:
        for chunk in range(12):
            log.record([record(chunk * 100 + i) for i in range(100)])
            assert log.flush()
    finally:
        log.close()
    # Trimmed to the newest 300 once 1000 rows were written, then 200 more arrived.
    assert store.count_predictions() == 500
    assert store.find_prediction("id-700") is not None and store.find_prediction("id-699") is None


def test_rows_refused_by_a_locked_store_are_kept_and_written_when_it_heals(store):
    seen = []
    log = started(PredictionLog(store, flush_seconds=0.01, on_lost=lambda reason, n: seen.append((reason, n))))
    try:
        blocker = sqlite3.connect(store.path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            log.record([record(i) for i in range(5)])
            assert log.flush(timeout=5)
            assert log.unwritten == 5 and store.count_predictions() == 0
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        log.record([record(100)])
        assert log.flush(timeout=5)
        assert store.count_predictions() == 6 and log.unwritten == 0
        assert seen == []  # nothing acknowledged was lost
    finally:
        log.close()


def test_rows_beyond_the_queue_bound_are_dropped_and_counted_while_the_store_is_down(store):
    seen = []
    log = PredictionLog(store, max_queue=3, on_lost=lambda reason, n: seen.append((reason, n)))
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        log.record([record(i) for i in range(3)])
        log.close()  # never started: close writes, the store refuses, the rows are counted at shutdown
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert seen == [("store_unavailable", 3)] and store.count_predictions() == 0


def test_full_queue_drops_and_counts(store):
    seen = []
    log = PredictionLog(store, flush_seconds=60, max_queue=2, on_lost=lambda reason, n: seen.append((reason, n)))
    for i in range(5):
        log.record([record(i)])
    assert seen == [("queue_full", 1)] * 3
    log.close()  # never started: close writes what the queue held
    assert store.count_predictions() == 2 and store.find_prediction("id-1") is not None


def test_a_batch_that_does_not_fit_is_counted_before_its_records_are_built(store):
    seen = []
    log = PredictionLog(store, flush_seconds=60, max_queue=5, on_lost=lambda reason, n: seen.append((reason, n)))
    assert log.admits(3)
    log.extend([record(i) for i in range(3)])
    assert not log.admits(3) and seen == [("queue_full", 3)]  # all or nothing: a batch is never split
    assert log.admits(2)
    log.close()
    assert store.count_predictions() == 3


def test_records_after_close_are_counted_lost(store):
    seen = []
    log = started(PredictionLog(store, on_lost=lambda reason, n: seen.append((reason, n))))
    log.close()
    log.record([record(1), record(2)])
    assert seen == [("shutdown", 2)] and store.count_predictions() == 0
