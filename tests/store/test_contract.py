"""The store's contract (app.store.contract), checked once against every backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from app.stats.latency import BUCKET_COUNT, bucket_of
from app.store import LabelItem, PredictionRecord, StateConflict, Store
from app.store.contract import COUNT_BUCKET_SECONDS


def record(
    i: int, version: str = "v1", prediction: int = 0, experiment_id: int | None = 1, **extra
) -> PredictionRecord:
    fields = {"ts": time.time(), "latency_ms": 0.5, "user_hash": None, "client_hash": None} | extra
    return PredictionRecord(
        f"id-{i}", fields["ts"], experiment_id, version, [5.1, 3.5, 1.4, 0.2], prediction, [1.0, 0.0, 0.0],
        fields["latency_ms"], fields["user_hash"], fields["client_hash"],
    )  # fmt: skip


def run_together(n: int, action: Callable[[int], object]) -> list[object]:
    """Run ``action(i)`` in n threads released at the same instant; their results in order."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            barrier.wait()
            results[i] = action(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


# --- experiment periods -------------------------------------------------------------------------


def test_period_kept_while_the_environment_is_unchanged(store):
    first = store.ensure_experiment({"v1": 50, "v2": 50}, {"v1": 50, "v2": 50})
    changed = store.start_experiment({"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}, "api")
    assert changed.id > first.id
    assert store.ensure_experiment({"v1": 50, "v2": 50}, {"v1": 50, "v2": 50}) == changed
    new = store.ensure_experiment({"v1": 70, "v2": 30}, {"v1": 70, "v2": 30})
    assert new.id > changed.id and new.weights == {"v1": 70, "v2": 30} and new.source == "env"
    assert [e.source for e in store.experiments()] == ["env", "api", "env"]
    assert store.latest_experiment() == new


def test_processes_starting_at_once_create_one_period(connect):
    connect()  # prepared once, as gunicorn's master does
    stores = [connect(create=False) for _ in range(6)]
    ids = run_together(6, lambda i: stores[i].ensure_experiment({"v1": 1}, {"v1": 1}).id)
    assert len(set(ids)) == 1 and len(stores[0].experiments()) == 1


def test_preparing_at_once_migrates_once(connect):
    stores = run_together(4, lambda _: connect())
    assert all(s.generation() == 0 for s in stores)  # type: ignore[attr-defined]


def test_a_period_keeps_its_shadow_versions_and_policy(store):
    policy = {"name": "thompson", "min_share": 0.1, "since_experiment": 1}
    started = store.start_experiment({"v1": 50, "v2": 50}, {"v1": 50}, "api", shadow=["v3"], policy=policy)
    assert (started.shadow, started.policy) == (("v3",), policy)
    assert store.latest_experiment() == started
    plain = store.start_experiment({"v1": 1}, {"v1": 1}, "api")
    assert (plain.shadow, plain.policy) == ((), None) and store.experiments()[-1] == plain


def test_latest_is_the_highest_id(store):
    ids = [store.start_experiment({"v1": i}, {"v1": 1}, "api").id for i in range(1, 5)]
    assert ids == sorted(ids) and store.latest_experiment().id == ids[-1]


# --- control and secrets ------------------------------------------------------------------------


def test_generation_bumps(store):
    assert store.generation() == 0
    assert store.bump_generation() == 1 and store.bump_generation() == 2 and store.generation() == 2


def test_secret_is_created_once_for_everyone(connect):
    connect()
    stores = [connect(create=False) for _ in range(4)]
    values = run_together(4, lambda i: stores[i].secret("feedback_token"))
    assert len(set(values)) == 1 and len(values[0]) >= 32
    assert stores[0].secret("other") != values[0]


# --- the prediction log and its counters -------------------------------------------------------


def test_batch_counts_and_latency_histogram(store):
    store.write_predictions([record(i, "v1", latency_ms=0.3) for i in range(3)] + [record(9, "v2", latency_ms=30.0)])
    counts = {c.version: (c.experiment_id, c.requests, c.labeled, c.correct) for c in store.variant_counts()}
    assert counts == {"v1": (1, 3, 0, 0), "v2": (1, 1, 0, 0)}
    histograms = store.latency_histograms(experiment_id=1)
    assert len(histograms["v1"]) == BUCKET_COUNT
    assert histograms["v1"][bucket_of(0.0003)] == 3 and histograms["v2"][bucket_of(0.03)] == 1
    assert store.count_predictions() == 4


def test_counters_by_period_and_since(store):
    old = time.time() - 5 * COUNT_BUCKET_SECONDS
    store.write_predictions(
        [record(1, experiment_id=1, ts=old), record(2, experiment_id=2), record(3, experiment_id=None)]
    )
    assert [c.requests for c in store.variant_counts(experiment_id=1)] == [1]
    recent = store.variant_counts(since=time.time() - 60)
    assert sorted((c.experiment_id or 0, c.requests) for c in recent) == [(0, 1), (2, 1)]
    assert store.counted_since() == (old // COUNT_BUCKET_SECONDS) * COUNT_BUCKET_SECONDS


def test_failed_predictions_are_counted_beside_the_served_ones(store):
    store.write_predictions([record(1, "v2")])
    store.count_errors(1, "v2", 3)
    store.count_errors(1, "v3")
    counts = {c.version: (c.requests, c.errors) for c in store.variant_counts(experiment_id=1)}
    assert counts == {"v2": (1, 3), "v3": (0, 1)}


def test_a_period_replaces_only_the_latest(store):
    first = store.start_experiment({"v1": 1}, {"v1": 1}, "api")
    policy = {"name": "thompson", "min_share": 0.1, "since_experiment": None}
    second = store.start_experiment({"v1": 2}, {"v1": 1}, "thompson", policy=policy, replacing=first.id)
    assert second.policy == {**policy, "since_experiment": second.id} == store.latest_experiment().policy
    with pytest.raises(StateConflict):
        store.start_experiment({"v1": 3}, {"v1": 1}, "thompson", replacing=first.id)
    assert store.latest_experiment() == second


def test_a_retried_batch_is_counted_once(store):
    batch = [record(i) for i in range(5)]
    store.write_predictions(batch)
    store.write_predictions([*batch, record(5)], retry=True)
    assert store.count_predictions() == 6
    assert store.variant_counts(experiment_id=1)[0].requests == 6


def test_retention_keeps_the_newest_rows_and_the_counts(store):
    store.write_predictions([record(i) for i in range(50)])
    assert store.trim(20) == 30
    assert store.count_predictions() == 20
    assert store.find_prediction("id-49") is not None and store.find_prediction("id-10") is None
    assert store.variant_counts(experiment_id=1)[0].requests == 50  # the counters outlive the rows


def test_recent_window_newest_first_within_time(store):
    now = time.time()
    store.write_predictions(
        [record(0, ts=now - 7200, client_hash="old")]
        + [record(i, ts=now, user_hash=f"u{i}", client_hash="c") for i in range(1, 6)]
    )
    rows = store.recent_window(3, now - 60)
    assert [r.user_hash for r in rows] == ["u5", "u4", "u3"] and rows[0].client_hash == "c"
    assert all(r.client_hash != "old" for r in store.recent_window(10, now - 60))


def shadow_record(i: int, of: int, prediction: int, served: int, version: str = "v3") -> PredictionRecord:
    return record(100 + i, version, prediction)._replace(shadow_of=f"id-{of}", served_prediction=served)


def test_shadow_rows_have_counters_of_their_own(store):
    now = time.time()
    store.write_predictions(
        [
            record(1, "v1", 0, ts=now, user_hash="u"),
            record(2, "v1", 1, ts=now),
            shadow_record(1, 1, 0, 0),
            shadow_record(2, 2, 2, 1),
        ]
    )
    assert [(c.version, c.requests) for c in store.variant_counts()] == [("v1", 2)]  # never counted as served
    assert set(store.latency_histograms()) == {"v1"}
    (shadow,) = store.shadow_counts(experiment_id=1)
    assert (shadow.version, shadow.requests, shadow.agreed, shadow.labeled) == ("v3", 2, 1, 0)
    assert len(store.recent_window(10, now - 60)) == 2  # the drift window sees served rows only
    assert store.find_prediction("id-101")["shadow_of"] == "id-1"
    assert store.set_labels([LabelItem("id-101", 0)], relabel=True)[0].status == "not_found"  # not labelled directly


def test_a_served_label_labels_its_shadow_rows_whenever_they_arrive(store):
    store.write_predictions([record(1, "v1", 0), record(2, "v1", 1), shadow_record(1, 1, 0, 0)])
    store.set_labels([LabelItem("id-1", 0), LabelItem("id-2", 2)])  # v1 right on id-1, wrong on id-2
    store.write_predictions([shadow_record(2, 2, 2, 1)])  # scored after its served row was labelled
    (shadow,) = store.shadow_counts()
    assert (shadow.labeled, shadow.correct, shadow.served_correct, shadow.discordant) == (2, 2, 1, 1)
    assert store.find_prediction("id-102")["label"] == 2
    store.set_labels([LabelItem("id-1", 1)], relabel=True)  # now both wrong on id-1
    (shadow,) = store.shadow_counts()
    assert (shadow.labeled, shadow.correct, shadow.served_correct, shadow.discordant) == (2, 1, 0, 1)


def test_a_queued_label_reaches_the_shadow_rows_written_with_its_prediction(store):
    store.set_labels([LabelItem("id-5", 1, queue_if_missing=True)])
    store.write_predictions([record(5, "v1", 1), shadow_record(5, 5, 2, 1)])
    (shadow,) = store.shadow_counts()
    assert (shadow.labeled, shadow.correct, shadow.served_correct, shadow.discordant) == (1, 0, 1, 1)


# --- rollouts and leases -------------------------------------------------------------------------


def test_a_rollout_moves_by_compare_and_set(store):
    store.start_experiment({"v1": 100, "v2": 0}, {"v1": 100, "v2": 0}, "api", shadow=["v3", "v2"])
    assert store.current_rollout() is None
    rollout = store.start_rollout({"steps": [10, 100]}, {"v1": 90, "v2": 10}, {"decision": "start"})
    period = store.latest_experiment()
    assert (rollout.state, rollout.step, rollout.experiment_id) == ("running", 0, period.id)
    # Shadow versions carry on, but not the candidate: it serves now.
    assert period.weights == {"v1": 90, "v2": 10} and period.shadow == ("v3",)
    with pytest.raises(StateConflict):
        store.start_rollout({"steps": [10]}, {"v1": 90, "v2": 10}, {"decision": "start"})
    moved = store.decide_rollout(
        rollout.id, 0, state="promoted", new_step=1, entry={"decision": "promote"}, weights={"v1": 0, "v2": 100}
    )
    assert moved.state == "promoted" and store.latest_experiment().weights == {"v1": 0, "v2": 100}
    assert [h["decision"] for h in store.current_rollout().history] == ["start", "promote"]
    assert store.current_rollout().history[-1]["experiment_id"] == store.latest_experiment().id
    with pytest.raises(StateConflict):  # another evaluator's late decision is not recorded
        store.decide_rollout(rollout.id, 0, state="rolled_back", new_step=0, entry={}, weights={"v1": 100})
    assert store.current_rollout().state == "promoted"
    assert store.start_rollout({"steps": [50]}, {"v1": 50, "v2": 50}, {"decision": "start"}).id > rollout.id


def test_a_rollout_owns_the_routing_until_it_ends(store):
    rollout = store.start_rollout({"steps": [10, 100]}, {"v1": 90, "v2": 10}, {"decision": "start"})
    with pytest.raises(StateConflict, match="owns the routing"):
        store.start_experiment({"v1": 50, "v2": 50}, {"v1": 50, "v2": 50}, "api", unless_rollout=True)
    moved = store.ensure_experiment({"v1": 70, "v2": 30}, {"v1": 70, "v2": 30})  # new environment weights win
    with pytest.raises(StateConflict, match="the routing moved"):  # a decision must not undo them
        store.decide_rollout(rollout.id, 0, state="running", new_step=1, entry={}, weights={"v1": 50, "v2": 50})
    assert store.latest_experiment() == moved
    store.decide_rollout(rollout.id, 0, state="aborted", new_step=0, entry={}, weights=None)
    assert store.start_experiment({"v1": 1, "v2": 1}, {"v1": 1}, "api", unless_rollout=True).id > moved.id


def test_evaluators_deciding_at_once_record_one_decision(connect):
    store = connect()
    rollout = store.start_rollout({"steps": [10, 100]}, {"v1": 90, "v2": 10}, {"decision": "start"})
    stores = [connect(create=False) for _ in range(4)]

    def decide(i: int) -> str:
        try:
            stores[i].decide_rollout(
                rollout.id, 0, state="running", new_step=1, entry={"by": i}, weights={"v1": 50, "v2": 50}
            )
            return "decided"
        except StateConflict:
            return "conflict"

    assert sorted(run_together(4, decide)) == ["conflict"] * 3 + ["decided"]
    assert len(store.current_rollout().history) == 2 and len(store.experiments()) == 2


def test_one_lease_holder_at_a_time(connect):
    connect()
    stores = [connect(create=False) for _ in range(4)]
    held = run_together(4, lambda i: stores[i].acquire_lease("controller", f"worker-{i}", 30.0))
    assert sum(held) == 1
    holder = held.index(True)
    assert stores[holder].acquire_lease("controller", f"worker-{holder}", 30.0)  # renewed
    other = (holder + 1) % 4
    assert not stores[other].acquire_lease("controller", f"worker-{other}", 30.0)
    stores[other].release_lease("controller", f"worker-{other}")  # not its lease: nothing happens
    assert not stores[other].acquire_lease("controller", f"worker-{other}", 30.0)
    stores[holder].release_lease("controller", f"worker-{holder}")
    assert stores[other].acquire_lease("controller", f"worker-{other}", 0.0)  # free once released
    assert stores[holder].acquire_lease("controller", f"worker-{holder}", 30.0)  # taken over once expired


def test_recent_window_before_an_id_is_the_window_before_it(store):
    now = time.time()
    store.write_predictions([record(i, ts=now - 100 + i, user_hash=f"u{i}") for i in range(10)])
    newest = store.recent_window(4, 0.0)
    assert [r.user_hash for r in newest] == ["u9", "u8", "u7", "u6"]
    assert [r.ts for r in newest] == [now - 91, now - 92, now - 93, now - 94]
    assert newest[0].id > newest[1].id > newest[2].id > newest[3].id
    before = store.recent_window(4, 0.0, before_id=newest[-1].id)
    assert [r.user_hash for r in before] == ["u5", "u4", "u3", "u2"]
    assert [r.user_hash for r in store.recent_window(4, 0.0, before_id=before[-1].id)] == ["u1", "u0"]
    assert [r.user_hash for r in store.recent_window(4, now - 99.5, before_id=before[-1].id)] == ["u1"]
    assert store.recent_window(4, 0.0, before_id=store.recent_window(10, 0.0)[-1].id) == []


def test_period_hours_are_the_counters_per_experiment_version_and_hour(store):
    hour = (time.time() // COUNT_BUCKET_SECONDS - 3) * COUNT_BUCKET_SECONDS
    store.write_predictions(
        [
            record(1, "v1", 0, experiment_id=1, ts=hour + 10),
            record(2, "v2", 0, experiment_id=1, ts=hour + 20),
            record(3, "v1", 0, experiment_id=2, ts=hour + COUNT_BUCKET_SECONDS + 5),
            record(4, "v1", 0, experiment_id=2, ts=hour + COUNT_BUCKET_SECONDS + 6),
            record(5, "v1", 0, experiment_id=None, ts=hour + 2 * COUNT_BUCKET_SECONDS),
            record(6, "v1", 0, experiment_id=1, ts=hour - 2 * COUNT_BUCKET_SECONDS),
        ]
    )
    store.set_labels([LabelItem("id-1", 0), LabelItem("id-2", 1), LabelItem("id-3", 0)])
    rows = store.period_hours(hour + 1800)  # from the hour holding it
    assert [(r.experiment_id, r.version, r.hour - hour, r.requests, r.labeled, r.correct) for r in rows] == [
        (1, "v1", 0, 1, 1, 1),
        (1, "v2", 0, 1, 1, 0),
        (2, "v1", COUNT_BUCKET_SECONDS, 2, 1, 1),
        (None, "v1", 2 * COUNT_BUCKET_SECONDS, 1, 0, 0),
    ]
    assert len(store.period_hours(0.0)) == 5
    assert store.period_hours(time.time() + COUNT_BUCKET_SECONDS) == []


# --- labels --------------------------------------------------------------------------------------


def test_labels_counts_and_corrections(store):
    store.write_predictions([record(1, "v1", 0), record(2, "v2", 1), record(3, "v2", 2)])
    outcomes = store.set_labels([LabelItem("missing", 0), LabelItem("id-2", 1), LabelItem("id-3", 0)])
    assert [o.status for o in outcomes] == ["not_found", "recorded", "recorded"]
    assert outcomes[1].model_version == "v2" and outcomes[1].prediction == 1
    refused = store.set_labels([LabelItem("id-2", 0)])[0]
    assert refused.status == "refused" and refused.previous_label == 1
    relabelled = store.set_labels([LabelItem("id-2", 0), LabelItem("id-3", 2)], relabel=True)
    assert [o.status for o in relabelled] == ["relabelled", "relabelled"]
    counts = {c.version: (c.requests, c.labeled, c.correct) for c in store.variant_counts(experiment_id=1)}
    assert counts == {"v1": (1, 0, 0), "v2": (2, 2, 1)}  # id-2 now wrong, id-3 now right: one correct
    assert store.find_prediction("id-2")["label"] == 0


def test_two_labels_for_one_prediction_at_once_count_once(connect):
    connect().write_predictions([record(1, "v1", 0)])
    stores = [connect(create=False) for _ in range(6)]
    outcomes = run_together(6, lambda i: stores[i].set_labels([LabelItem("id-1", i % 3)])[0].status)
    assert sorted(outcomes) == ["recorded"] + ["refused"] * 5
    assert stores[0].variant_counts(experiment_id=1)[0].labeled == 1


def test_a_label_for_a_prediction_not_stored_yet_is_applied_when_it_arrives(store):
    outcome = store.set_labels([LabelItem("id-7", 2, queue_if_missing=True)])[0]
    assert outcome.status == "queued"
    assert store.set_labels([LabelItem("id-7", 1, queue_if_missing=True)])[0].status == "refused"
    store.write_predictions([record(7, "v1", 2)])
    assert store.find_prediction("id-7")["label"] == 2
    counts = store.variant_counts(experiment_id=1)[0]
    assert (counts.labeled, counts.correct) == (1, 1)
    assert store.set_labels([LabelItem("id-7", 0)])[0].status == "refused"


def test_queued_labels_expire(store):
    store.set_labels([LabelItem("id-8", 1, queue_if_missing=True)])
    store.trim(1000, pending_seconds=0.0)
    store.write_predictions([record(8)])
    assert store.find_prediction("id-8")["label"] is None


def test_health_is_ok_after_work(store):
    store.write_predictions([record(1)])
    assert store.health().available is True and store.health().error is None


@pytest.mark.parametrize("limit", [0, 1])
def test_empty_answers(store: Store, limit: int):
    assert store.latest_experiment() is None and store.experiments() == []
    assert store.variant_counts() == [] and store.latency_histograms() == {} and store.counted_since() is None
    assert store.recent_window(limit, 0.0) == [] and store.find_prediction("x") is None
    assert store.recent_window(limit, 0.0, before_id=10) == [] and store.period_hours(0.0) == []
