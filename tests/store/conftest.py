"""The store fixtures: one contract suite, run against every backend the project has."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.store import Store, open_store

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each backend, as a DATABASE_URL."""
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        return server.create_database(f"contract_{uuid.uuid4().hex[:12]}")
    return f"sqlite:///{tmp_path / 'contract.db'}"


@pytest.fixture
def connect(store_url: str) -> Iterator[Callable[..., Store]]:
    """Open stores on the same database (``create=True`` prepares it); all are closed at teardown."""
    opened: list[Store] = []

    def opener(*, create: bool = True) -> Store:
        store = open_store(store_url, busy_timeout=2.0, create=create)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(connect: Callable[..., Store]) -> Store:
    """A prepared store on a fresh database."""
    return connect()
