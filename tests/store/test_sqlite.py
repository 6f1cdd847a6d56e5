"""The SQLite state store and the batched prediction log."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from app.store import PredictionRecord, SQLiteStore, StoreUnavailable, open_store


def record(i: int, version: str = "v1", prediction: int = 0, experiment_id: int | None = 1) -> PredictionRecord:
    return PredictionRecord(
        f"id-{i}", time.time(), experiment_id, version, [5.1, 3.5, 1.4, 0.2], prediction, [1.0, 0.0, 0.0], 0.5 + i % 3
    )


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "state.db", busy_timeout=0.2)
    yield s
    s.close()


def test_open_store_urls(tmp_path):
    assert isinstance(open_store(f"sqlite:///{tmp_path / 'a.db'}"), SQLiteStore)
    with pytest.raises(ValueError, match="PostgreSQL"):
        open_store("postgresql://localhost/db")
    with pytest.raises(ValueError, match="must start with sqlite:///"):
        open_store("mysql://x")


def test_wal_mode(store):
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_experiment_kept_while_environment_is_unchanged(store):
    first = store.ensure_experiment({"v1": 50, "v2": 50}, {"v1": 50, "v2": 50})
    changed = store.start_experiment({"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}, "api")
    assert changed.id == first.id + 1
    # a restart with the same environment keeps the runtime weights
    assert store.ensure_experiment({"v1": 50, "v2": 50}, {"v1": 50, "v2": 50}) == changed
    # a restart with new environment weights starts a new period from them
    new = store.ensure_experiment({"v1": 70, "v2": 30}, {"v1": 70, "v2": 30})
    assert new.id == changed.id + 1 and new.weights == {"v1": 70, "v2": 30} and new.source == "env"
    assert [e.source for e in store.experiments()] == ["env", "api", "env"]


def test_concurrent_starts_create_one_experiment(tmp_path):
    barrier = threading.Barrier(6)
    results = []

    def start():
        s = SQLiteStore(tmp_path / "race.db")
        barrier.wait()
        results.append(s.ensure_experiment({"v1": 1}, {"v1": 1}).id)
        s.close()

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1


def test_labels_counts_and_corrections(store):
    store.write_predictions([record(1, "v1", 0), record(2, "v2", 1), record(3, "v2", 2)])
    assert store.set_label("missing", 0) is None
    first = store.set_label("id-2", 1)
    assert first.model_version == "v2" and first.prediction == 1 and first.previous_label is None
    assert store.set_label("id-2", 0).previous_label == 1
    store.set_label("id-3", 2)
    counts = {c.version: c for c in store.variant_counts(experiment_id=1)}
    assert (counts["v2"].requests, counts["v2"].labeled, counts["v2"].correct) == (2, 2, 1)
    assert (counts["v1"].requests, counts["v1"].labeled, counts["v1"].correct) == (1, 0, 0)
    assert store.find_prediction("id-2")["label"] == 0
    assert sorted(store.latencies(experiment_id=1)["v2"]) == [0.5, 2.5]


def test_duplicate_ids_are_ignored(store):
    store.write_predictions([record(1)])
    store.write_predictions([record(1)])
    assert store.count_predictions() == 1


def test_trim_keeps_the_newest_rows(store):
    store.write_predictions([record(i) for i in range(50)])
    assert store.trim(20) == 30
    assert store.count_predictions() == 20
    assert store.find_prediction("id-49") is not None and store.find_prediction("id-10") is None


def test_recent_features_newest_first(store):
    store.write_predictions(
        [PredictionRecord(f"p{i}", time.time(), 1, "v1", [float(i)] * 4, 0, [1, 0, 0], 1.0) for i in range(10)]
    )
    assert [row[0] for row in store.recent_features(3)] == [9.0, 8.0, 7.0]


def test_generation_bumps(store):
    assert store.generation() == 0
    assert store.bump_generation() == 1 and store.bump_generation() == 2 and store.generation() == 2


def test_unavailable_read_raises_store_unavailable(tmp_path):
    s = SQLiteStore(tmp_path / "gone.db")
    s.path.unlink()
    (tmp_path / "gone.db").mkdir()  # the path is now a directory: reads on a new connection fail
    s.close()
    with pytest.raises(StoreUnavailable, match="unable to open"):
        s.count_predictions()
