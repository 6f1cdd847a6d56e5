"""Shadow traffic: the period's shadow versions score every routed row on a thread of their own.

The request thread only appends what it served to a bounded queue (``submit``: one ``deque.append``, no lock, no
wake-up, so it never hands the GIL to the scorer), and returns. The scorer thread wakes every ``poll_seconds``,
takes everything queued, scores it with each shadow version in one batch per version, and hands the rows to the
prediction log flagged as shadow (``shadow_of`` the served prediction, and what was served, for the agreement
counter). Shadow rows are never returned and never counted as served; the store labels them with their served
row's label, so the A/B report can judge a candidate on live traffic before it serves anyone.

Only rows the prediction log took are scored (a row missing from the log could never be labelled). Beyond the
queue bound, or when a shadow version is not loaded in this worker, rows are dropped and counted
(``prediction_log_errors_total{reason="shadow_dropped"}``); shadow rows give way to served ones when the log's
buffer is half full (counted as ``queue_full``). They count toward LOG_RETENTION_ROWS like served rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from app.serving import metrics
from app.serving.ids import new_prediction_ids
from app.serving.prediction_log import PredictionLog
from app.serving.registry import ModelSet
from app.store import PredictionRecord

log = logging.getLogger(__name__)

SHADOW_LOG_SHARE = 0.5
"""Shadow rows are admitted to the prediction log's buffer only while it is less than half full: when the store
falls behind, the served rows (the ones labels are for) keep the room."""


class Served(NamedTuple):
    """What one routed request served, queued for the shadow versions."""

    models: ModelSet
    shadow: tuple[str, ...]
    experiment_id: int | None
    ts: float
    X: npt.NDArray[np.float64]
    prediction_ids: Sequence[str]
    classes: Sequence[int]
    user_hash: str | None
    client_hash: str | None


class ShadowScorer:
    """A bounded queue of served requests and the thread that scores them with the shadow versions."""

    def __init__(
        self,
        prediction_log: PredictionLog,
        *,
        max_rows: int = 50_000,
        poll_seconds: float = 0.05,
        on_lost: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._log = prediction_log
        self._max_rows = max_rows
        self._poll = poll_seconds
        self._on_lost = on_lost
        self._queue: deque[Served] = deque()
        self._queued_rows = 0  # approximate under threads; it only bounds memory
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)

    def start(self) -> None:
        """Start the scorer thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Score what is queued, then stop (before the prediction log drains, so shadow rows are written)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        else:
            self.score_pending()

    def submit(self, served: Served) -> None:
        """Queue one served request for its period's shadow versions; never blocks, never raises."""
        rows = len(served.prediction_ids)
        if self._queued_rows + rows > self._max_rows:
            self._on_lost(rows * len(served.shadow))
            return
        self._queued_rows += rows
        self._queue.append(served)  # deque.append is atomic under the GIL

    def score_pending(self) -> int:
        """Score everything queued now; returns how many shadow rows went to the prediction log."""
        batch: list[Served] = []
        while True:  # popleft until empty: safe if another thread drains too
            try:
                batch.append(self._queue.popleft())
            except IndexError:
                break
        self._queued_rows = max(0, self._queued_rows - sum(len(s.prediction_ids) for s in batch))
        by_version: dict[str, list[Served]] = {}
        for served in batch:
            for version in served.shadow:
                by_version.setdefault(version, []).append(served)
        written = 0
        for version, items in by_version.items():
            written += self._score(version, items)
        return written

    def _score(self, version: str, items: list[Served]) -> int:
        rows = sum(len(s.prediction_ids) for s in items)
        loaded = items[-1].models.versions.get(version)
        if loaded is None:
            self._on_lost(rows)
            return 0
        started = time.perf_counter()
        try:
            proba = loaded.predictor.predict_proba(np.concatenate([s.X for s in items]))
        except Exception:  # a broken shadow version must never touch serving
            log.exception("shadow version %s failed to score %d rows", version, rows)
            self._on_lost(rows)
            return 0
        latency_ms = (time.perf_counter() - started) * 1000.0 / max(1, len(items))
        if not self._log.admits(rows, share=SHADOW_LOG_SHARE):
            return 0
        classes: list[int] = proba.argmax(axis=1).tolist()
        probabilities: list[list[float]] = proba.tolist()
        ids = new_prediction_ids(rows, time.time())
        records: list[PredictionRecord] = []
        i = 0
        for s in items:
            for served_id, row, served_class in zip(s.prediction_ids, s.X.tolist(), s.classes, strict=True):
                records.append(
                    PredictionRecord(
                        ids[i],
                        s.ts,
                        s.experiment_id,
                        version,
                        row,
                        classes[i],
                        probabilities[i],
                        latency_ms,
                        s.user_hash,
                        s.client_hash,
                        shadow_of=served_id,
                        served_prediction=served_class,
                    )
                )
                i += 1
        self._log.extend(records)
        metrics.SHADOW_PREDICTIONS.labels(version).inc(rows)
        return rows

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self._poll)
            try:
                self.score_pending()
            except Exception:
                log.exception("shadow scoring failed")  # the scorer must never die
            if stopping:
                return
