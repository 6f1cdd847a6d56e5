"""Drift of the live window: the newest DRIFT_WINDOW rows of the store, every worker's."""

from __future__ import annotations

import itertools
import time

import numpy as np

from app.clock import iso
from app.reports.drift import cap_clients, drift_history, window_drift
from app.settings import Settings
from app.store import PredictionRecord, SQLiteStore, WindowRow
from app.training.datasets import load_iris_dataset

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_window_is_the_newest_rows_and_settings_apply(tmp_path):
    reference = load_iris_dataset().X
    store = SQLiteStore(tmp_path / "d.db", create=True)
    shifted = reference.copy()
    shifted[:, 2] += 3.0
    rows = [*reference[:50].tolist(), *shifted[:40].tolist()]  # the newest 40 moved
    store.write_predictions(
        [PredictionRecord(f"p{i}", time.time(), 1, "v1", row, 0, [1.0], 1.0) for i, row in enumerate(rows)]
    )
    settings = Settings.from_env({}, drift_window=40, drift_min_samples=30, drift_threshold=0.4)
    result = window_drift(store, reference, NAMES, settings)
    assert result["samples"] == 40 and result["window_size"] == 40 and result["threshold"] == 0.4
    assert result["drift_detected"] is True and result["features"]["petal_length"]["drifted"] is True
    wide = window_drift(store, reference, NAMES, settings.with_overrides(drift_window=1000))
    assert wide["samples"] == 90
    store.close()


def test_rows_of_another_width_are_left_out(tmp_path):
    store = SQLiteStore(tmp_path / "w.db", create=True)
    store.write_predictions([PredictionRecord("odd", time.time(), 1, "v1", [1.0, 2.0], 0, [1.0], 1.0)])
    result = window_drift(store, np.ones((10, 4)), NAMES, Settings.from_env({}))
    assert result["samples"] == 0 and result["status"] == "INSUFFICIENT_DATA"
    store.close()


def test_no_client_fills_more_than_its_share_of_the_window():
    rows = [WindowRow([1.0] * 4, None, "burst") for _ in range(100)]
    rows += [WindowRow([float(i)] * 4, f"user-{i}", "shared-address") for i in range(60)]
    rows += [WindowRow([2.0] * 4, None, None) for _ in range(10)]  # logged without a client: not capped
    kept, skipped = cap_clients(rows, window=40, share=0.25, width=4)
    assert len(kept) == 40 and skipped == 90
    assert kept[:10] == [[1.0] * 4] * 10  # the burst's 25% of the window, then the next clients
    assert kept[10:] == [[float(i)] * 4 for i in range(30)]


def test_a_burst_from_one_client_cannot_flip_the_verdict(tmp_path):
    reference = load_iris_dataset().X
    store = SQLiteStore(tmp_path / "b.db", create=True)
    shifted = reference[:100].copy()
    shifted[:, 2] += 3.0
    store.write_predictions(
        [PredictionRecord(f"p{i}", time.time(), 1, "v1", row, 0, [1.0], 1.0, None, "attacker")
         for i, row in enumerate(shifted.tolist())]
    )  # fmt: skip
    settings = Settings.from_env({})
    assert window_drift(store, reference, NAMES, settings)["status"] == "INSUFFICIENT_DATA"  # 25 rows kept
    assert window_drift(store, reference, NAMES, settings.with_overrides(drift_client_share=1.0))["drift_detected"]
    store.close()


def test_history_goes_back_in_windows_that_share_no_row_and_the_score_rises_with_the_shift(tmp_path):
    reference = load_iris_dataset().X
    store = SQLiteStore(tmp_path / "h.db", create=True)
    rng = np.random.default_rng(3)
    rows = reference[rng.choice(len(reference), 10)].tolist()  # the start of the log: too few for a window
    for shift in (0.0, 0.0, 0.25, 0.5, 1.0, 2.0):  # six windows of 40 rows, petal length moving further
        window = reference[rng.choice(len(reference), 40)].copy()
        window[:, 2] += shift * reference[:, 2].std()
        rows.extend(window.tolist())
    start = time.time() - 1000
    store.write_predictions(
        [PredictionRecord(f"p{i}", start + i, 1, "v1", row, 0, [1.0], 1.0) for i, row in enumerate(rows)]
    )
    settings = Settings.from_env({}, drift_window=40, drift_min_samples=30, drift_threshold=0.3)

    history = drift_history(store, reference, NAMES, settings, points=10)

    assert history["threshold"] == 0.3 and history["window_size"] == 40
    windows = history["windows"]
    assert [w["rows"] for w in windows] == [40] * 6  # oldest first; the first 10 rows are left out
    assert windows[0]["start"] == iso(start + 10) and windows[0]["end"] == iso(start + 49)
    assert windows[-1]["start"] == iso(start + 210) and windows[-1]["end"] == iso(start + 249)
    assert all(older["end"] < newer["start"] for older, newer in itertools.pairwise(windows))
    scores = [w["drift_score"] for w in windows]
    assert [w["drift_detected"] for w in windows] == [s >= 0.3 for s in scores]
    assert scores[0] < 0.3 and scores[1] < 0.3 and windows[-1]["drift_detected"] is True
    assert scores[-1] > scores[3] > scores[0]
    assert set(windows[-1]["features"]["petal_length"]) >= {"p_value_adjusted", "psi", "mean_shift_sd", "drifted"}
    assert windows[-1]["features"]["petal_length"]["drifted"] is True
    # Fewer points: the newest windows.
    assert [w["end"] for w in drift_history(store, reference, NAMES, settings, points=2)["windows"]] == [
        iso(start + 209),
        iso(start + 249),
    ]
    store.close()


def test_the_newest_window_of_the_history_is_the_live_window(tmp_path):
    reference = load_iris_dataset().X
    store = SQLiteStore(tmp_path / "n.db", create=True)
    rows = reference.tolist()
    store.write_predictions(
        [PredictionRecord(f"p{i}", time.time(), 1, "v1", row, 0, [1.0], 1.0, f"u{i % 3}") for i, row in enumerate(rows)]
    )
    settings = Settings.from_env({}, drift_window=40, drift_min_samples=30)
    live = window_drift(store, reference, NAMES, settings)
    newest = drift_history(store, reference, NAMES, settings, points=1)["windows"][-1]
    assert newest["rows"] == live["samples"] == 30 and newest["drift_score"] == live["drift_score"]
    assert newest["features"] == live["features"]
    store.close()


def test_an_empty_log_has_no_history(tmp_path):
    store = SQLiteStore(tmp_path / "e.db", create=True)
    history = drift_history(store, load_iris_dataset().X, NAMES, Settings.from_env({}), points=5)
    assert history["windows"] == [] and history["window_size"] == 100
    store.close()
