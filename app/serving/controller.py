"""The one process that decides: it holds a lease in the state store and moves rollouts and the bandit along.

Every worker (on every host sharing the store) runs a ``Controller`` thread, and each ``interval`` it tries to
take or renew the store's ``controller`` lease. Only the holder acts; the lease lasts ``3 * interval``, so when
the holder dies another worker takes over within a few seconds, and a clean shutdown hands it over at once.
Whatever the holder decides is written to the store in one transaction (a rollout's decision is compare-and-set
on its step, a bandit's allocation replaces only the period it was computed from), so even two holders for a
moment, say across a clock jump, could never both move a rollout.

Each tick the holder:

* evaluates the running rollout's step (``app.serving.rollouts``) and records a decision other than hold, with
  the period it leads to;
* otherwise, when the period in force has the Thompson policy, turns each routed version's labels since the
  bandit started into new weights (``app.stats.bandit``), starting a new period only when a share moved by at
  least ``app.stats.bandit.DEFAULT_TOLERANCE`` (2 points), so sticky users keep their version while the
  allocation holds.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from typing import Any

from app.clock import iso
from app.serving import metrics
from app.serving.rollouts import RolloutPlan, evaluate
from app.stats.bandit import allocation_changed, shares_to_weights, thompson_shares
from app.store import Experiment, Rollout, StateConflict, Store, StoreUnavailable

log = logging.getLogger(__name__)

LEASE = "controller"


class Controller:
    """Takes the store's lease every ``interval`` seconds and, while it holds it, decides."""

    def __init__(self, store: Store, *, interval: float) -> None:
        self.store = store
        self.interval = interval
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.leading = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)

    def start(self) -> None:
        """Start deciding (when this process gets the lease)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop, and hand the lease over at once."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)
        if self.leading:
            try:
                self.store.release_lease(LEASE, self.holder)
            except StoreUnavailable as exc:
                log.warning("controller lease not released (it expires by itself): %s", exc)
            self.leading = False

    def tick(self) -> None:
        """Renew the lease; while holding it, decide on the running rollout or rebalance the bandit."""
        held = self.store.acquire_lease(LEASE, self.holder, 3 * self.interval)
        if held != self.leading:
            log.info("controller lease %s by %s", "taken" if held else "lost", self.holder)
        self.leading = held
        if not held:
            return
        rollout = self.store.current_rollout()
        if rollout is not None and rollout.state == "running":
            self._decide(rollout)
            return
        current = self.store.latest_experiment()
        if current is not None and current.policy_name == "thompson":
            self._rebalance(current)

    def _decide(self, rollout: Rollout) -> None:
        current = self.store.latest_experiment()
        if current is not None and current.id != rollout.experiment_id:
            self._abandon(rollout, current)
            return
        plan = RolloutPlan.from_dict(rollout.plan)
        counts = self.store.variant_counts(experiment_id=rollout.experiment_id)
        latency = self.store.latency_histograms(experiment_id=rollout.experiment_id)
        verdict = evaluate(plan, rollout.step, counts, latency, elapsed=time.time() - rollout.updated_at)
        if verdict.decision == "hold":
            return
        versions = list(current.weights) if current else [plan.baseline, plan.candidate]
        if verdict.decision == "advance":
            state, step = "running", rollout.step + 1
        elif verdict.decision == "promote":
            state, step = "promoted", rollout.step
        else:
            state, step = "rolled_back", rollout.step
        weights = plan.weights(plan.share(state, step), versions)
        entry = history_entry(step, weights, verdict.decision, verdict.reason, verdict.evidence)
        try:
            self.store.decide_rollout(
                rollout.id, rollout.step, state=state, new_step=step, entry=entry, weights=weights
            )
        except StateConflict as exc:
            log.info("rollout %d: decision %s not recorded, %s", rollout.id, verdict.decision, exc)
            return
        metrics.ROLLOUT_DECISIONS.labels(verdict.decision).inc()
        log.info("rollout %d: %s, weights %s: %s", rollout.id, verdict.decision, weights, verdict.reason)

    def _abandon(self, rollout: Rollout, current: Experiment) -> None:
        """Another period replaced the step's (new environment weights at a restart win over runtime routing): the
        rollout no longer controls the traffic, so it is recorded as aborted and the routing is left as it is."""
        reason = f"aborted: period {current.id} ({current.source}) replaced the step's period {rollout.experiment_id}"
        entry = history_entry(rollout.step, dict(current.weights), "abort", reason, None)
        try:
            self.store.decide_rollout(
                rollout.id, rollout.step, state="aborted", new_step=rollout.step, entry=entry, weights=None
            )
        except StateConflict:
            return
        metrics.ROLLOUT_DECISIONS.labels("abort").inc()
        log.warning("rollout %d %s", rollout.id, reason)

    def _rebalance(self, current: Experiment) -> None:
        policy = current.policy or {}
        arms = [v for v in policy.get("versions", []) if v in current.weights and v not in current.shadow]
        if len(arms) < 2:
            return
        counts: dict[str, tuple[int, int]] = dict.fromkeys(arms, (0, 0))
        for c in self.store.variant_counts(from_experiment=int(policy["since_experiment"])):
            if c.version in counts:
                labeled, correct = counts[c.version]
                counts[c.version] = (labeled + c.labeled, correct + c.correct)
        shares = thompson_shares(counts, min_share=float(policy["min_share"]))
        weights = dict.fromkeys(current.weights, 0) | shares_to_weights(shares)
        if not allocation_changed(current.weights, weights):
            return
        try:
            started = self.store.start_experiment(
                weights, current.env_weights, "thompson", shadow=current.shadow, policy=policy, replacing=current.id
            )
        except StateConflict:
            return  # someone changed the routing meanwhile: the next tick starts from theirs
        metrics.ROLLOUT_DECISIONS.labels("reallocate").inc()
        log.info("thompson: weights %s from labels %s (experiment %d)", weights, counts, started.id)

    def _run(self) -> None:
        last_error = 0.0
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except StoreUnavailable as exc:
                self.leading = False
                if time.monotonic() - last_error > 60:
                    log.error("controller: state store unavailable: %s", exc)
                    last_error = time.monotonic()
            except Exception:
                log.exception("controller tick failed")  # the controller must never die


def history_entry(
    step: int, weights: dict[str, int], decision: str, reason: str, evidence: dict[str, Any] | None
) -> dict[str, Any]:
    """One line of a rollout's history."""
    return {
        "at": iso(time.time()),
        "step": step,
        "weights": weights,
        "decision": decision,
        "reason": reason,
        "evidence": evidence,
    }
