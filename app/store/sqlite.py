"""The SQLite backend of the state store, shared by every gunicorn worker through one database file.

WAL mode: readers never wait for the writer; every write is one short ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from app.store.contract import Experiment, LabelResult, PredictionRecord, StoreUnavailable, VariantCounts

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    weights TEXT NOT NULL,
    env_weights TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    prediction_id TEXT NOT NULL UNIQUE,
    ts REAL NOT NULL,
    experiment_id INTEGER,
    model_version TEXT NOT NULL,
    features TEXT NOT NULL,
    prediction INTEGER NOT NULL,
    probabilities TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    user_hash TEXT,
    label INTEGER,
    labeled_at REAL
);
CREATE INDEX IF NOT EXISTS predictions_experiment ON predictions (experiment_id, model_version);
CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts);
CREATE TABLE IF NOT EXISTS control (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

LATENCY_SAMPLE_ROWS = 100_000

_T = TypeVar("_T")


class SQLiteStore:
    """SQLite in WAL mode; one connection per thread, every write in a short transaction."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        # Several workers start at once: each statement is idempotent and retried while locked.
        self._retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        for statement in filter(None, (part.strip() for part in SCHEMA.split(";"))):
            self._retry_locked(functools.partial(conn.execute, statement))

    # -- connections -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _retry_locked(self, action: Callable[[], _T]) -> _T:
        """Run a statement at start-up, when several workers create the schema at once."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _transaction(self) -> _Transaction:
        """``with self._transaction() as db``: one BEGIN IMMEDIATE … COMMIT on this thread's connection."""
        return _Transaction(self)

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- experiments -------------------------------------------------------------------------

    def latest_experiment(self) -> Experiment | None:
        """The experiment in force now, or None before the first start."""
        rows = self._read(
            "SELECT id, started_at, weights, env_weights, source FROM experiments ORDER BY id DESC LIMIT 1"
        )
        return _experiment(rows[0]) if rows else None

    def experiments(self) -> list[Experiment]:
        """Every experiment period, oldest first."""
        rows = self._read("SELECT id, started_at, weights, env_weights, source FROM experiments ORDER BY id")
        return [_experiment(r) for r in rows]

    def ensure_experiment(self, weights: dict[str, int], env_weights: dict[str, int]) -> Experiment:
        """At start-up: keep the stored experiment while the environment's weights are unchanged, else start one."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, started_at, weights, env_weights, source FROM experiments ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if row is not None and json.loads(row[3]) == env_weights:
                return _experiment(row)
            return self._insert_experiment(db, weights, env_weights, "env")

    def start_experiment(self, weights: dict[str, int], env_weights: dict[str, int], source: str) -> Experiment:
        """Record a weights change: a new experiment period starts now."""
        with self._transaction() as db:
            return self._insert_experiment(db, weights, env_weights, source)

    @staticmethod
    def _insert_experiment(
        db: sqlite3.Connection, weights: dict[str, int], env_weights: dict[str, int], source: str
    ) -> Experiment:
        started = time.time()
        cursor = db.execute(
            "INSERT INTO experiments (started_at, weights, env_weights, source) VALUES (?, ?, ?, ?)",
            (started, json.dumps(weights, sort_keys=True), json.dumps(env_weights, sort_keys=True), source),
        )
        if cursor.lastrowid is None:  # sqlite3 sets it after every successful INSERT
            raise StoreUnavailable("the new experiment row has no id")
        return Experiment(cursor.lastrowid, started, dict(weights), dict(env_weights), source)

    # -- model generation (hot reload across workers) ----------------------------------------

    def generation(self) -> int:
        """How many times a model reload has been requested."""
        rows = self._read("SELECT value FROM control WHERE key = 'models_generation'")
        return int(rows[0][0]) if rows else 0

    def bump_generation(self) -> int:
        """Ask every worker to reload its models; returns the new generation."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO control (key, value) VALUES ('models_generation', 1) "
                "ON CONFLICT(key) DO UPDATE SET value = value + 1"
            )
            return int(db.execute("SELECT value FROM control WHERE key = 'models_generation'").fetchone()[0])

    # -- prediction log ----------------------------------------------------------------------

    def write_predictions(self, records: Sequence[PredictionRecord]) -> None:
        """Append a batch of predictions in one transaction."""
        rows = [
            (
                r.prediction_id,
                r.ts,
                r.experiment_id,
                r.model_version,
                json.dumps([float(v) for v in r.features]),
                int(r.prediction),
                json.dumps([round(float(p), 6) for p in r.probabilities]),
                float(r.latency_ms),
                r.user_hash,
            )
            for r in records
        ]
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO predictions (prediction_id, ts, experiment_id, model_version, features, "
                "prediction, probabilities, latency_ms, user_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def trim(self, keep_rows: int) -> int:
        """Drop the oldest rows beyond ``keep_rows``; returns how many were dropped."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM predictions WHERE id <= (SELECT MAX(id) FROM predictions) - ?", (int(keep_rows),)
            )
            return cursor.rowcount

    def recent_features(self, limit: int) -> list[list[float]]:
        """Feature rows of the last ``limit`` logged predictions, newest first."""
        rows = self._read("SELECT features FROM predictions ORDER BY id DESC LIMIT ?", (int(limit),))
        return [json.loads(r[0]) for r in rows]

    def count_predictions(self) -> int:
        """Rows in the prediction log."""
        return int(self._read("SELECT COUNT(*) FROM predictions")[0][0])

    def find_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        """One logged prediction by id."""
        rows = self._read(
            "SELECT prediction_id, ts, experiment_id, model_version, features, prediction, probabilities, "
            "latency_ms, user_hash, label FROM predictions WHERE prediction_id = ?",
            (prediction_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return {
            "prediction_id": r[0],
            "ts": r[1],
            "experiment_id": r[2],
            "model_version": r[3],
            "features": json.loads(r[4]),
            "prediction": r[5],
            "probabilities": json.loads(r[6]),
            "latency_ms": r[7],
            "user_hash": r[8],
            "label": r[9],
        }

    # -- feedback and the A/B report ---------------------------------------------------------

    def set_label(self, prediction_id: str, label: int) -> LabelResult | None:
        """Record (or correct) the true label of a prediction; None if the id is unknown."""
        return self.set_labels([(prediction_id, label)])[0]

    def set_labels(self, items: Sequence[tuple[str, int]]) -> list[LabelResult | None]:
        """Record (or correct) many labels in one transaction; None for each unknown id."""
        results: list[LabelResult | None] = []
        now = time.time()
        with self._transaction() as db:
            for prediction_id, label in items:
                row = db.execute(
                    "SELECT model_version, prediction, label FROM predictions WHERE prediction_id = ?",
                    (prediction_id,),
                ).fetchone()
                if row is None:
                    results.append(None)
                    continue
                db.execute(
                    "UPDATE predictions SET label = ?, labeled_at = ? WHERE prediction_id = ?",
                    (int(label), now, prediction_id),
                )
                results.append(LabelResult(model_version=row[0], prediction=int(row[1]), previous_label=row[2]))
        return results

    def variant_counts(self, *, experiment_id: int | None = None, since: float | None = None) -> list[VariantCounts]:
        """Requests, labelled and correct predictions per (experiment, version)."""
        where, params = _period(experiment_id, since)
        rows = self._read(
            "SELECT experiment_id, model_version, COUNT(*), COUNT(label), "
            f"COALESCE(SUM(label = prediction), 0) FROM predictions {where} GROUP BY experiment_id, model_version",
            params,
        )
        return [VariantCounts(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def latencies(self, *, experiment_id: int | None = None, since: float | None = None) -> dict[str, list[float]]:
        """Per-version latencies (ms) of the most recent predictions in the period."""
        where, params = _period(experiment_id, since)
        rows = self._read(
            f"SELECT model_version, latency_ms FROM predictions {where} ORDER BY id DESC LIMIT {LATENCY_SAMPLE_ROWS}",
            params,
        )
        result: dict[str, list[float]] = {}
        for version, latency in rows:
            result.setdefault(version, []).append(float(latency))
        return result


class _Transaction:
    """``with store._transaction() as db``: BEGIN IMMEDIATE … COMMIT, errors as StoreUnavailable."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        try:
            self._db = self._store._conn()
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc
        return self._db

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        assert self._db is not None
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        except sqlite3.Error as commit_error:
            if exc_type is None:
                raise StoreUnavailable(str(commit_error)) from commit_error
        if exc_type is not None and issubclass(exc_type, sqlite3.Error):
            raise StoreUnavailable(str(exc)) from exc
        return False


def _experiment(row: tuple[Any, ...]) -> Experiment:
    """An experiments row (id, started_at, weights, env_weights, source) as an Experiment."""
    return Experiment(int(row[0]), float(row[1]), json.loads(row[2]), json.loads(row[3]), row[4])


def _period(experiment_id: int | None, since: float | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause and parameters selecting one experiment, or everything since a time, or all."""
    if experiment_id is not None:
        return "WHERE experiment_id = ?", (int(experiment_id),)
    if since is not None:
        return "WHERE ts >= ?", (float(since),)
    return "", ()
