"""The rollout rule: hold, advance, promote or roll back, from one step's counters."""

from __future__ import annotations

import pytest

from app.serving.rollouts import MIN_P99_REQUESTS, RolloutPlan, evaluate
from app.stats.latency import BUCKET_COUNT, bucket_of
from app.store import VariantCounts

PLAN = RolloutPlan("v2", "v1", (10, 50, 100), min_labels=200, margin=0.05, max_error_rate=0.02, max_p99_ms=50)


def counts(version: str, labeled: int, correct: int, requests: int | None = None, errors: int = 0) -> VariantCounts:
    return VariantCounts(7, version, labeled if requests is None else requests, labeled, correct, errors)


def latency(ms: float, n: int) -> list[int]:
    histogram = [0] * BUCKET_COUNT
    histogram[bucket_of(ms / 1000.0)] = n
    return histogram


def test_holds_until_both_sides_have_labels():
    verdict = evaluate(PLAN, 0, [counts("v1", 100, 95)], {})
    assert verdict.decision == "hold" and "v2 has none" in verdict.reason
    assert verdict.evidence["candidate"]["labeled"] == 0 and verdict.evidence["baseline"]["accuracy"] == 0.95


def test_a_clearly_worse_candidate_is_rolled_back_before_min_labels():
    verdict = evaluate(PLAN, 0, [counts("v1", 900, 855), counts("v2", 100, 50)], {})
    assert verdict.decision == "rollback" and "less accurate" in verdict.reason
    lo, hi = verdict.evidence["confidence_sequence"]
    assert lo < verdict.evidence["accuracy_diff"] < hi < 0 and verdict.evidence["p_value"] < 0.05


def test_an_equal_candidate_waits_for_min_labels_then_advances():
    early = evaluate(PLAN, 0, [counts("v1", 1800, 1710), counts("v2", 150, 143)], {})
    assert early.decision == "hold" and "150 of 200" in early.reason
    ready = evaluate(PLAN, 0, [counts("v1", 20000, 19000), counts("v2", 2000, 1900)], {})
    assert ready.decision == "advance" and "on to 50%" in ready.reason
    assert ready.evidence["confidence_sequence"][0] > -0.05


def test_not_yet_non_inferior_holds():
    verdict = evaluate(PLAN, 0, [counts("v1", 300, 285), counts("v2", 200, 180)], {})
    assert verdict.decision == "hold" and "not yet shown non-inferior" in verdict.reason


def test_passing_the_last_step_below_100_promotes():
    plan = RolloutPlan("v2", "v1", (10, 50))
    assert plan.last_evaluated == 1 and PLAN.last_evaluated == 1
    verdict = evaluate(plan, 1, [counts("v1", 20000, 19000), counts("v2", 20000, 19000)], {})
    assert verdict.decision == "promote" and "promoted to 100%" in verdict.reason


def test_error_rate_guard_needs_evidence_beyond_doubt():
    one_in_ten = [counts("v1", 100, 95), counts("v2", 0, 0, requests=9, errors=1)]
    assert evaluate(PLAN, 0, one_in_ten, {}).decision == "hold"  # 1 of 10: could be 2% or less
    many = [counts("v1", 100, 95), counts("v2", 0, 0, requests=180, errors=20)]
    verdict = evaluate(PLAN, 0, many, {})
    assert verdict.decision == "rollback" and "error rate 10.0% (20 of 200)" in verdict.reason
    assert verdict.evidence["candidate"]["error_rate"] == pytest.approx(0.1)


def test_latency_guard_waits_for_enough_requests():
    slow = {"v2": latency(120.0, MIN_P99_REQUESTS)}
    few = [counts("v1", 10, 9), counts("v2", 10, 9, requests=MIN_P99_REQUESTS - 1)]
    assert evaluate(PLAN, 0, few, {"v2": latency(120.0, MIN_P99_REQUESTS - 1)}).decision == "hold"
    enough = [counts("v1", 10, 9), counts("v2", 10, 9, requests=MIN_P99_REQUESTS)]
    verdict = evaluate(PLAN, 0, enough, slow)
    assert verdict.decision == "rollback" and "p99 latency" in verdict.reason and "50 ms" in verdict.reason


def test_step_weights_leave_other_versions_out():
    assert PLAN.weights(10, ["v1", "v2", "v3"]) == {"v1": 90, "v2": 10, "v3": 0}
    assert PLAN.weights(100, ["v1", "v2"]) == {"v1": 0, "v2": 100}
    assert RolloutPlan.from_dict(PLAN.to_dict()) == PLAN


def test_a_step_that_stays_undecided_too_long_is_rolled_back():
    plan = RolloutPlan("v2", "v1", (10, 50), max_step_minutes=30)
    waiting = [counts("v1", 100, 95), counts("v2", 10, 10)]
    assert evaluate(plan, 0, waiting, {}, elapsed=29 * 60).decision == "hold"
    verdict = evaluate(plan, 0, waiting, {}, elapsed=31 * 60)
    assert verdict.decision == "rollback" and "no decision after 31 minutes" in verdict.reason
    assert "v2 has 10 of 200" in verdict.reason
    assert evaluate(PLAN, 0, waiting, {}, elapsed=10**6).decision == "hold"  # no limit unless asked
