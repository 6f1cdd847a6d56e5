"""The A/B report CLI against a store filled by hand: the verdict, JSON, --since, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from app.settings import REPO_DIR
from app.store import LabelItem, PredictionRecord, SQLiteStore


def run(args: list[str], database) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    return subprocess.run(
        [sys.executable, "-m", "app.ab_report", *args],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def database(tmp_path):
    """A period at 50/50 where v1 is right 100 times of 100 and v2 60 times of 100."""
    path = tmp_path / "ab.db"
    store = SQLiteStore(path, create=True)
    period = store.ensure_experiment({"v1": 50, "v2": 50}, {"v1": 50, "v2": 50})
    now = time.time()
    records = [
        PredictionRecord(f"{v}-{i}", now, period.id, v, [5.1, 3.5, 1.4, 0.2], 0, [1.0, 0.0, 0.0], 0.2)
        for v in ("v1", "v2")
        for i in range(100)
    ]
    store.write_predictions(records)
    labels = [(f"v1-{i}", 0) for i in range(100)] + [(f"v2-{i}", 0 if i < 60 else 1) for i in range(100)]
    store.set_labels([LabelItem(pid, label) for pid, label in labels])
    store.close()
    return path


def test_json_report_has_the_counts_and_the_verdict(database):
    result = run(["--json"], database)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["variants"]["v1"]["correct"] == 100 and report["variants"]["v2"]["correct"] == 60
    assert report["comparison"]["winner"] == "v1" and report["comparison"]["p_value_text"] == "p < 0.001"
    assert report["recommendation"].startswith("v1 is more accurate")


def test_text_report(database):
    result = run([], database)
    assert result.returncode == 0
    assert "A/B report (baseline v1, alpha 0.05)" in result.stdout
    assert "Recommendation: v1 is more accurate (100.0% vs 60.0%, p < 0.001): shift traffic to v1" in result.stdout


def test_since_covers_all_periods_and_a_bad_since_exits_two(database):
    report = json.loads(run(["--json", "--since", "2020-01-01T00:00:00Z"], database).stdout)
    assert report["since_clamped"] is True and report["variants"]["v1"]["requests"] == 100
    bad = run(["--since", "yesterday"], database)
    assert bad.returncode == 2 and "since must be" in bad.stderr


def test_an_empty_store_exits_two(tmp_path):
    result = run([], tmp_path / "empty.db")
    assert result.returncode == 2 and "empty.db is gone" in result.stderr
    SQLiteStore(tmp_path / "empty.db", create=True).close()
    result = run([], tmp_path / "empty.db")
    assert result.returncode == 2 and "no experiment recorded yet" in result.stderr
