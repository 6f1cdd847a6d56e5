"""The controller: one lease holder decides rollouts and moves the bandit, and its decisions land once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.serving.controller import LEASE, Controller, history_entry
from app.serving.rollouts import RolloutPlan
from app.store import LabelItem, PredictionRecord, SQLiteStore, Store
from tests.helpers import counter

PLAN = RolloutPlan("v2", "v1", (10, 50, 100), min_labels=50, margin=0.1)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = SQLiteStore(tmp_path / "state.db", create=True)
    opened.start_experiment({"v1": 100, "v2": 0}, {"v1": 100, "v2": 0}, "env")
    yield opened
    opened.close()


def labelled(store: Store, experiment_id: int, version: str, n: int, right: int, start: int = 0) -> None:
    """``n`` predictions of ``version`` in the period, ``right`` of them labelled correctly and the rest wrongly."""
    now = time.time()
    store.write_predictions(
        [
            PredictionRecord(f"{version}-{start + i}", now, experiment_id, version, [1.0] * 4, 0, [1.0, 0, 0], 1.0)
            for i in range(n)
        ]
    )
    store.set_labels([LabelItem(f"{version}-{start + i}", 0 if i < right else 1) for i in range(n)])


def start(store: Store) -> int:
    weights = PLAN.weights(PLAN.steps[0], ["v1", "v2"])
    return store.start_rollout(PLAN.to_dict(), weights, history_entry(0, weights, "start", "test", None)).experiment_id


def test_only_the_lease_holder_decides(store):
    first, second = Controller(store, interval=1.0), Controller(store, interval=1.0)
    period = start(store)
    labelled(store, period, "v1", 400, 380)
    labelled(store, period, "v2", 100, 50)
    first.tick()
    second.tick()
    assert first.leading and not second.leading
    rollout = store.current_rollout()
    assert rollout.state == "rolled_back" and [h["decision"] for h in rollout.history] == ["start", "rollback"]
    assert store.latest_experiment().weights == {"v1": 100, "v2": 0}
    assert "less accurate" in rollout.history[-1]["reason"] and rollout.history[-1]["evidence"]["p_value"] < 0.05
    first.stop()  # hands the lease over at once
    second.tick()
    assert second.leading
    second.stop()


def test_an_equal_candidate_walks_every_step_to_promotion(store):
    controller = Controller(store, interval=1.0)
    period = start(store)
    for step in range(2):
        before = counter("rollout_decisions_total", decision="advance" if step == 0 else "promote")
        labelled(store, period, "v1", 2000, 1900, start=step * 10_000)
        labelled(store, period, "v2", 2000, 1900, start=step * 10_000)
        controller.tick()
        rollout = store.current_rollout()
        period = rollout.experiment_id
        assert counter("rollout_decisions_total", decision="advance" if step == 0 else "promote") == before + 1
    assert rollout.state == "promoted" and [h["decision"] for h in rollout.history] == ["start", "advance", "promote"]
    assert [h["weights"]["v2"] for h in rollout.history] == [10, 50, 100]
    assert store.latest_experiment().weights == {"v1": 0, "v2": 100}
    assert store.latest_experiment().source == f"rollout {rollout.id} promoted"
    controller.tick()  # nothing left to decide
    assert store.current_rollout().history == rollout.history
    controller.stop()


def test_a_rollout_whose_period_was_replaced_is_aborted_and_the_routing_left_alone(store):
    controller = Controller(store, interval=1.0)
    start(store)
    replaced = store.ensure_experiment({"v1": 70, "v2": 30}, {"v1": 70, "v2": 30})  # a restart with new env weights
    controller.tick()
    rollout = store.current_rollout()
    assert rollout.state == "aborted" and f"period {replaced.id} (env) replaced" in rollout.history[-1]["reason"]
    assert rollout.history[-1]["weights"] == {"v1": 70, "v2": 30} and store.latest_experiment() == replaced
    controller.stop()


def test_a_held_step_writes_nothing(store):
    controller = Controller(store, interval=1.0)
    period = start(store)
    labelled(store, period, "v1", 100, 95)
    labelled(store, period, "v2", 10, 10)
    controller.tick()
    assert len(store.current_rollout().history) == 1 and store.latest_experiment().id == period
    controller.stop()


def test_the_bandit_moves_traffic_to_the_better_version_and_keeps_a_minimum(store):
    policy = {"name": "thompson", "min_share": 0.1, "versions": ["v1", "v2"], "since_experiment": None}
    first = store.start_experiment({"v1": 50, "v2": 50}, {"v1": 100, "v2": 0}, "api", policy=policy)
    controller = Controller(store, interval=1.0)
    controller.tick()
    assert store.latest_experiment() == first  # no labels: shares stay equal, no new period
    labelled(store, first.id, "v1", 200, 190)
    labelled(store, first.id, "v2", 200, 120)
    controller.tick()
    moved = store.latest_experiment()
    assert moved.id > first.id and moved.source == "thompson" and moved.policy == first.policy
    assert moved.weights["v1"] == 900 and moved.weights["v2"] == 100  # the minimum share, not less
    controller.tick()  # the same evidence: the allocation holds, sticky users keep their version
    assert store.latest_experiment() == moved
    controller.stop()


def test_the_bandit_never_routes_to_a_shadow_version(store):
    policy = {"name": "thompson", "min_share": 0.1, "versions": ["v1", "v2"], "since_experiment": None}
    first = store.start_experiment({"v1": 100, "v2": 0}, {"v1": 100, "v2": 0}, "api", shadow=["v2"], policy=policy)
    labelled(store, first.id, "v1", 200, 100)
    controller = Controller(store, interval=1.0)
    controller.tick()
    assert store.latest_experiment() == first  # one arm left: nothing to choose between
    controller.stop()


def test_the_lease_is_taken_over_once_it_expires(store):
    holder = Controller(store, interval=0.01)
    holder.tick()
    assert holder.leading
    other = Controller(store, interval=1.0)
    other.tick()
    assert not other.leading
    time.sleep(0.05)  # the holder's lease (3 intervals = 30 ms) runs out: it died without releasing
    other.tick()
    assert other.leading and not store.acquire_lease(LEASE, holder.holder, 1.0)
    other.stop()
