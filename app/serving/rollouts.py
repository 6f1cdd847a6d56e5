"""Canary rollouts that decide by themselves: the plan, the weights of each step, and the rule for each decision.

Pure: no I/O. The controller (``app.serving.controller``) reads a running rollout's evidence from the store,
asks ``evaluate`` what to do, and records the decision (``Store.decide_rollout``).

A rollout moves the candidate through the plan's steps (percent of traffic; the baseline gets the rest, every
other version none). Each step is an experiment period of its own, and only that period's evidence counts:

* **roll back at once** when the candidate's error rate is above ``max_error_rate`` beyond doubt (the lower end
  of its always-valid 95% confidence sequence is; rows that failed count like the rows served), when its p99
  latency is above ``max_p99_ms`` (once it served enough requests
  for a p99 to mean something), or when the always-valid confidence sequence of its accuracy minus the
  baseline's lies wholly below 0;
* **advance** when the candidate has at least ``min_labels`` labels in the step and that sequence lies wholly
  above ``-margin`` (non-inferior by the margin);
* otherwise **hold**, saying what is missing.

The sequence is the one the A/B report shows (``app.stats.sequential``): it stays valid however often it is
read, so evaluating every few seconds does not inflate the error rate the way re-reading a fixed-horizon
p-value would. Passing the last step below 100% promotes the candidate to 100%.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from app.stats.latency import quantile_ms
from app.stats.sequential import compare_sequential, proportion_sequence
from app.store import VariantCounts

MIN_P99_REQUESTS = 100
"""A p99 read from fewer requests is the maximum of a handful: the latency guard waits for this many."""


@dataclass(frozen=True)
class RolloutPlan:
    """What ``POST /rollouts`` asks for (validated by ``app.api.validation.parse_rollout_plan``)."""

    candidate: str
    baseline: str
    steps: tuple[int, ...]
    min_labels: int = 200
    margin: float = 0.05
    max_error_rate: float = 0.02
    max_p99_ms: float = 50.0
    alpha: float = 0.05
    max_step_minutes: float | None = None
    """A step still undecided after this long is rolled back (the candidate could not show it is as good);
    None: a step may hold for as long as labels take to come."""

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON (stored with the rollout and shown by ``GET /rollouts/current``)."""
        plan = asdict(self)
        plan["steps"] = list(self.steps)
        return plan

    @classmethod
    def from_dict(cls, plan: Mapping[str, Any]) -> RolloutPlan:
        """A stored plan."""
        return cls(**{**plan, "steps": tuple(plan["steps"])})

    @property
    def last_evaluated(self) -> int:
        """The index of the last step that is judged: a step at 100% leaves no baseline to judge against."""
        below = [i for i, share in enumerate(self.steps) if share < 100]
        return below[-1]

    def share(self, state: str, step: int) -> int:
        """The candidate's percent of traffic once a rollout in ``state`` is at ``step``."""
        return {"running": self.steps[step], "promoted": 100}.get(state, 0)

    def weights(self, share: int, versions: Sequence[str]) -> dict[str, int]:
        """Weights giving the candidate ``share`` percent, the baseline the rest and every other version 0."""
        weights = dict.fromkeys(versions, 0)
        weights[self.baseline] = 100 - share
        weights[self.candidate] = share
        return weights


@dataclass(frozen=True)
class Verdict:
    """What to do about a running step, why, and the evidence it rests on."""

    decision: str
    """hold, advance, promote or rollback."""
    reason: str
    evidence: dict[str, Any]


def evaluate(
    plan: RolloutPlan,
    step: int,
    counts: Sequence[VariantCounts],
    latency: Mapping[str, list[int]],
    elapsed: float = 0.0,
) -> Verdict:
    """The decision for step ``step`` from its period's counters and latency histograms, ``elapsed`` seconds into
    the step."""
    verdict = _judge(plan, step, counts, latency)
    limit = plan.max_step_minutes
    if verdict.decision == "hold" and limit is not None and elapsed >= 60.0 * limit:
        reason = f"no decision after {elapsed / 60.0:.0f} minutes (max_step_minutes {limit:g}): {verdict.reason}"
        return Verdict("rollback", reason, verdict.evidence)
    return verdict


def _judge(plan: RolloutPlan, step: int, counts: Sequence[VariantCounts], latency: Mapping[str, list[int]]) -> Verdict:
    """The step's decision on its evidence alone."""
    by_version = {c.version: c for c in counts}
    cand = _side(by_version.get(plan.candidate), latency.get(plan.candidate, []))
    base = _side(by_version.get(plan.baseline), latency.get(plan.baseline, []))
    evidence: dict[str, Any] = {
        "candidate": cand,
        "baseline": base,
        "accuracy_diff": None,
        "confidence_sequence": None,
        "p_value": None,
    }
    c = by_version.get(plan.candidate)
    b = by_version.get(plan.baseline)
    attempts = (c.requests + c.errors) if c else 0
    # Read every few seconds, so the error rate is judged on its always-valid interval too.
    if c and c.errors and proportion_sequence(c.errors, attempts, alpha=plan.alpha)[0] > plan.max_error_rate:
        rate = c.errors / attempts
        return Verdict(
            "rollback",
            f"{plan.candidate}'s error rate {rate:.1%} ({c.errors} of {attempts}) is above {plan.max_error_rate:.1%}",
            evidence,
        )
    p99 = cand["p99_ms"]
    if c and c.requests >= MIN_P99_REQUESTS and p99 is not None and p99 > plan.max_p99_ms:
        return Verdict(
            "rollback", f"{plan.candidate}'s p99 latency {p99:.1f} ms is above {plan.max_p99_ms:g} ms", evidence
        )
    if not (c and c.labeled and b and b.labeled):
        missing = plan.candidate if not (c and c.labeled) else plan.baseline
        return Verdict("hold", f"waiting for labels: {missing} has none in this step yet", evidence)
    seq = compare_sequential(b.correct, b.labeled, c.correct, c.labeled, alpha=plan.alpha)
    lo, hi = seq["confidence_sequence"]
    evidence.update(accuracy_diff=c.correct / c.labeled - b.correct / b.labeled, confidence_sequence=[lo, hi])
    evidence["p_value"] = seq["p_value"]
    interval = f"[{100 * lo:+.1f}, {100 * hi:+.1f}] pp"
    if hi < 0:
        return Verdict(
            "rollback",
            f"{plan.candidate} is less accurate than {plan.baseline}: always-valid {1 - plan.alpha:.0%} interval "
            f"of the difference {interval} lies below 0",
            evidence,
        )
    if c.labeled < plan.min_labels:
        return Verdict("hold", f"waiting for labels: {plan.candidate} has {c.labeled} of {plan.min_labels}", evidence)
    if lo <= -plan.margin:
        return Verdict(
            "hold",
            f"not yet shown non-inferior: interval {interval} reaches below -{100 * plan.margin:g} pp",
            evidence,
        )
    passed = f"{plan.candidate} non-inferior within {100 * plan.margin:g} pp (interval {interval}, {c.labeled} labels)"
    if step >= plan.last_evaluated:
        return Verdict("promote", f"{passed}: promoted to 100%", evidence)
    return Verdict("advance", f"{passed}: on to {plan.steps[step + 1]}%", evidence)


def _side(counts: VariantCounts | None, histogram: list[int]) -> dict[str, Any]:
    """One version's evidence in a step."""
    if counts is None:
        return {"requests": 0, "errors": 0, "labeled": 0, "accuracy": None, "error_rate": None, "p99_ms": None}
    attempts = counts.requests + counts.errors
    return {
        "requests": counts.requests,
        "errors": counts.errors,
        "labeled": counts.labeled,
        "accuracy": counts.correct / counts.labeled if counts.labeled else None,
        "error_rate": counts.errors / attempts if attempts else None,
        "p99_ms": quantile_ms(histogram, 0.99) if histogram else None,
    }
