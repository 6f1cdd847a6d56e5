"""The SQLite backend of the state store, shared by every gunicorn worker through one database file.

WAL mode: readers never wait for the writer; every write is one short ``BEGIN IMMEDIATE`` transaction.

Healing. The file is created (mode 0600) and migrated only by ``create=True`` — gunicorn's master does it
once before it forks its workers — so a worker never silently creates a second, empty database. Before
each operation a connection checks that the path still names the file it opened: a deleted file makes
the store unavailable (and it stays so, reported in /health, until someone restores the file or restarts
the service); a replaced file (restored from a backup, say) is reopened. A read-only, I/O or cannot-open
error drops the thread's connection, so the next operation reconnects instead of failing for ever.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

from app.store.contract import StoreUnavailable
from app.store.schema import LATEST, Cursor, Dialect, migrate
from app.store.sql import SqlStore

log = logging.getLogger(__name__)

DIALECT = Dialect(
    name="sqlite",
    serial_pk="INTEGER PRIMARY KEY AUTOINCREMENT",
    float_type="REAL",
    blob_type="BLOB",
    hour_of_ts="CAST(ts / 3600 AS INTEGER)",  # ts is positive: truncation is the floor
)

# OperationalErrors that mean the SQL itself is wrong: a bug, never an outage to wait out.
_BUG_MESSAGES = ("syntax error", "no such column", "incomplete input", "has no column named")
# Transient errors after which this connection cannot be trusted: reconnect on the next operation.
_RECONNECT_MESSAGES = ("readonly", "read-only", "disk i/o", "unable to open", "malformed", "not a database",
                       "no such table")  # fmt: skip


class SQLiteStore(SqlStore):
    """SQLite in WAL mode; one connection per thread, every write in a short transaction."""

    dialect = DIALECT

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, create: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if create:
            self._prepare()

    # -- creating and migrating ------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create the file (0600) if there is none, switch it to WAL and apply the migrations it lacks."""
        try:
            if not self.path.parent.exists():
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise self._failed(StoreUnavailable(f"cannot create {self.path.name}: {exc}")) from exc
        try:
            # Several processes start at once: retried while another holds the lock.
            self._retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                done = migrate(
                    conn.cursor(),
                    DIALECT,
                    has_legacy_tables="experiments" in tables and "schema_migrations" not in tables,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if done:
                log.info("state store %s migrated to schema version %d (applied %s)", self.path.name, LATEST, done)
        except sqlite3.Error as exc:
            raise self._failed(StoreUnavailable(f"cannot prepare {self.path.name}: {exc}")) from exc
        finally:
            conn.close()

    def _retry_locked(self, action: Any) -> None:
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # -- connections -----------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection to the file now at ``path`` (reopened if the file was replaced)."""
        state: tuple[sqlite3.Connection, tuple[int, int]] | None = getattr(self._local, "state", None)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._drop_local()
            raise StoreUnavailable(
                f"the database file {self.path.name} is gone; it is not recreated while serving "
                "(restore it, or restart the service to create a new one)"
            ) from None
        identity = (st.st_dev, st.st_ino)
        if state is not None:
            if state[1] == identity:
                return state[0]
            log.warning("the database file %s was replaced; reconnecting", self.path.name)
            self._drop_local()
        try:
            uri = f"file:{quote(str(self.path))}?mode=rw"
            conn = sqlite3.connect(
                uri, uri=True, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            version = _schema_version(conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path.name}: {exc}") from exc
        if version != LATEST:
            conn.close()
            raise StoreUnavailable(
                f"{self.path.name} has schema version {version}, this release needs {LATEST}: it is migrated "
                "by gunicorn's master at start (or STORE_CREATE=true)"
            )
        self._local.state = (conn, identity)
        with self._lock:
            self._connections.append(conn)
        return conn

    def _drop_local(self) -> None:
        state = getattr(self._local, "state", None)
        self._local.state = None
        if state is not None:
            with self._lock:
                if state[0] in self._connections:
                    self._connections.remove(state[0])
            with suppress(sqlite3.Error):
                state[0].close()

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            for conn in self._connections:
                with suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- errors ----------------------------------------------------------------------------------

    def _raise(self, exc: BaseException) -> NoReturn:
        """Raise a transient error as StoreUnavailable (dropping the connection when it cannot be trusted).

        Anything else (a constraint violated, wrong SQL) is a bug and is raised as it is.
        """
        if isinstance(exc, StoreUnavailable):
            raise self._failed(exc)
        bug = isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError)
        message = str(exc).lower()
        if bug or not isinstance(exc, sqlite3.DatabaseError) or any(m in message for m in _BUG_MESSAGES):
            raise exc
        if any(m in message for m in _RECONNECT_MESSAGES):
            self._drop_local()
        raise self._failed(StoreUnavailable(str(exc))) from exc

    # -- reads and transactions ------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            rows = self._conn().execute(sql, tuple(params)).fetchall()
        except (sqlite3.Error, StoreUnavailable) as exc:
            self._raise(exc)
        self._succeeded()
        return rows

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
        except (sqlite3.Error, StoreUnavailable) as exc:
            self._raise(exc)
        try:
            yield conn.cursor()
        except BaseException as exc:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error | StoreUnavailable):
                self._raise(exc)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._raise(exc)
        self._succeeded()


def _schema_version(conn: sqlite3.Connection) -> int | None:
    """The database's schema version: 1 for one made before migrations existed, None for no schema at all."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_migrations" in tables:
        version = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
        return None if version is None else int(version)
    return 1 if "experiments" in tables else None
