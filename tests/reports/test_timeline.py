"""The A/B timeline from a real store: slices of periods and hours, the split per slice, accuracy running on."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.clock import iso
from app.reports import timeline as timeline_module
from app.reports.timeline import period_view, timeline
from app.stats.experiment import wilson_interval
from app.stats.sequential import proportion_sequence
from app.store import Experiment, LabelItem, PredictionRecord, SQLiteStore

HOUR = 3600.0
H = (time.time() // HOUR - 3) * HOUR  # three whole hours ago
NOW = H + 3 * HOUR + 120


@pytest.fixture
def store(tmp_path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "t.db", create=True)
    yield s
    s.close()


def period_at(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, started: float, weights: dict[str, int]) -> int:
    """Start a period at a chosen time (the store stamps periods with the clock)."""
    with monkeypatch.context() as patch:
        patch.setattr("app.store.sql.time.time", lambda: started)
        return store.start_experiment(weights, weights, "api").id


def served(
    store: SQLiteStore, period: int | None, version: str, ts: float, n: int, right: int = 0, wrong: int = 0
) -> None:
    """n predictions of class 0 at ``ts``; the first ``right`` labelled 0, the next ``wrong`` labelled 1."""
    ids = [f"{period}-{version}-{ts}-{i}" for i in range(n)]
    store.write_predictions([PredictionRecord(pid, ts, period, version, [1.0] * 4, 0, [1.0], 1.0) for pid in ids])
    labels = [LabelItem(pid, 0) for pid in ids[:right]] + [LabelItem(pid, 1) for pid in ids[right : right + wrong]]
    if labels:
        store.set_labels(labels)


@pytest.fixture
def history(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """50/50 from H+10min, then 90/10 from the middle of the next hour; traffic in three hours."""
    first = period_at(store, monkeypatch, H + 600, {"v1": 50, "v2": 50})
    second = period_at(store, monkeypatch, H + HOUR + 1800, {"v1": 90, "v2": 10})
    served(store, first, "v1", H + 700, 10, right=8, wrong=2)
    served(store, first, "v2", H + 800, 10, right=5, wrong=5)
    served(store, first, "v1", H + HOUR + 60, 5)
    served(store, first, "v2", H + HOUR + 60, 5)
    served(store, second, "v1", H + HOUR + 2000, 9)
    served(store, second, "v2", H + HOUR + 2000, 1, right=1)
    served(store, second, "v1", H + 2 * HOUR + 10, 18)
    served(store, second, "v2", H + 2 * HOUR + 10, 2)
    served(store, None, "v2", H + 2 * HOUR + 10, 50, right=50)  # a versioned infer: no period, left out
    return first, second


def test_each_slice_has_its_own_split_and_the_running_accuracy(store, history):
    first, second = history
    result = timeline(store, now=NOW)

    assert result["since"] == iso(H) and result["generated_at"] == iso(NOW) and result["alpha"] == 0.05
    assert set(result) == {"generated_at", "since", "alpha", "periods", "versions", "shadow"}
    assert result["shadow"] == {}  # no shadow version scored anything
    v1, v2 = result["versions"]["v1"], result["versions"]["v2"]
    # The first period's hour, its part of the next hour (until the change), the second's part, its next hour.
    ends = [iso(H + HOUR), iso(H + HOUR + 1800), iso(H + 2 * HOUR), iso(H + 3 * HOUR)]
    assert [p["at"] for p in v1] == ends and [p["at"] for p in v2] == ends
    assert [p["experiment_id"] for p in v1] == [first, first, second, second]
    assert [p["requests"] for p in v1] == [10, 5, 9, 18] and [p["requests"] for p in v2] == [10, 5, 1, 2]
    assert [p["share"] for p in v1] == [0.5, 0.5, 0.9, 0.9]
    assert [p["share"] for p in v2] == [0.5, 0.5, pytest.approx(0.1), pytest.approx(0.1)]
    assert [(p["labeled"], p["correct"]) for p in v1] == [(10, 8)] * 4
    assert [(p["labeled"], p["correct"]) for p in v2] == [(10, 5), (10, 5), (11, 6), (11, 6)]
    assert v2[-1]["accuracy"] == 6 / 11
    assert v2[-1]["ci95"] == list(wilson_interval(6, 11))
    assert v2[-1]["cs"] == list(proportion_sequence(6, 11))
    lo, hi = v2[-1]["cs"]
    assert lo < v2[-1]["ci95"][0] < 6 / 11 < v2[-1]["ci95"][1] < hi


def test_shadow_versions_are_beside_the_served_ones(store, monkeypatch):
    policy = {"name": "thompson", "min_share": 0.1, "versions": ["v1"], "since_experiment": 1}
    with monkeypatch.context() as patch:
        patch.setattr("app.store.sql.time.time", lambda: H + 600)
        period = store.start_experiment({"v1": 100, "v3": 0}, {"v1": 100}, "api", shadow=["v3"], policy=policy)
    ids = [f"s-{i}" for i in range(4)]
    store.write_predictions(
        [PredictionRecord(pid, H + 700, period.id, "v1", [1.0] * 4, 0, [1.0], 1.0) for pid in ids]
        + [
            PredictionRecord(
                f"{pid}-v3", H + 700, period.id, "v3", [1.0] * 4, 1, [1.0], 1.0, shadow_of=pid, served_prediction=0
            )
            for pid in ids[:2]  # the scorer dropped two rows
        ]
    )
    store.set_labels([LabelItem(pid, 1) for pid in ids])  # v1 always wrong, v3 right on the rows it scored
    result = timeline(store, now=NOW)
    (point,) = result["shadow"]["v3"]
    assert (point["requests"], point["share"], point["labeled"], point["accuracy"]) == (2, 0.5, 2, 1.0)
    assert result["versions"]["v1"][0]["accuracy"] == 0.0 and "v3" not in result["versions"]
    assert result["periods"][0]["shadow"] == ["v3"] and result["periods"][0]["policy"]["name"] == "thompson"


def test_the_periods_are_on_the_same_axis(store, history):
    first, second = history
    periods = timeline(store, now=NOW)["periods"]
    assert periods == [
        {
            "id": first,
            "started_at": iso(H + 600),
            "ended_at": iso(H + HOUR + 1800),
            "weights": {"v1": 50, "v2": 50},
            "shares": {"v1": 0.5, "v2": 0.5},
            "source": "api",
            "shadow": [],
            "policy": None,
        },
        {
            "id": second,
            "started_at": iso(H + HOUR + 1800),
            "ended_at": None,
            "weights": {"v1": 90, "v2": 10},
            "shares": {"v1": 0.9, "v2": 0.1},
            "source": "api",
            "shadow": [],
            "policy": None,
        },
    ]


def test_since_starts_the_counts_at_its_hour_and_drops_periods_over_by_then(store, history):
    first, second = history
    from_second_hour = timeline(store, since=H + HOUR + 100, now=NOW)
    assert from_second_hour["since"] == iso(H + HOUR)
    assert [p["id"] for p in from_second_hour["periods"]] == [first, second]
    v1 = from_second_hour["versions"]["v1"]
    assert [p["requests"] for p in v1] == [5, 9, 18]
    assert [p["labeled"] for p in v1] == [0, 0, 0] and v1[0]["accuracy"] is None
    assert v1[0]["ci95"] is None and v1[0]["cs"] is None
    assert [p["labeled"] for p in from_second_hour["versions"]["v2"]] == [0, 1, 1]

    last_hour = timeline(store, since=H + 2 * HOUR, now=NOW)
    assert [p["id"] for p in last_hour["periods"]] == [second]
    assert [p["requests"] for p in last_hour["versions"]["v1"]] == [18]


def test_a_since_before_the_counters_is_their_first_hour(store, history):
    assert timeline(store, since=0.0, now=NOW)["since"] == iso(H)


def test_the_newest_points_are_kept_and_still_count_from_since(store, history, monkeypatch):
    monkeypatch.setattr(timeline_module, "MAX_POINTS", 2)
    v2 = timeline(store, now=NOW)["versions"]["v2"]
    assert [p["at"] for p in v2] == [iso(H + 2 * HOUR), iso(H + 3 * HOUR)]
    assert v2[0]["labeled"] == 11


def test_a_version_not_served_in_a_slice_has_a_point_with_no_traffic(store, monkeypatch):
    only_v1 = period_at(store, monkeypatch, H, {"v1": 100, "v2": 0})
    both = period_at(store, monkeypatch, H + HOUR, {"v1": 50, "v2": 50})
    served(store, only_v1, "v1", H + 10, 4, right=4)
    served(store, both, "v2", H + HOUR + 10, 4)
    versions = timeline(store, now=NOW)["versions"]
    assert [(p["requests"], p["share"]) for p in versions["v2"]] == [(0, 0.0), (4, 1.0)]
    assert [(p["requests"], p["accuracy"]) for p in versions["v1"]] == [(4, 1.0), (0, 1.0)]
    assert versions["v2"][1]["accuracy"] is None


def test_an_empty_store_has_no_points_and_no_periods(store):
    result = timeline(store, now=NOW)
    assert (
        result["versions"] == {} and result["periods"] == [] and result["since"] == iso(NOW // HOUR * HOUR - 7 * 86400)
    )


def test_a_period_is_shown_through_one_function():
    period = Experiment(3, H, {"v1": 3, "v2": 1, "v3": 0}, {"v1": 1}, "env")
    assert period_view(period, None) == {
        "id": 3,
        "started_at": iso(H),
        "ended_at": None,
        "weights": {"v1": 3, "v2": 1, "v3": 0},
        "shares": {"v1": 0.75, "v2": 0.25, "v3": 0.0},
        "source": "env",
        "shadow": [],
        "policy": None,
    }
    assert period_view(period, H + 60)["ended_at"] == iso(H + 60)
