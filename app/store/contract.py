"""The state store's contract: what a backend keeps, and what it guarantees.

The serving core, the reports and the CLIs talk to a ``Store``; ``app.store.open_store`` opens it from
DATABASE_URL. Every backend gives the same guarantees, and ``tests/store/test_contract.py`` checks them
against each one:

Atomicity
    Each method is one transaction: it happens entirely or not at all. Two processes starting at once
    with the same environment weights create one experiment period between them (``ensure_experiment``);
    a weights change and its history row are one row written once (``start_experiment``); a batch of
    predictions, its running counters and the queued labels it resolves commit together
    (``write_predictions``); two labels for one prediction sent at once count once (``set_labels``).
Ordering
    "Latest" means the highest id: experiment ids and prediction-log ids only grow. A worker adopts a
    period only when its id is higher than the one it serves, so it never goes back.
Counters
    Requests, labels, correct labels and a latency histogram per (experiment, version, hour) are kept as
    the rows are written and labelled, so reports cost O(periods x versions x hours), never O(log size).
    They outlive the rows: trimming the log does not change what the reports count.
Shadow predictions
    A shadow version's rows (``shadow_of`` set) are logged and labelled with the served row they scored beside,
    but never counted as served: they have counters of their own (``shadow_counts``), the drift window leaves
    them out, and /feedback cannot label them directly.
Rollouts and leases
    A rollout's decisions are compare-and-set on its step, so two evaluators can never both move it; the lease
    makes one of them the evaluator in the first place.
Retention
    ``trim`` keeps the newest ``keep_rows`` prediction rows, drops queued labels older than
    ``pending_seconds`` (their prediction never arrived) and counters older than ``counts_seconds``.
Errors
    ``StoreUnavailable`` is transient: the store cannot be reached or written right now (locked, read-only,
    disk full, file gone, server down). Callers retry later or answer 503, and the backend reconnects on
    its own. Any other exception (a constraint violated, bad SQL) is a bug: it propagates, is logged with
    its traceback and answered 500; it is never retried as if it were an outage.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

COUNT_BUCKET_SECONDS = 3600
"""Counters are kept per hour: a report's ``since`` is rounded down to the hour."""

POLICIES = ("fixed", "thompson")
"""Routing policies: fixed weights, or the Thompson bandit moving them as labels arrive."""
ROLLOUT_STATES = ("running", "promoted", "rolled_back", "aborted")


class StoreUnavailable(Exception):
    """The store could not be read or written right now (locked, read-only, disk full, gone): transient."""


@dataclass(frozen=True)
class Experiment:
    """One experiment period: the weights in force from ``started_at`` until the next change."""

    id: int
    started_at: float
    weights: dict[str, int]
    env_weights: dict[str, int]
    source: str
    shadow: tuple[str, ...] = ()
    """Versions that score every routed row off the response path, never answering anyone."""
    policy: dict[str, Any] | None = None
    """How weights move within the period's policy: None for fixed weights, or e.g. ``{"name": "thompson",
    "min_share": 0.1, "versions": ["v1", "v2"], "since_experiment": 12}`` (its arms and first period)."""

    @property
    def policy_name(self) -> str:
        """The routing policy in force: "fixed" or "thompson"."""
        return str(self.policy["name"]) if self.policy else "fixed"


class PredictionRecord(NamedTuple):
    """One served prediction (a batch row is one record); a tuple, since every request makes one."""

    prediction_id: str
    ts: float
    experiment_id: int | None
    model_version: str
    features: Sequence[float]
    prediction: int
    probabilities: Sequence[float]
    latency_ms: float
    user_hash: str | None = None
    client_hash: str | None = None
    shadow_of: str | None = None
    """For a shadow version's prediction: the id of the served prediction it scored beside (never returned)."""
    served_prediction: int | None = None
    """For a shadow prediction: what the served version answered, for the agreement counter."""


class LabelItem(NamedTuple):
    """One label to record: for ``prediction_id``, the true class ``label``."""

    prediction_id: str
    label: int
    queue_if_missing: bool = False
    """Keep the label for later when the prediction is not stored yet (its worker has not flushed)."""


@dataclass(frozen=True)
class LabelOutcome:
    """What recording one label did.

    ``recorded``: first label of a stored prediction; ``relabelled``: it replaced an earlier label;
    ``refused``: there is a label already and relabelling was not allowed; ``queued``: the prediction is
    not stored yet, the label is applied when it is; ``not_found``: neither stored nor queued.
    """

    status: Literal["recorded", "relabelled", "refused", "queued", "not_found"]
    model_version: str | None = None
    prediction: int | None = None
    previous_label: int | None = None


@dataclass(frozen=True)
class VariantCounts:
    """Per (experiment, version): requests, labelled and correct predictions."""

    experiment_id: int | None
    version: str
    requests: int
    labeled: int
    correct: int
    errors: int = 0
    """Requests routed to the version whose prediction failed (answered 503, never logged)."""


@dataclass(frozen=True)
class ShadowCounts:
    """Per (experiment, shadow version): rows scored, rows agreeing with the served answer, and on the rows
    labelled since, how often the shadow version and the served one were right, and how often exactly one was."""

    experiment_id: int | None
    version: str
    requests: int
    agreed: int
    labeled: int
    correct: int
    served_correct: int
    discordant: int


@dataclass(frozen=True)
class Rollout:
    """A canary rollout: its plan, where it is, and every decision taken so far (oldest first)."""

    id: int
    plan: dict[str, Any]
    state: str
    """One of ROLLOUT_STATES."""
    step: int
    """Index into the plan's steps of the step in force (0-based)."""
    experiment_id: int
    """The experiment period of the step in force (or of the final weights once it ended)."""
    started_at: float
    updated_at: float
    history: list[dict[str, Any]]


class StateConflict(Exception):
    """What a change was based on moved meanwhile: a rollout runs already, the rollout being decided was decided by
    another evaluator, or a newer period started. Nothing was written."""


class WindowRow(NamedTuple):
    """One recent prediction for the drift window: its features, who sent it, and where it is in the log."""

    features: list[float]
    user_hash: str | None
    client_hash: str | None
    id: int = 0
    """Its place in the log (ids only grow): the next window back starts below the oldest id read."""
    ts: float = 0.0


@dataclass(frozen=True)
class PeriodHour:
    """The running counters of one (experiment, version, hour): requests, labelled and correct predictions."""

    experiment_id: int | None
    version: str
    hour: float
    """The start of the hour, unix seconds."""
    requests: int
    labeled: int
    correct: int


@dataclass(frozen=True)
class PublishedSet:
    """A model set published to the store, so every host serves the same one."""

    id: int
    manifest_sha256: str
    published_at: float


@dataclass(frozen=True)
class ModelSetFiles:
    """A published set's bytes: the manifest, its signature (if it was signed) and every file it names."""

    manifest: bytes
    signature: str | None
    files: dict[str, bytes]


@dataclass(frozen=True)
class StoreHealth:
    """Whether the last operation on the store worked, and if not what failed since when."""

    available: bool
    error: str | None = None
    since: float | None = None


class Store(Protocol):
    """What the service, the reports and the CLIs need from the state store (see the module docstring)."""

    def latest_experiment(self) -> Experiment | None:
        """The experiment in force now (the highest id), or None before the first start."""

    def ensure_experiment(self, weights: dict[str, int], env_weights: dict[str, int]) -> Experiment:
        """Keep the latest experiment while its environment weights equal ``env_weights``, else start one.

        Atomic: processes calling this at once with the same arguments get the same period.
        """

    def start_experiment(
        self,
        weights: dict[str, int],
        env_weights: dict[str, int],
        source: str,
        *,
        shadow: Sequence[str] = (),
        policy: dict[str, Any] | None = None,
        replacing: int | None = None,
        unless_rollout: bool = False,
    ) -> Experiment:
        """Record a routing change: a new experiment period with a higher id starts now. With ``replacing``, only
        while that period is still the latest; with ``unless_rollout``, only while no rollout runs (StateConflict
        otherwise). A policy whose ``since_experiment`` is None starts with this period: the stored policy names
        its id."""

    def experiments(self) -> list[Experiment]:
        """Every experiment period, oldest first."""

    def generation(self) -> int:
        """How many times a model reload has been requested (0 before the first)."""

    def bump_generation(self) -> int:
        """Ask every worker to reload its models; returns the new generation."""

    def secret(self, name: str) -> str:
        """A random per-install secret (created once, the same for every worker and host)."""

    def write_predictions(self, records: Sequence[PredictionRecord], *, retry: bool = False) -> None:
        """Append a batch of predictions, update the counters and apply labels queued for them, atomically.

        ``retry`` says the batch may have been committed already (the commit's outcome was unknown): ids
        already stored are then left out, so nothing is counted twice.
        """

    def count_errors(self, experiment_id: int | None, version: str, n: int = 1) -> None:
        """Count ``n`` requests the version failed to predict in the period (they are in no other counter)."""

    def trim(self, keep_rows: int, *, pending_seconds: float = 600.0, counts_seconds: float = 90 * 86400) -> int:
        """Retention: keep the newest ``keep_rows`` predictions; returns how many were dropped."""

    def recent_window(self, limit: int, since: float, *, before_id: int | None = None) -> list[WindowRow]:
        """Up to ``limit`` of the newest predictions logged at or after ``since``, newest first.

        With ``before_id`` only rows with a lower id: the window before one already read. One query, whose
        cost is bounded by ``limit``.
        """

    def count_predictions(self) -> int:
        """Rows in the prediction log."""

    def find_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        """One logged prediction by id (its stored fields and label), or None."""

    def set_labels(self, items: Sequence[LabelItem], *, relabel: bool = False) -> list[LabelOutcome]:
        """Record labels atomically, one outcome per item in input order; counters follow.

        A prediction with a label keeps it unless ``relabel``; a correction is never counted twice.
        """

    def variant_counts(
        self, *, experiment_id: int | None = None, since: float | None = None, from_experiment: int | None = None
    ) -> list[VariantCounts]:
        """Requests, labelled and correct predictions per (experiment, version), from the counters; for one
        period, the periods from ``from_experiment`` on, the hours since ``since``, or everything."""

    def shadow_counts(
        self, *, experiment_id: int | None = None, since: float | None = None, from_experiment: int | None = None
    ) -> list[ShadowCounts]:
        """The shadow versions' counters per (experiment, version), selected like ``variant_counts``."""

    def latency_histograms(
        self, *, experiment_id: int | None = None, since: float | None = None, from_experiment: int | None = None
    ) -> dict[str, list[int]]:
        """Per version, the count of predictions in each bucket of ``app.stats.latency.LATENCY_BUCKETS``."""

    def current_rollout(self) -> Rollout | None:
        """The latest rollout (running or ended), or None when none was ever started."""

    def start_rollout(self, plan: dict[str, Any], weights: dict[str, int], entry: dict[str, Any]) -> Rollout:
        """Start a rollout and its first step's period (with ``weights``, keeping the current shadow versions),
        atomically; ``entry`` is its first history entry. StateConflict while another one runs."""

    def decide_rollout(
        self,
        rollout_id: int,
        step: int,
        *,
        state: str,
        new_step: int,
        entry: dict[str, Any],
        weights: dict[str, int] | None,
    ) -> Rollout:
        """Record a decision on a running rollout that is still at ``step``, and with ``weights`` start the
        period it leads to, atomically. StateConflict when the rollout ended or moved meanwhile (another
        evaluator decided first), or, with ``weights``, when its step's period is no longer the latest (the
        routing moved under it): the decision is then not recorded."""

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``ttl`` seconds; True when ``holder`` holds it now. A lease is
        taken over only once it expired, so one holder at a time decides for every worker and host."""

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up now if ``holder`` holds it (a clean shutdown), so another takes over at once."""

    def counted_since(self) -> float | None:
        """The start of the oldest hour the counters still hold, or None when they hold nothing."""

    def period_hours(self, since: float, *, shadow: bool = False) -> list[PeriodHour]:
        """The counters of every (experiment, version, hour) from the hour holding ``since`` on, oldest hour first:
        of the served versions, or with ``shadow`` of the shadow versions.

        Labels count in the hour of their prediction, not of their arrival.
        """

    def publish_model_set(self, model_set: ModelSetFiles) -> int:
        """Store a model set with every file its manifest names, atomically; returns its id (ids only grow)."""

    def latest_model_set(self) -> PublishedSet | None:
        """The most recently published model set, or None when none was."""

    def fetch_model_set(self, set_id: int) -> ModelSetFiles:
        """The bytes of one published set (its files are checked against the manifest by whoever loads them)."""

    def wait_for_change(self, timeout: float, stop: threading.Event) -> bool:
        """Block until a change every worker must adopt (a period, a reload) is announced, ``timeout`` passes or
        ``stop`` is set; True when one was announced. Backends without announcements just wait (polling)."""

    def health(self) -> StoreHealth:
        """How the last operation went (a failure is remembered until an operation succeeds)."""

    def close(self) -> None:
        """Release every connection the store holds."""
