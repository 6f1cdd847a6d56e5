"""What only the SQLite backend does: the file, its mode, WAL, healing after the file goes or turns read-only,
and upgrading a database made before migrations existed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from app.store import PredictionRecord, SQLiteStore, StoreUnavailable, open_store
from app.store.schema import LATEST, LEGACY_SALT


def record(i: int, **extra) -> PredictionRecord:
    return PredictionRecord(f"id-{i}", time.time(), 1, "v1", [5.1, 3.5, 1.4, 0.2], 0, [1.0, 0.0, 0.0], 0.5, **extra)


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "state.db", busy_timeout=0.2, create=True)
    yield s
    s.close()


def test_open_store_urls(tmp_path):
    assert isinstance(open_store(f"sqlite:///{tmp_path / 'a.db'}"), SQLiteStore)
    with pytest.raises(ValueError, match="must start with sqlite:///"):
        open_store("mysql://x")


def test_created_private_in_wal_mode(store):
    assert (os.stat(store.path).st_mode & 0o777) == 0o600
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == LATEST


def test_without_create_a_missing_database_is_never_made(tmp_path):
    s = SQLiteStore(tmp_path / "none.db")
    with pytest.raises(StoreUnavailable, match=r"none\.db is gone; it is not recreated"):
        s.latest_experiment()
    assert not (tmp_path / "none.db").exists()
    assert s.health().available is False and "is gone" in (s.health().error or "")


def test_a_deleted_file_is_noticed_and_not_recreated(store, tmp_path):
    store.write_predictions([record(1)])
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"state.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreUnavailable, match="is gone"):
        store.write_predictions([record(2)])
    assert not store.path.exists() and store.health().available is False


def test_a_replaced_file_is_reopened(store, tmp_path):
    store.write_predictions([record(1)])
    replacement = tmp_path / "restored.db"
    SQLiteStore(replacement, create=True).close()
    os.replace(replacement, store.path)  # a restore: the new file, without the old one's WAL
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"state.db{suffix}").unlink(missing_ok=True)
    assert store.count_predictions() == 0  # the new file, not the old one still open
    store.write_predictions([record(2)])
    assert store.find_prediction("id-2") is not None and store.health().available


def test_a_locked_store_is_transient_and_heals(store):
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            store.write_predictions([record(1)])
        assert store.health().available is False
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.write_predictions([record(1)])
    assert store.count_predictions() == 1 and store.health().available is True


def test_bugs_are_not_mistaken_for_outages(store):
    with pytest.raises(sqlite3.ProgrammingError, match="binding parameter"):
        store.find_prediction(object())  # type: ignore[arg-type]
    assert store.health().available is True


READ_ONLY_EPISODE = textwrap.dedent(
    """
    import os, sys, time
    from app.store import PredictionRecord, SQLiteStore, StoreUnavailable
    path = sys.argv[1]
    s = SQLiteStore(path, create=True)
    def rec(i): return PredictionRecord(f"id-{i}", time.time(), 1, "v1", [1.0] * 4, 0, [1.0], 0.5)
    s.write_predictions([rec(1)])
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name): os.chmod(name, 0o444)
    # A connection opened during the episode: SQLite silently opens it read-only.
    during = SQLiteStore(path)
    try:
        during.write_predictions([rec(2)])
        print("write succeeded while read-only")
    except StoreUnavailable as exc:
        print("refused:", "readonly" in str(exc) or "read-only" in str(exc))
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name): os.chmod(name, 0o600)
    during.write_predictions([rec(3)])  # at once, not after a timeout: the read-only connection was dropped
    print("healed:", during.count_predictions() == 2, during.health().available)
    """
)


def test_writes_resume_as_soon_as_a_read_only_file_is_writable_again():
    """Run as an unprivileged user (root ignores file modes), the file turns read-only, then writable."""
    with tempfile.TemporaryDirectory(prefix="mlops-ro-") as name:
        folder = Path(name)
        os.chmod(folder, 0o755)
        command = [sys.executable, "-c", READ_ONLY_EPISODE, str(folder / "state.db")]
        if os.geteuid() == 0:
            os.chown(folder, 65534, 65534)
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["refused: True", "healed: True True"]


LEGACY_SCHEMA = """
CREATE TABLE experiments (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL, weights TEXT NOT NULL,
    env_weights TEXT NOT NULL, source TEXT NOT NULL);
CREATE TABLE predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, prediction_id TEXT NOT NULL UNIQUE, ts REAL NOT NULL,
    experiment_id INTEGER, model_version TEXT NOT NULL, features TEXT NOT NULL, prediction INTEGER NOT NULL,
    probabilities TEXT NOT NULL, latency_ms REAL NOT NULL, user_hash TEXT, label INTEGER, labeled_at REAL);
CREATE INDEX predictions_experiment ON predictions (experiment_id, model_version);
CREATE INDEX predictions_ts ON predictions (ts);
CREATE TABLE control (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def test_a_database_of_the_previous_release_is_upgraded(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(LEGACY_SCHEMA)
        db.execute("""INSERT INTO experiments VALUES (1, 0, '{"v1": 50}', '{"v1": 50}', 'env')""")
        now = time.time()
        db.executemany(
            "INSERT INTO predictions (prediction_id, ts, experiment_id, model_version, features, prediction, "
            "probabilities, latency_ms, label) VALUES (?, ?, 1, 'v1', '[1,2,3,4]', 0, '[1,0,0]', ?, ?)",
            [("a", now, 0.3, 0), ("b", now, 3.0, 1), ("c", now, 0.3, None)],
        )
    with pytest.raises(StoreUnavailable, match=f"schema version 1, this release needs {LATEST}"):
        SQLiteStore(path).count_predictions()  # a worker never migrates
    upgraded = SQLiteStore(path, create=True)
    counts = upgraded.variant_counts(experiment_id=1)[0]
    assert (counts.requests, counts.labeled, counts.correct) == (3, 2, 1)
    assert sum(upgraded.latency_histograms(experiment_id=1)["v1"]) == 3
    assert upgraded.secret("experiment_salt") == LEGACY_SALT  # sticky users keep their versions
    assert upgraded.latest_experiment().id == 1 and upgraded.find_prediction("a")["label"] == 0
    upgraded.close()
    again = SQLiteStore(path, create=True)  # migrations run once
    assert again.variant_counts(experiment_id=1)[0].requests == 3
    again.close()


def test_a_fresh_install_gets_a_random_salt(store):
    assert store.secret("experiment_salt") not in (LEGACY_SALT, "")
