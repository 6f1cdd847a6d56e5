"""The state store: experiment periods (weights history), the prediction log, feedback and running counters.

``open_store(DATABASE_URL)`` returns the store for the URL; ``app.store.contract`` says what every backend
guarantees, ``app.store.sql`` holds the queries they share and ``app.store.schema`` the migrations.
"""

from __future__ import annotations

from pathlib import Path

from app.store.contract import (
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
    Store,
    StoreHealth,
    StoreUnavailable,
    VariantCounts,
    WindowRow,
)
from app.store.sqlite import SQLiteStore

__all__ = [
    "Experiment",
    "LabelItem",
    "LabelOutcome",
    "ModelSetFiles",
    "PeriodHour",
    "PredictionRecord",
    "PublishedSet",
    "Rollout",
    "SQLiteStore",
    "ShadowCounts",
    "StateConflict",
    "Store",
    "StoreHealth",
    "StoreUnavailable",
    "VariantCounts",
    "WindowRow",
    "open_store",
]


def open_store(database_url: str, *, busy_timeout: float = 5.0, create: bool = False) -> Store:
    """The store for DATABASE_URL: sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host:port/db.

    ``create`` makes and migrates the database when it lacks tables or versions; without it a missing or
    outdated database makes every operation fail with StoreUnavailable (it is never created behind
    the back of the processes already using it).
    """
    if database_url.startswith("sqlite:///"):
        return SQLiteStore(Path(database_url[len("sqlite:///") :]), busy_timeout=busy_timeout, create=create)
    scheme = database_url.split(":", 1)[0]
    if scheme in ("postgresql", "postgres"):
        from app.store.postgres import PostgresStore  # psycopg only where PostgreSQL is used

        return PostgresStore(database_url, busy_timeout=busy_timeout, create=create)
    raise ValueError(f"DATABASE_URL must start with sqlite:/// or postgresql:// (got scheme {scheme!r})")
