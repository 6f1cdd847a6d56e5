"""The A/B report of a period from store counts: expected shares from one rule, periods mixed by traffic."""

from __future__ import annotations

import time

import pytest

from app.reports.ab import ab_report
from app.store import PredictionRecord, SQLiteStore


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "r.db", create=True)
    yield s
    s.close()


def served(store, period_id: int, version: str, n: int, start: int = 0) -> None:
    store.write_predictions(
        [
            PredictionRecord(f"{period_id}-{version}-{i}", time.time(), period_id, version, [1.0] * 4, 0, [1.0], 1.0)
            for i in range(start, start + n)
        ]
    )


def test_current_period_uses_the_configured_shares(store):
    period = store.ensure_experiment({"v1": 75, "v2": 25}, {"v1": 75, "v2": 25})
    served(store, period.id, "v1", 30)
    served(store, period.id, "v2", 10)
    report = ab_report(store, period)
    assert report["variants"]["v1"]["expected_share"] == 0.75 and report["variants"]["v2"]["requests"] == 10
    assert report["experiment"]["id"] == period.id and report["srm"]["mismatch"] is False


def test_router_shares_win_over_the_weights(store):
    period = store.ensure_experiment({"v1": 50, "v2": 50}, {"v1": 50, "v2": 50})
    report = ab_report(store, period, shares={"v1": 1.0, "v2": 0.0})
    assert report["variants"]["v1"]["expected_share"] == 1.0 and report["variants"]["v2"]["expected_share"] == 0.0


def test_since_mixes_each_periods_shares_by_its_traffic(store):
    first = store.ensure_experiment({"v1": 100, "v2": 0}, {"v1": 100, "v2": 0})
    served(store, first.id, "v1", 300)
    second = store.start_experiment({"v1": 50, "v2": 50}, {"v1": 100, "v2": 0}, "api")
    served(store, second.id, "v1", 50)
    served(store, second.id, "v2", 50)
    report = ab_report(store, second, since=0.0)
    # 300 rows expected all on v1, 100 rows expected half and half: v1 350/400, v2 50/400.
    assert report["variants"]["v1"]["expected_share"] == pytest.approx(350 / 400)
    assert report["variants"]["v2"]["expected_share"] == pytest.approx(50 / 400)
    assert report["variants"]["v1"]["requests"] == 350
