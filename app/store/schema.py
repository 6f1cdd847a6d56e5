"""Versioned schema migrations, written once for every SQL backend.

Each migration runs once, inside one transaction that holds the backend's migration lock, so several
processes (or hosts) starting together apply it exactly once and the others see it done. A database made
before migrations existed (the tables are there, the ``schema_migrations`` table is not) counts as
version 1 and is upgraded from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.stats.latency import LATENCY_BUCKETS


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses."""

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed."""

    def execute(self, sql: str, params: Any = ..., /) -> Any:
        """Run one statement."""

    def executemany(self, sql: str, params: Any, /) -> Any:
        """Run one statement for each parameter row."""

    def fetchall(self) -> list[Any]:
        """The rows of the last statement."""


@dataclass(frozen=True)
class Dialect:
    """What differs between SQL backends: column types, a few expressions, locks."""

    name: str
    serial_pk: str
    """An auto-incrementing 64-bit primary key column definition."""
    float_type: str
    blob_type: str
    hour_of_ts: str
    """An expression giving floor(ts / 3600) as an integer, for a column named ts."""
    for_update: str = ""
    """Suffix of a SELECT that locks the rows it reads for the rest of the transaction."""
    lock: str = ""
    """A statement taking a transaction-scoped lock numbered {key}; empty where every write transaction
    is serialised anyway (SQLite's BEGIN IMMEDIATE)."""

    def lock_statement(self, key: int) -> str | None:
        """The statement locking ``key`` until the transaction ends, or None when none is needed."""
        return self.lock.format(key=key) if self.lock else None

    def sql(self, statement: str) -> str:
        """The statement with this backend's parameter markers (the project writes ``?``)."""
        return statement if self.name == "sqlite" else statement.replace("?", "%s")


@dataclass(frozen=True)
class Migration:
    """One schema version: statements to run, then an optional data step."""

    version: int
    description: str
    statements: Callable[[Dialect], list[str]]
    data: Callable[[Cursor, Dialect, bool], None] | None = None
    """Runs after the statements with ``upgraded`` True when the database held data before this run."""


def _v1(d: Dialect) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS experiments (
            id {d.serial_pk},
            started_at {d.float_type} NOT NULL,
            weights TEXT NOT NULL,
            env_weights TEXT NOT NULL,
            source TEXT NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS predictions (
            id {d.serial_pk},
            prediction_id TEXT NOT NULL UNIQUE,
            ts {d.float_type} NOT NULL,
            experiment_id INTEGER,
            model_version TEXT NOT NULL,
            features TEXT NOT NULL,
            prediction INTEGER NOT NULL,
            probabilities TEXT NOT NULL,
            latency_ms {d.float_type} NOT NULL,
            user_hash TEXT,
            label INTEGER,
            labeled_at {d.float_type}
        )""",
        "CREATE INDEX IF NOT EXISTS predictions_experiment ON predictions (experiment_id, model_version)",
        "CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts)",
        "CREATE TABLE IF NOT EXISTS control (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    ]


def _v2(d: Dialect) -> list[str]:
    return [
        "ALTER TABLE predictions ADD COLUMN client_hash TEXT",
        "CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE period_counts (
            experiment_id INTEGER NOT NULL,
            version TEXT NOT NULL,
            hour BIGINT NOT NULL,
            requests BIGINT NOT NULL DEFAULT 0,
            labeled BIGINT NOT NULL DEFAULT 0,
            correct BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, version, hour)
        )""",
        "CREATE INDEX period_counts_hour ON period_counts (hour)",
        """CREATE TABLE latency_counts (
            experiment_id INTEGER NOT NULL,
            version TEXT NOT NULL,
            hour BIGINT NOT NULL,
            bucket INTEGER NOT NULL,
            n BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, version, hour, bucket)
        )""",
        f"""CREATE TABLE pending_labels (
            prediction_id TEXT PRIMARY KEY,
            label INTEGER NOT NULL,
            received_at {d.float_type} NOT NULL
        )""",
    ]


LEGACY_SALT = "mlops-ab"
"""The sticky-assignment salt every install used before it became a per-install secret."""


def _v2_data(cur: Cursor, d: Dialect, upgraded: bool) -> None:
    """Count what an upgraded log already holds, and keep its users on the versions they had."""
    hour = d.hour_of_ts
    cur.execute(
        "INSERT INTO period_counts (experiment_id, version, hour, requests, labeled, correct) "
        f"SELECT COALESCE(experiment_id, 0), model_version, {hour}, COUNT(*), COUNT(label), "
        "SUM(CASE WHEN label = prediction THEN 1 ELSE 0 END) FROM predictions "
        f"GROUP BY COALESCE(experiment_id, 0), model_version, {hour}"
    )
    bucket = " ".join(f"WHEN latency_ms <= {bound * 1000.0!r} THEN {i}" for i, bound in enumerate(LATENCY_BUCKETS))
    case = f"CASE {bucket} ELSE {len(LATENCY_BUCKETS)} END"
    cur.execute(
        "INSERT INTO latency_counts (experiment_id, version, hour, bucket, n) "
        f"SELECT COALESCE(experiment_id, 0), model_version, {hour}, {case}, COUNT(*) FROM predictions "
        f"GROUP BY COALESCE(experiment_id, 0), model_version, {hour}, {case}"
    )
    if upgraded:
        # Sticky users were hashed with the old public default; keep them where they are.
        cur.execute(d.sql("INSERT INTO secrets (name, value) VALUES (?, ?)"), ("experiment_salt", LEGACY_SALT))


def _v3(d: Dialect) -> list[str]:
    return [
        f"""CREATE TABLE model_sets (
            id {d.serial_pk},
            manifest_sha256 TEXT NOT NULL,
            manifest {d.blob_type} NOT NULL,
            signature TEXT,
            published_at {d.float_type} NOT NULL
        )""",
        f"""CREATE TABLE model_files (
            set_id BIGINT NOT NULL,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            data {d.blob_type} NOT NULL,
            PRIMARY KEY (set_id, name)
        )""",
    ]


def _v4(d: Dialect) -> list[str]:
    return [
        "ALTER TABLE experiments ADD COLUMN shadow TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE experiments ADD COLUMN policy TEXT",
        "ALTER TABLE predictions ADD COLUMN shadow_of TEXT",
        "ALTER TABLE period_counts ADD COLUMN errors BIGINT NOT NULL DEFAULT 0",
        "CREATE INDEX predictions_shadow_of ON predictions (shadow_of) WHERE shadow_of IS NOT NULL",
        """CREATE TABLE shadow_counts (
            experiment_id INTEGER NOT NULL,
            version TEXT NOT NULL,
            hour BIGINT NOT NULL,
            requests BIGINT NOT NULL DEFAULT 0,
            agreed BIGINT NOT NULL DEFAULT 0,
            labeled BIGINT NOT NULL DEFAULT 0,
            correct BIGINT NOT NULL DEFAULT 0,
            served_correct BIGINT NOT NULL DEFAULT 0,
            discordant BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (experiment_id, version, hour)
        )""",
        f"""CREATE TABLE rollouts (
            id {d.serial_pk},
            plan TEXT NOT NULL,
            state TEXT NOT NULL,
            step INTEGER NOT NULL,
            experiment_id BIGINT NOT NULL,
            started_at {d.float_type} NOT NULL,
            updated_at {d.float_type} NOT NULL,
            history TEXT NOT NULL
        )""",
        f"""CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at {d.float_type} NOT NULL
        )""",
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "experiments, prediction log, control", _v1),
    Migration(2, "running counters, pending labels, secrets, client hash", _v2, _v2_data),
    Migration(3, "model sets shared by every host", _v3),
    Migration(4, "shadow versions, routing policies, failed predictions, rollouts and leases", _v4),
)
LATEST = MIGRATIONS[-1].version


def migrate(cur: Cursor, d: Dialect, *, has_legacy_tables: bool) -> list[int]:
    """Apply the migrations this database lacks (the caller holds the migration lock); returns them."""
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        f"applied_at {d.float_type} NOT NULL, description TEXT NOT NULL)"
    )
    cur.execute("SELECT version FROM schema_migrations")
    applied = {int(row[0]) for row in cur.fetchall()}
    upgraded = bool(applied) or has_legacy_tables
    if not applied and has_legacy_tables:
        cur.execute(
            d.sql("INSERT INTO schema_migrations (version, applied_at, description) VALUES (?, 0, ?)"),
            (1, "made before migrations existed"),
        )
        applied.add(1)
    done = []
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        for statement in migration.statements(d):
            cur.execute(statement)
        if migration.data is not None:
            migration.data(cur, d, upgraded)
        cur.execute(
            d.sql("INSERT INTO schema_migrations (version, applied_at, description) VALUES (?, ?, ?)"),
            (migration.version, time.time(), migration.description),
        )
        done.append(migration.version)
    return done
