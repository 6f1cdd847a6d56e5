"""Every query of the state store, written once; a backend supplies connections, transactions and its dialect.

The backends (``app.store.sqlite``, and any other SQL database) implement ``_transaction`` and ``_read``:
both turn the driver's transient failures into ``StoreUnavailable`` (and reconnect), record the outcome
with ``_succeeded`` / ``_failed``, and let every other exception through.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from app.stats.latency import BUCKET_COUNT, bucket_of
from app.store.contract import (
    COUNT_BUCKET_SECONDS,
    ROLLOUT_STATES,
    Experiment,
    LabelItem,
    LabelOutcome,
    ModelSetFiles,
    PeriodHour,
    PredictionRecord,
    PublishedSet,
    Rollout,
    ShadowCounts,
    StateConflict,
    StoreHealth,
    StoreUnavailable,
    VariantCounts,
    WindowRow,
)
from app.store.schema import Cursor, Dialect

# Transaction-scoped lock keys, for backends whose write transactions are not serialised by themselves.
LOCK_EXPERIMENTS = 7_301
LOCK_LABELS = 7_302
LOCK_MIGRATIONS = 7_303

_EXPERIMENT_COLUMNS = "id, started_at, weights, env_weights, source, shadow, policy"
_ROLLOUT_COLUMNS = "id, plan, state, step, experiment_id, started_at, updated_at, history"
_NO_PERIOD = 0  # counters key a prediction served with no experiment period (store down at start) under 0


class SqlStore(ABC):
    """The store's logic over any DB-API connection; see ``app.store.contract`` for the guarantees."""

    dialect: Dialect

    def __init__(self) -> None:
        self._health = StoreHealth(available=True)

    # -- what a backend provides ---------------------------------------------------------------

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Cursor]:
        """A write transaction: committed on success, rolled back on any exception."""

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement (``?`` markers)."""

    @abstractmethod
    def close(self) -> None:
        """Release every connection."""

    # -- health --------------------------------------------------------------------------------

    def health(self) -> StoreHealth:
        """How the last operation went."""
        return self._health

    def _succeeded(self) -> None:
        if not self._health.available:
            self._health = StoreHealth(available=True)

    def _failed(self, exc: BaseException) -> StoreUnavailable:
        if self._health.available:
            self._health = StoreHealth(available=False, error=str(exc) or type(exc).__name__, since=time.time())
        return exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))

    def _q(self, sql: str) -> str:
        return self.dialect.sql(sql)

    def _announce(self, cur: Cursor, what: str) -> None:  # noqa: B027 - only backends that can announce do
        """Tell every process a change they must adopt commits with this transaction (backends that can)."""

    def wait_for_change(self, timeout: float, stop: threading.Event) -> bool:
        """Block until a change is announced, ``timeout`` passes or ``stop`` is set; True on an announcement.

        Backends that cannot announce poll: they just wait, and the caller re-reads the store.
        """
        stop.wait(timeout)
        return False

    def _take_lock(self, cur: Cursor, key: int) -> None:
        statement = self.dialect.lock_statement(key)
        if statement:
            cur.execute(statement)

    # -- experiments ---------------------------------------------------------------------------

    def latest_experiment(self) -> Experiment | None:
        """The experiment in force now, or None before the first start."""
        rows = self._read(f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments ORDER BY id DESC LIMIT 1")
        return _experiment(rows[0]) if rows else None

    def experiments(self) -> list[Experiment]:
        """Every experiment period, oldest first."""
        return [_experiment(r) for r in self._read(f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments ORDER BY id")]

    def ensure_experiment(self, weights: dict[str, int], env_weights: dict[str, int]) -> Experiment:
        """Keep the stored experiment while the environment's weights are unchanged, else start one."""
        with self._transaction() as cur:
            self._take_lock(cur, LOCK_EXPERIMENTS)
            cur.execute(f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments ORDER BY id DESC LIMIT 1")
            rows = cur.fetchall()
            if rows and json.loads(rows[0][3]) == env_weights:
                return _experiment(rows[0])
            started = self._insert_experiment(cur, weights, env_weights, "env")
            self._announce(cur, "experiment")
            return started

    def start_experiment(
        self,
        weights: dict[str, int],
        env_weights: dict[str, int],
        source: str,
        *,
        shadow: Sequence[str] = (),
        policy: dict[str, Any] | None = None,
        replacing: int | None = None,
        unless_rollout: bool = False,
    ) -> Experiment:
        """Record a routing change: a new experiment period starts now (if ``replacing`` is still the latest, and
        with ``unless_rollout`` if no rollout runs)."""
        with self._transaction() as cur:
            self._take_lock(cur, LOCK_EXPERIMENTS)
            if unless_rollout:
                cur.execute("SELECT id FROM rollouts WHERE state = 'running' ORDER BY id DESC LIMIT 1")
                running = cur.fetchall()
                if running:
                    raise StateConflict(f"rollout {running[0][0]} is running and owns the routing")
            if replacing is not None:
                latest = self._latest_experiment(cur)
                if latest is None or latest.id != replacing:
                    raise StateConflict(f"period {replacing} is not the latest any more")
            started = self._insert_experiment(cur, weights, env_weights, source, shadow=shadow, policy=policy)
            self._announce(cur, "experiment")
            return started

    def _insert_experiment(
        self,
        cur: Cursor,
        weights: dict[str, int],
        env_weights: dict[str, int],
        source: str,
        *,
        shadow: Sequence[str] = (),
        policy: dict[str, Any] | None = None,
    ) -> Experiment:
        started = time.time()
        cur.execute(
            self._q(
                "INSERT INTO experiments (started_at, weights, env_weights, source, shadow, policy) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
            ),
            (
                started,
                json.dumps(weights, sort_keys=True),
                json.dumps(env_weights, sort_keys=True),
                source,
                json.dumps(list(shadow)),
                None if policy is None else json.dumps(policy, sort_keys=True),
            ),
        )
        new_id = int(cur.fetchall()[0][0])
        if policy is not None and policy.get("since_experiment") is None:
            policy = {**policy, "since_experiment": new_id}
            cur.execute(
                self._q("UPDATE experiments SET policy = ? WHERE id = ?"), (json.dumps(policy, sort_keys=True), new_id)
            )
        return Experiment(new_id, started, dict(weights), dict(env_weights), source, tuple(shadow), policy)

    def _latest_experiment(self, cur: Cursor) -> Experiment | None:
        cur.execute(f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments ORDER BY id DESC LIMIT 1")
        rows = cur.fetchall()
        return _experiment(rows[0]) if rows else None

    # -- control and secrets -------------------------------------------------------------------

    def generation(self) -> int:
        """How many times a model reload has been requested."""
        rows = self._read("SELECT value FROM control WHERE key = 'models_generation'")
        return int(rows[0][0]) if rows else 0

    def bump_generation(self) -> int:
        """Ask every worker to reload its models; returns the new generation."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO control (key, value) VALUES ('models_generation', 1) "
                "ON CONFLICT (key) DO UPDATE SET value = control.value + 1 RETURNING value"
            )
            generation = int(cur.fetchall()[0][0])
            self._announce(cur, "generation")
            return generation

    def secret(self, name: str) -> str:
        """A random per-install secret, created by the first caller and the same for every later one."""
        rows = self._read("SELECT value FROM secrets WHERE name = ?", (name,))
        if rows:
            return str(rows[0][0])
        with self._transaction() as cur:
            cur.execute(
                self._q("INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"),
                (name, secrets.token_urlsafe(32)),
            )
            cur.execute(self._q("SELECT value FROM secrets WHERE name = ?"), (name,))
            return str(cur.fetchall()[0][0])

    # -- prediction log ------------------------------------------------------------------------

    def write_predictions(self, records: Sequence[PredictionRecord], *, retry: bool = False) -> None:
        """Append a batch, update the counters and apply queued labels, in one transaction."""
        with self._transaction() as cur:
            self._take_lock(cur, LOCK_LABELS)
            if retry:
                records = self._not_stored(cur, records)
            if not records:
                return
            cur.executemany(
                self._q(
                    "INSERT INTO predictions (prediction_id, ts, experiment_id, model_version, features, prediction, "
                    "probabilities, latency_ms, user_hash, client_hash, shadow_of) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                [_prediction_row(r) for r in records],
            )
            served = [r for r in records if r.shadow_of is None]
            shadow = [r for r in records if r.shadow_of is not None]
            self._count_requests(cur, served)
            self._count_shadow(cur, shadow)
            self._apply_pending(cur, {r.prediction_id for r in served})
            self._label_late_shadow(cur, [r.prediction_id for r in shadow])

    def _not_stored(self, cur: Cursor, records: Sequence[PredictionRecord]) -> list[PredictionRecord]:
        ids = [r.prediction_id for r in records]
        stored: set[str] = set()
        for chunk in _chunks(ids, 500):
            marks = ", ".join("?" * len(chunk))
            cur.execute(self._q(f"SELECT prediction_id FROM predictions WHERE prediction_id IN ({marks})"), chunk)
            stored.update(row[0] for row in cur.fetchall())
        return [r for r in records if r.prediction_id not in stored]

    def _count_requests(self, cur: Cursor, records: Sequence[PredictionRecord]) -> None:
        requests: dict[tuple[int, str, int], int] = defaultdict(int)
        latency: dict[tuple[int, str, int, int], int] = defaultdict(int)
        for r in records:
            key = (r.experiment_id or _NO_PERIOD, r.model_version, int(r.ts // COUNT_BUCKET_SECONDS))
            requests[key] += 1
            latency[(*key, bucket_of(r.latency_ms / 1000.0))] += 1
        cur.executemany(
            self._q(
                "INSERT INTO period_counts (experiment_id, version, hour, requests) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (experiment_id, version, hour) DO UPDATE "
                "SET requests = period_counts.requests + excluded.requests"
            ),
            [(*key, n) for key, n in requests.items()],
        )
        cur.executemany(
            self._q(
                "INSERT INTO latency_counts (experiment_id, version, hour, bucket, n) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (experiment_id, version, hour, bucket) DO UPDATE SET n = latency_counts.n + excluded.n"
            ),
            [(*key, n) for key, n in latency.items()],
        )

    def _count_shadow(self, cur: Cursor, records: Sequence[PredictionRecord]) -> None:
        scored: dict[tuple[int, str, int], list[int]] = defaultdict(lambda: [0, 0])
        for r in records:
            entry = scored[(r.experiment_id or _NO_PERIOD, r.model_version, int(r.ts // COUNT_BUCKET_SECONDS))]
            entry[0] += 1
            entry[1] += int(r.served_prediction is not None and int(r.prediction) == int(r.served_prediction))
        self._add_shadow_counts(cur, {key: (n, agreed, 0, 0, 0, 0) for key, (n, agreed) in scored.items()})

    def _add_shadow_counts(self, cur: Cursor, deltas: dict[tuple[int, str, int], tuple[int, ...]]) -> None:
        """Add (requests, agreed, labeled, correct, served_correct, discordant) to each key's shadow counters."""
        if not deltas:
            return
        columns = ("requests", "agreed", "labeled", "correct", "served_correct", "discordant")
        cur.executemany(
            self._q(
                f"INSERT INTO shadow_counts (experiment_id, version, hour, {', '.join(columns)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (experiment_id, version, hour) DO UPDATE SET "
                + ", ".join(f"{c} = shadow_counts.{c} + excluded.{c}" for c in columns)
            ),
            [(*key, *d) for key, d in deltas.items()],
        )

    def _label_shadow(self, cur: Cursor, served_id: str, served_prediction: int, label: int, now: float) -> None:
        """Give a served prediction's label to the shadow predictions made beside it; their counters follow."""
        cur.execute(
            self._q(
                "SELECT prediction_id, experiment_id, model_version, ts, prediction, label FROM predictions "
                f"WHERE shadow_of = ?{self.dialect.for_update}"
            ),
            (served_id,),
        )
        rows = cur.fetchall()
        if not rows:
            return
        deltas: dict[tuple[int, str, int], list[int]] = defaultdict(lambda: [0] * 6)
        for pid, experiment_id, version, ts, prediction, previous in rows:
            delta = deltas[(experiment_id or _NO_PERIOD, version, int(ts // COUNT_BUCKET_SECONDS))]
            # A relabel takes the old label's contribution back; requests and agreement do not depend on labels.
            for i, n in enumerate(_shadow_outcome(int(prediction), served_prediction, label), start=2):
                delta[i] += n
            if previous is not None:
                for i, n in enumerate(_shadow_outcome(int(prediction), served_prediction, int(previous)), start=2):
                    delta[i] -= n
            cur.execute(
                self._q("UPDATE predictions SET label = ?, labeled_at = ? WHERE prediction_id = ?"),
                (int(label), now, pid),
            )
        self._add_shadow_counts(cur, {key: tuple(d) for key, d in deltas.items()})

    def _label_late_shadow(self, cur: Cursor, shadow_ids: Sequence[str]) -> None:
        """Shadow rows written after their served row was labelled take its label now."""
        now = time.time()
        for chunk in _chunks(shadow_ids, 500):
            marks = ", ".join("?" * len(chunk))
            cur.execute(
                self._q(
                    "SELECT p.prediction_id, p.prediction, p.label FROM predictions s "
                    "JOIN predictions p ON p.prediction_id = s.shadow_of "
                    f"WHERE s.prediction_id IN ({marks}) AND s.label IS NULL AND p.label IS NOT NULL"
                ),
                chunk,
            )
            for served_id, served_prediction, label in {tuple(r) for r in cur.fetchall()}:
                self._label_shadow(cur, str(served_id), int(served_prediction), int(label), now)

    def _apply_pending(self, cur: Cursor, written: set[str]) -> None:
        cur.execute("SELECT prediction_id, label FROM pending_labels")
        due = [LabelItem(str(pid), int(label)) for pid, label in cur.fetchall() if pid in written]
        if not due:
            return
        self._label(cur, due, relabel=True)
        for chunk in _chunks([item.prediction_id for item in due], 500):
            marks = ", ".join("?" * len(chunk))
            cur.execute(self._q(f"DELETE FROM pending_labels WHERE prediction_id IN ({marks})"), chunk)

    def count_errors(self, experiment_id: int | None, version: str, n: int = 1) -> None:
        """Count failed predictions of a version in the period, in the hour they failed."""
        with self._transaction() as cur:
            cur.execute(
                self._q(
                    "INSERT INTO period_counts (experiment_id, version, hour, errors) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (experiment_id, version, hour) DO UPDATE "
                    "SET errors = period_counts.errors + excluded.errors"
                ),
                (experiment_id or _NO_PERIOD, version, int(time.time() // COUNT_BUCKET_SECONDS), int(n)),
            )

    def trim(self, keep_rows: int, *, pending_seconds: float = 600.0, counts_seconds: float = 90 * 86400) -> int:
        """Drop the oldest rows beyond ``keep_rows``, stale queued labels and old counters."""
        now = time.time()
        with self._transaction() as cur:
            cur.execute(
                self._q("DELETE FROM predictions WHERE id <= (SELECT MAX(id) FROM predictions) - ?"), (int(keep_rows),)
            )
            dropped = int(cur.rowcount)
            cur.execute(self._q("DELETE FROM pending_labels WHERE received_at < ?"), (now - pending_seconds,))
            oldest_hour = int((now - counts_seconds) // COUNT_BUCKET_SECONDS)
            cur.execute(self._q("DELETE FROM period_counts WHERE hour < ?"), (oldest_hour,))
            cur.execute(self._q("DELETE FROM latency_counts WHERE hour < ?"), (oldest_hour,))
            cur.execute(self._q("DELETE FROM shadow_counts WHERE hour < ?"), (oldest_hour,))
            return dropped

    def recent_window(self, limit: int, since: float, *, before_id: int | None = None) -> list[WindowRow]:
        """The newest predictions logged at or after ``since`` (and below ``before_id``), newest first."""
        below, params = ("AND id < ? ", (int(before_id),)) if before_id is not None else ("", ())
        rows = self._read(
            "SELECT features, user_hash, client_hash, id, ts FROM predictions "
            f"WHERE ts >= ? AND shadow_of IS NULL {below}ORDER BY id DESC LIMIT ?",
            (float(since), *params, int(limit)),
        )
        return [WindowRow(json.loads(r[0]), r[1], r[2], int(r[3]), float(r[4])) for r in rows]

    def count_predictions(self) -> int:
        """Rows in the prediction log."""
        return int(self._read("SELECT COUNT(*) FROM predictions")[0][0])

    def find_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        """One logged prediction by id."""
        rows = self._read(
            "SELECT prediction_id, ts, experiment_id, model_version, features, prediction, probabilities, "
            "latency_ms, user_hash, client_hash, label, shadow_of FROM predictions WHERE prediction_id = ?",
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
            "client_hash": r[9],
            "label": r[10],
            "shadow_of": r[11],
        }

    # -- labels --------------------------------------------------------------------------------

    def set_labels(self, items: Sequence[LabelItem], *, relabel: bool = False) -> list[LabelOutcome]:
        """Record labels (queueing those asked to wait for their prediction) in one transaction."""
        with self._transaction() as cur:
            self._take_lock(cur, LOCK_LABELS)
            outcomes = self._label(cur, items, relabel=relabel)
            waiting = [
                (i, item)
                for i, (item, outcome) in enumerate(zip(items, outcomes, strict=True))
                if outcome.status == "not_found" and item.queue_if_missing
            ]
            now = time.time()
            for i, item in waiting:
                action = (
                    "DO UPDATE SET label = excluded.label, received_at = excluded.received_at"
                    if relabel
                    else ("DO NOTHING")
                )
                cur.execute(
                    self._q(
                        "INSERT INTO pending_labels (prediction_id, label, received_at) VALUES (?, ?, ?) "
                        f"ON CONFLICT (prediction_id) {action}"
                    ),
                    (item.prediction_id, int(item.label), now),
                )
                queued = int(cur.rowcount) > 0
                outcomes[i] = LabelOutcome("queued" if queued else "refused")
            return outcomes

    def _label(self, cur: Cursor, items: Sequence[LabelItem], *, relabel: bool) -> list[LabelOutcome]:
        outcomes: list[LabelOutcome] = []
        now = time.time()
        deltas: dict[tuple[int, str, int], list[int]] = defaultdict(lambda: [0, 0])
        for item in items:
            cur.execute(
                self._q(
                    "SELECT experiment_id, model_version, ts, prediction, label FROM predictions "
                    f"WHERE prediction_id = ? AND shadow_of IS NULL{self.dialect.for_update}"
                ),
                (item.prediction_id,),
            )
            rows = cur.fetchall()
            if not rows:
                outcomes.append(LabelOutcome("not_found"))
                continue
            experiment_id, version, ts, prediction, previous = rows[0]
            prediction = int(prediction)
            if previous is not None and not relabel:
                outcomes.append(LabelOutcome("refused", version, prediction, int(previous)))
                continue
            cur.execute(
                self._q("UPDATE predictions SET label = ?, labeled_at = ? WHERE prediction_id = ?"),
                (int(item.label), now, item.prediction_id),
            )
            self._label_shadow(cur, item.prediction_id, prediction, int(item.label), now)
            delta = deltas[(experiment_id or _NO_PERIOD, version, int(ts // COUNT_BUCKET_SECONDS))]
            delta[0] += 1 if previous is None else 0
            delta[1] += int(item.label == prediction) - (int(previous == prediction) if previous is not None else 0)
            if previous is None:
                outcomes.append(LabelOutcome("recorded", version, prediction))
            else:
                outcomes.append(LabelOutcome("relabelled", version, prediction, int(previous)))
        if deltas:
            cur.executemany(
                self._q(
                    "INSERT INTO period_counts (experiment_id, version, hour, labeled, correct) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (experiment_id, version, hour) DO UPDATE SET "
                    "labeled = period_counts.labeled + excluded.labeled, "
                    "correct = period_counts.correct + excluded.correct"
                ),
                [(*key, d[0], d[1]) for key, d in deltas.items()],
            )
        return outcomes

    # -- model sets shared by every host --------------------------------------------------------

    def publish_model_set(self, model_set: ModelSetFiles) -> int:
        """Store a model set and its files in one transaction; returns its id."""
        with self._transaction() as cur:
            cur.execute(
                self._q(
                    "INSERT INTO model_sets (manifest_sha256, manifest, signature, published_at) "
                    "VALUES (?, ?, ?, ?) RETURNING id"
                ),
                (hashlib.sha256(model_set.manifest).hexdigest(), model_set.manifest, model_set.signature, time.time()),
            )
            set_id = int(cur.fetchall()[0][0])
            cur.executemany(
                self._q("INSERT INTO model_files (set_id, name, sha256, data) VALUES (?, ?, ?, ?)"),
                [(set_id, name, hashlib.sha256(data).hexdigest(), data) for name, data in model_set.files.items()],
            )
            self._announce(cur, "models")
            return set_id

    def latest_model_set(self) -> PublishedSet | None:
        """The most recently published set."""
        rows = self._read("SELECT id, manifest_sha256, published_at FROM model_sets ORDER BY id DESC LIMIT 1")
        return PublishedSet(int(rows[0][0]), str(rows[0][1]), float(rows[0][2])) if rows else None

    def fetch_model_set(self, set_id: int) -> ModelSetFiles:
        """One published set's bytes."""
        head = self._read("SELECT manifest, signature FROM model_sets WHERE id = ?", (int(set_id),))
        if not head:
            raise KeyError(f"no published model set {set_id}")
        files = self._read("SELECT name, data FROM model_files WHERE set_id = ?", (int(set_id),))
        return ModelSetFiles(bytes(head[0][0]), head[0][1], {str(name): bytes(data) for name, data in files})

    # -- rollouts and leases ---------------------------------------------------------------------

    def current_rollout(self) -> Rollout | None:
        """The latest rollout, running or ended."""
        rows = self._read(f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts ORDER BY id DESC LIMIT 1")
        return _rollout(rows[0]) if rows else None

    def start_rollout(self, plan: dict[str, Any], weights: dict[str, int], entry: dict[str, Any]) -> Rollout:
        """Start a rollout and its first period in one transaction; StateConflict while one runs."""
        with self._transaction() as cur:
            self._take_lock(cur, LOCK_EXPERIMENTS)
            cur.execute(f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts ORDER BY id DESC LIMIT 1")
            rows = cur.fetchall()
            if rows and rows[0][2] == "running":
                raise StateConflict(f"rollout {rows[0][0]} is running")
            latest = self._latest_experiment(cur)
            env = latest.env_weights if latest else dict(weights)
            shadow = _still_shadow(latest, weights)
            now = time.time()
            cur.execute(
                self._q(
                    "INSERT INTO rollouts (plan, state, step, experiment_id, started_at, updated_at, history) "
                    "VALUES (?, 'running', 0, 0, ?, ?, '[]') RETURNING id"
                ),
                (json.dumps(plan, sort_keys=True), now, now),
            )
            rollout_id = int(cur.fetchall()[0][0])
            period = self._insert_experiment(cur, weights, env, f"rollout {rollout_id} step 1", shadow=shadow)
            history = [{**entry, "experiment_id": period.id}]
            cur.execute(
                self._q("UPDATE rollouts SET experiment_id = ?, history = ? WHERE id = ?"),
                (period.id, json.dumps(history), rollout_id),
            )
            self._announce(cur, "experiment")
            return Rollout(rollout_id, dict(plan), "running", 0, period.id, now, now, history)

    def decide_rollout(
        self,
        rollout_id: int,
        step: int,
        *,
        state: str,
        new_step: int,
        entry: dict[str, Any],
        weights: dict[str, int] | None,
    ) -> Rollout:
        """Record a decision on a rollout still running at ``step`` (compare-and-set), with its new period."""
        if state not in ROLLOUT_STATES:
            raise ValueError(f"unknown rollout state {state!r}")
        with self._transaction() as cur:
            self._take_lock(cur, LOCK_EXPERIMENTS)
            cur.execute(
                self._q(f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts WHERE id = ?{self.dialect.for_update}"),
                (int(rollout_id),),
            )
            rows = cur.fetchall()
            if not rows:
                raise StateConflict(f"no rollout {rollout_id}")
            current = _rollout(rows[0])
            if current.state != "running" or current.step != step:
                raise StateConflict(f"rollout {rollout_id} is {current.state} at step {current.step + 1} now")
            experiment_id = current.experiment_id
            if weights is not None:
                latest = self._latest_experiment(cur)
                if latest is None or latest.id != current.experiment_id:
                    raise StateConflict(f"the routing moved under rollout {rollout_id} (period {latest and latest.id})")
                env = latest.env_weights if latest else dict(weights)
                shadow = _still_shadow(latest, weights)
                what = f"step {new_step + 1}" if state == "running" else state
                source = f"rollout {rollout_id} {what}"
                experiment_id = self._insert_experiment(cur, weights, env, source, shadow=shadow).id
                self._announce(cur, "experiment")
            history = [*current.history, {**entry, "experiment_id": experiment_id}]
            now = time.time()
            cur.execute(
                self._q(
                    "UPDATE rollouts SET state = ?, step = ?, experiment_id = ?, updated_at = ?, history = ? "
                    "WHERE id = ?"
                ),
                (state, int(new_step), experiment_id, now, json.dumps(history), int(rollout_id)),
            )
            return Rollout(rollout_id, current.plan, state, new_step, experiment_id, current.started_at, now, history)

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease if it is free or expired, renew it if ``holder`` has it; True when ``holder`` holds it."""
        now = time.time()
        with self._transaction() as cur:
            cur.execute(
                self._q(
                    "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
                    "WHERE leases.holder = excluded.holder OR leases.expires_at < ? RETURNING holder"
                ),
                (name, holder, now + ttl, now),
            )
            return bool(cur.fetchall())

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if ``holder`` holds it."""
        with self._transaction() as cur:
            cur.execute(self._q("DELETE FROM leases WHERE name = ? AND holder = ?"), (name, holder))

    # -- counters ------------------------------------------------------------------------------

    def variant_counts(
        self, *, experiment_id: int | None = None, since: float | None = None, from_experiment: int | None = None
    ) -> list[VariantCounts]:
        """Requests, labelled and correct predictions per (experiment, version) in the period."""
        where, params = _period(experiment_id, since, from_experiment)
        rows = self._read(
            "SELECT experiment_id, version, SUM(requests), SUM(labeled), SUM(correct), SUM(errors) FROM period_counts "
            f"{where} GROUP BY experiment_id, version ORDER BY experiment_id, version",
            params,
        )
        return [VariantCounts(None if r[0] == _NO_PERIOD else int(r[0]), r[1], *(int(x) for x in r[2:])) for r in rows]

    def shadow_counts(
        self, *, experiment_id: int | None = None, since: float | None = None, from_experiment: int | None = None
    ) -> list[ShadowCounts]:
        """The shadow versions' counters per (experiment, version) in the period."""
        where, params = _period(experiment_id, since, from_experiment)
        rows = self._read(
            "SELECT experiment_id, version, SUM(requests), SUM(agreed), SUM(labeled), SUM(correct), "
            f"SUM(served_correct), SUM(discordant) FROM shadow_counts {where} "
            "GROUP BY experiment_id, version ORDER BY experiment_id, version",
            params,
        )
        return [ShadowCounts(None if r[0] == _NO_PERIOD else int(r[0]), r[1], *(int(x) for x in r[2:])) for r in rows]

    def latency_histograms(
        self, *, experiment_id: int | None = None, since: float | None = None, from_experiment: int | None = None
    ) -> dict[str, list[int]]:
        """Per version, predictions per latency bucket in the period."""
        where, params = _period(experiment_id, since, from_experiment)
        rows = self._read(
            f"SELECT version, bucket, SUM(n) FROM latency_counts {where} GROUP BY version, bucket", params
        )
        histograms: dict[str, list[int]] = {}
        for version, bucket, n in rows:
            histograms.setdefault(version, [0] * BUCKET_COUNT)[int(bucket)] += int(n)
        return histograms

    def counted_since(self) -> float | None:
        """The start of the oldest hour the counters hold."""
        rows = self._read("SELECT MIN(hour) FROM period_counts")
        return None if not rows or rows[0][0] is None else float(int(rows[0][0]) * COUNT_BUCKET_SECONDS)

    def period_hours(self, since: float, *, shadow: bool = False) -> list[PeriodHour]:
        """The counters of every (experiment, version, hour) from the hour of ``since`` on, oldest first."""
        table = "shadow_counts" if shadow else "period_counts"
        rows = self._read(
            f"SELECT experiment_id, version, hour, requests, labeled, correct FROM {table} "
            "WHERE hour >= ? ORDER BY hour, experiment_id, version",
            (int(since // COUNT_BUCKET_SECONDS),),
        )
        return [
            PeriodHour(
                None if r[0] == _NO_PERIOD else int(r[0]),
                str(r[1]),
                float(int(r[2]) * COUNT_BUCKET_SECONDS),
                int(r[3]),
                int(r[4]),
                int(r[5]),
            )
            for r in rows
        ]


def _experiment(row: Sequence[Any]) -> Experiment:
    weights, env_weights, shadow = json.loads(row[2]), json.loads(row[3]), tuple(json.loads(row[5]))
    policy = json.loads(row[6]) if row[6] else None
    return Experiment(int(row[0]), float(row[1]), weights, env_weights, str(row[4]), shadow, policy)


def _still_shadow(latest: Experiment | None, weights: dict[str, int]) -> tuple[str, ...]:
    """The shadow versions a rollout's new period keeps: those it does not give traffic to."""
    return tuple(v for v in latest.shadow if not weights.get(v)) if latest else ()


def _shadow_outcome(prediction: int, served: int, label: int) -> tuple[int, int, int, int]:
    """A labelled shadow row's contribution to (labeled, correct, served_correct, discordant)."""
    right, served_right = int(prediction == label), int(served == label)
    return 1, right, served_right, int(right != served_right)


def _rollout(row: Sequence[Any]) -> Rollout:
    return Rollout(
        id=int(row[0]),
        plan=json.loads(row[1]),
        state=str(row[2]),
        step=int(row[3]),
        experiment_id=int(row[4]),
        started_at=float(row[5]),
        updated_at=float(row[6]),
        history=json.loads(row[7]),
    )


def _prediction_row(r: PredictionRecord) -> tuple[Any, ...]:
    return (
        r.prediction_id,
        r.ts,
        r.experiment_id,
        r.model_version,
        json.dumps([float(v) for v in r.features]),
        int(r.prediction),
        json.dumps([round(float(p), 6) for p in r.probabilities]),
        float(r.latency_ms),
        r.user_hash,
        r.client_hash,
        r.shadow_of,
    )


def _period(
    experiment_id: int | None, since: float | None, from_experiment: int | None = None
) -> tuple[str, tuple[Any, ...]]:
    if experiment_id is not None:
        return "WHERE experiment_id = ?", (int(experiment_id),)
    if from_experiment is not None:
        return "WHERE experiment_id >= ?", (int(from_experiment),)
    if since is not None:
        return "WHERE hour >= ?", (int(since // COUNT_BUCKET_SECONDS),)
    return "", ()


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
