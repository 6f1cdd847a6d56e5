"""The state store: experiment periods (weights history), the prediction log and feedback.

``open_store(DATABASE_URL)`` returns the store for the URL. SQLite (``app.store.sqlite``) is the only
backend so far; ``app.store.contract`` says what any backend must guarantee.
"""

from __future__ import annotations

from pathlib import Path

from app.store.contract import (
    Experiment,
    LabelResult,
    PredictionRecord,
    Store,
    StoreUnavailable,
    VariantCounts,
)
from app.store.sqlite import SQLiteStore

__all__ = [
    "Experiment",
    "LabelResult",
    "PredictionRecord",
    "SQLiteStore",
    "Store",
    "StoreUnavailable",
    "VariantCounts",
    "open_store",
]


def open_store(database_url: str, *, busy_timeout: float = 5.0) -> Store:
    """The store for DATABASE_URL (sqlite:///relative.db or sqlite:////absolute.db)."""
    if database_url.startswith("sqlite:///"):
        return SQLiteStore(Path(database_url[len("sqlite:///") :]), busy_timeout=busy_timeout)
    scheme = database_url.split(":", 1)[0]
    if scheme in ("postgresql", "postgres"):
        raise ValueError("DATABASE_URL: the PostgreSQL backend is not part of this release; implement Store for it")
    raise ValueError(f"DATABASE_URL must start with sqlite:/// (got scheme {scheme!r})")
