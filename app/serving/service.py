"""The serving core of one worker: models, router, state store and prediction log, kept in step.

The API's blueprints call one method here per endpoint; this module never touches Flask. Errors it
raises come from ``app.errors`` and carry their HTTP status. Shared state lives in the store, and a
background thread in each worker re-reads it every STATE_POLL_SECONDS, so a weights change or a model
reload made through any worker reaches every worker within a second.

Lifecycle: ``Service(settings)`` opens the store and loads the models; ``start()`` starts the
prediction-log writer and the state poller (the app factory calls it); ``stop()`` drains the log and
ends both (gunicorn's ``worker_exit`` hook, or whoever built the app).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from app.clock import iso, utc_now
from app.errors import BadRequest, Conflict, IntegrityError, ModelUnavailable, NotFound
from app.reports.ab import ab_report
from app.reports.drift import MAX_HISTORY_POINTS, drift_history, window_drift
from app.reports.timeline import timeline
from app.serving import metrics, model_sync
from app.serving.controller import Controller, history_entry
from app.serving.ids import is_uuid, issued_within, new_prediction_ids
from app.serving.prediction_log import PredictionLog
from app.serving.quota import ClientQuota
from app.serving.registry import ModelSet, load_model_set
from app.serving.rollouts import RolloutPlan, evaluate
from app.serving.router import ConfigUpdate, NoRoutableModel, Router, hash_user, merge_weights
from app.serving.shadow import Served, ShadowScorer
from app.serving.tokens import FeedbackTokens
from app.settings import Settings
from app.stats.bandit import DEFAULT_MIN_SHARE
from app.stats.drift import drift_score_from_p
from app.store import (
    Experiment,
    LabelItem,
    LabelOutcome,
    PredictionRecord,
    Rollout,
    StateConflict,
    Store,
    StoreUnavailable,
    open_store,
)

log = logging.getLogger(__name__)

_DRIFT_CACHE_SECONDS = 1.0
_FAILURE_LOG_SECONDS = 60.0
_DRIFT_HISTORY_CACHE_SECONDS = 5.0
_PYTHON_ARGMAX_ROWS = 16
_ACCURACY_CACHE_SECONDS = 1.0
_T = TypeVar("_T")


@dataclass(frozen=True)
class Prediction:
    """The outcome of one prediction request (a batch goes to one version).

    The arrays are what the model produced; the list forms (for JSON and the prediction log) and the
    feedback tokens are made the first time something asks for them: a V2 answer that does not ask for
    feedback tokens never pays for them.
    """

    version: str
    proba: npt.NDArray[np.float64]
    names: list[str]
    prediction_ids: list[str]
    timestamp: str
    latency_ms: float
    tokens: FeedbackTokens

    @cached_property
    def class_index(self) -> npt.NDArray[np.int64]:
        """The predicted class index of every row: the first maximum, as scikit-learn's ``predict``."""
        if len(self.proba) <= _PYTHON_ARGMAX_ROWS:
            return np.array(self.classes, dtype=np.int64)
        index: npt.NDArray[np.int64] = self.proba.argmax(axis=1)
        return index

    @cached_property
    def classes(self) -> list[int]:
        """The predicted class index of every row."""
        if len(self.proba) <= _PYTHON_ARGMAX_ROWS:  # for a few rows plain Python beats a numpy call
            return [row.index(max(row)) for row in self.probabilities]
        classes: list[int] = self.class_index.tolist()
        return classes

    @cached_property
    def class_names(self) -> list[str]:
        """The predicted class name of every row."""
        return [self.names[c] for c in self.classes]

    @cached_property
    def probabilities(self) -> list[list[float]]:
        """Every row's class probabilities."""
        probabilities: list[list[float]] = self.proba.tolist()
        return probabilities

    @cached_property
    def feedback_tokens(self) -> list[str]:
        """The token to send with each row's label to /feedback."""
        return self.tokens.issue(self.prediction_ids)


class FeedbackItem(NamedTuple):
    """One label sent to /feedback: the prediction, its true class and the token its response carried."""

    prediction_id: str
    label: int
    token: str | None = None


class FeedbackResult(NamedTuple):
    """What became of one label: ``status`` is recorded, relabelled, queued, refused, not_found or forbidden."""

    status: str
    body: dict[str, Any]


class Health(NamedTuple):
    """What /health says, and whether this worker can serve at all."""

    body: dict[str, Any]
    serving: bool


@dataclass(frozen=True)
class State:
    """What one request needs, swapped as a whole: a request never sees half a reload or weights change."""

    models: ModelSet
    experiment: Experiment
    router: Router

    @classmethod
    def build(cls, models: ModelSet, experiment: Experiment) -> State:
        """The state for these models and this experiment period."""
        return cls(models, experiment, Router(experiment.weights, servable=list(models.versions)))


class Service:
    """Everything one worker needs to serve, report and administer."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or self._open_store(settings)
        # Read the generation before loading, so a reload asked for meanwhile is not missed.
        self._generation = self._safe(self.store.generation, 0)
        self._own_secrets = False  # True while the store was down at start: secrets are this worker's own
        self.salt = settings.experiment_salt or self._install_secret("experiment_salt")
        self.tokens = FeedbackTokens(self._install_secret("feedback_token").encode())
        self._quota = ClientQuota(settings.log_client_rows_per_minute)
        self._pull_models()
        models = load_model_set(settings.models_dir, settings.predict_backend, signing_key=settings.signing_key)
        metrics.initialise(models.versions, models.class_names)
        self.state = State.build(models, self._env_experiment(models))
        self._lock = threading.RLock()  # writers of self.state; readers just take the reference
        self.prediction_log = PredictionLog(
            self.store,
            flush_seconds=settings.log_flush_seconds,
            max_queue=settings.log_queue_size,
            retention_rows=settings.log_retention_rows,
            pending_seconds=settings.feedback_pending_seconds,
            on_lost=lambda reason, n: metrics.LOG_ERRORS.labels(reason).inc(n),
        )
        self.shadow = ShadowScorer(
            self.prediction_log,
            max_rows=settings.log_queue_size,
            on_lost=lambda n: metrics.LOG_ERRORS.labels("shadow_dropped").inc(n),
        )
        self.controller = Controller(self.store, interval=settings.controller_interval_seconds)
        self._failure_logged: dict[str, float] = {}
        self._drift_cache: tuple[float, dict[str, Any]] | None = None
        self._drift_history_cache: tuple[float, dict[str, Any]] | None = None
        self._accuracy_cache: tuple[float, int, dict[str, float]] | None = None
        self._stop = threading.Event()
        self._sync_thread = threading.Thread(target=self._sync_loop, name="state-sync", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the prediction-log writer, the shadow scorer, the state poller and the controller."""
        self.prediction_log.start()
        self.shadow.start()
        self._sync_thread.start()
        self.controller.start()

    def stop(self) -> None:
        """Flush the prediction log and stop background threads (clean shutdown loses nothing)."""
        self._stop.set()
        self.controller.stop()
        self.shadow.stop()  # its rows go to the prediction log, which drains next
        self.prediction_log.close()
        if self._sync_thread.ident is not None:
            self._sync_thread.join(timeout=5)
        self.store.close()

    @property
    def models(self) -> ModelSet:
        """The model set being served."""
        return self.state.models

    @property
    def experiment(self) -> Experiment:
        """The experiment period in force."""
        return self.state.experiment

    # -- serving -------------------------------------------------------------------------------

    def predict(
        self,
        X: npt.NDArray[np.float64],
        user_id: str | None,
        started: float,
        state: State,
        client: str | None = None,
        version: str | None = None,
    ) -> Prediction:
        """Route, predict, log and count one request of validated rows ``X`` (a batch goes to one version).

        ``version`` serves the request by that version instead of the router's choice (the V2
        protocol's versioned infer): it is counted as served by that version and logged, but outside the
        experiment period, since the router did not assign it (the A/B report and its sample-ratio check
        count randomised assignments only). ``client`` is the caller's address: its rows count against
        LOG_CLIENT_ROWS_PER_MINUTE, and the drift window takes at most DRIFT_CLIENT_SHARE of its rows
        from any one client.
        """
        routed = version is None
        version = self._serving_version(state, version, user_id)
        try:
            proba = state.models.versions[version].predictor.predict_proba(X)
        except Exception:  # noqa: BLE001 - any failure of a model is answered 503 and counted, never a 500
            self._count_failure(state, version, routed, len(X))
            raise ModelUnavailable(f"model {version} failed to predict; the failure is logged and counted") from None
        names = state.models.class_names
        latency = time.perf_counter() - started
        now = time.time()
        ids = new_prediction_ids(len(proba), now)
        answer = Prediction(version, proba, names, ids, iso(now), round(latency * 1000.0, 3), self.tokens)
        logged = self._log(state, answer, X, now, latency * 1000.0, user_id, client, routed=routed)
        if logged is not None and routed and state.experiment.shadow:
            self.shadow.submit(Served(state.models, state.experiment.shadow, state.experiment.id or None, now, X,
                                      ids, answer.classes, *logged))  # fmt: skip
        metrics.MODEL_VERSION_REQUESTS.labels(version).inc()
        metrics.PREDICTION_LATENCY.labels(version).observe(latency)
        if len(ids) == 1:
            metrics.PREDICTIONS.labels(version, names[answer.classes[0]]).inc()
        else:
            for c, count in enumerate(np.bincount(answer.class_index, minlength=len(names)).tolist()):
                if count:
                    metrics.PREDICTIONS.labels(version, names[c]).inc(count)
        return answer

    def _count_failure(self, state: State, version: str, routed: bool, rows: int) -> None:
        """A version failed to predict: counted, per row like its requests, where a rollout's guard reads it, and
        logged with its traceback at most once a minute per version (a broken model fails every request)."""
        metrics.PREDICTION_FAILURES.labels(version).inc()
        self.prediction_log.count_errors(state.experiment.id or None if routed else None, version, rows)
        now = time.monotonic()
        if now - self._failure_logged.get(version, -_FAILURE_LOG_SECONDS) >= _FAILURE_LOG_SECONDS:
            self._failure_logged[version] = now
            log.exception(
                "model %s failed to predict (logged once a minute; prediction_failures_total counts)", version
            )

    def _serving_version(self, state: State, version: str | None, user_id: str | None) -> str:
        """The version asked for (it must be loaded), or the router's choice."""
        if version is not None:
            return state.models.loaded(version).version
        try:
            return state.router.choose(user_id, salt=self.salt)
        except NoRoutableModel as exc:
            raise ModelUnavailable(str(exc)) from None

    def _log(
        self,
        state: State,
        answer: Prediction,
        X: npt.NDArray[np.float64],
        now: float,
        latency_ms: float,
        user_id: str | None,
        client: str | None,
        *,
        routed: bool,
    ) -> tuple[str | None, str | None] | None:
        """Buffer the request's rows for the prediction log, within the client's quota; rows the router did
        not assign belong to no experiment period. Returns the (user, client) hashes logged, None if not logged."""
        ids = answer.prediction_ids
        client_hash = hash_user(self.salt, f"address\x00{client}") if client is not None else None
        if not self._quota.allow(client_hash, len(ids), now):
            metrics.LOG_ERRORS.labels("client_quota").inc(len(ids))
            return None
        if not self.prediction_log.admits(len(ids)):
            return None
        user_hash = hash_user(self.salt, user_id) if user_id is not None else None
        experiment_id = (state.experiment.id or None) if routed else None
        version = answer.version
        self.prediction_log.extend(
            [
                PredictionRecord(pid, now, experiment_id, version, row, c, p, latency_ms, user_hash, client_hash)
                for pid, row, c, p in zip(ids, X.tolist(), answer.classes, answer.probabilities, strict=True)
            ]
        )
        return user_hash, client_hash

    def health(self) -> Health:
        """Loaded versions and their checks; serving only while some loaded version gets traffic."""
        state = self.state
        models = state.models
        routable = any(state.router.share(v) > 0 for v in models.versions)
        body: dict[str, Any] = {
            "status": models.status if routable else "unhealthy",
            "timestamp": utc_now(),
            "models_loaded": bool(models.versions),
            "backend": self.settings.predict_backend,
            "models": {
                v: {
                    "sha256": lv.sha256,
                    "accuracy": lv.meta.get("accuracy"),
                    "n_estimators": lv.meta.get("params", {}).get("n_estimators"),
                    "batch_backend": lv.predictor.batch_backend,
                }
                for v, lv in models.versions.items()
            },
        }
        errors = dict(models.failed)
        if models.versions and not routable:
            errors["router"] = f"no loaded version has a weight above 0 (weights {state.experiment.weights})"
        store = self.store.health()
        body["store"] = {
            "status": "ok" if store.available else "unavailable",
            "unwritten_rows": self.prediction_log.unwritten,
        }
        if not store.available:
            body["store"]["error"] = store.error
            body["store"]["since"] = iso(store.since) if store.since is not None else None
            errors["store"] = f"state store unavailable: {store.error}"
            if routable:
                body["status"] = "degraded"  # predictions are served; logging, feedback and admin wait
        if errors:
            body["errors"] = errors
        return Health(body, routable)

    def manifest(self) -> dict[str, Any]:
        """The model manifest being served, with which versions loaded and which failed."""
        models = self.models
        if not models.manifest:
            raise ModelUnavailable("no model manifest is loaded; see GET /health")
        return {**models.manifest, "loaded": sorted(models.versions), "failed": models.failed}

    # -- admin ---------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The routing configuration in force: weights (the seed's flat keys too), shares and the period."""
        state = self.state
        exp = state.experiment
        body: dict[str, Any] = {f"model_{v}_weight": w for v, w in exp.weights.items()}
        body["total_weight"] = sum(exp.weights.values())
        body["weights"] = dict(exp.weights)
        body["shares"] = dict(state.router.shares)
        body["experiment"] = {"id": exp.id, "started_at": iso(exp.started_at), "source": exp.source}
        body["shadow"] = list(exp.shadow)
        body["policy"] = exp.policy or {"name": exp.policy_name}
        body["sticky"] = {"body_field": "user_id", "header": "X-User-ID"}
        return body

    def set_config(self, update: ConfigUpdate) -> dict[str, Any]:
        """Apply a well-formed routing change (weights, shadow versions, policy); a new experiment period starts
        now. Refused while a rollout runs: it owns the weights until it ends or is aborted."""
        with self._lock:
            state = self.state
            current = state.experiment
            try:
                weights = merge_weights(update.weights or {}, _versions(state), current.weights)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            if state.models.versions and not any(weights.get(v, 0) > 0 for v in state.models.versions):
                raise BadRequest(
                    f"no loaded version would get traffic: loaded {sorted(state.models.versions)}, weights {weights}"
                )
            shadow = list(current.shadow) if update.shadow is None else update.shadow
            self._check_shadow(state.models, shadow, weights)
            policy = self._policy(update, current, weights, state.models)
            try:
                started = self.store.start_experiment(
                    weights, current.env_weights, "api", shadow=shadow, policy=policy, unless_rollout=True
                )
            except StateConflict as exc:
                raise Conflict(f"{exc}: DELETE /rollouts/current to abort it first") from None
            self.state = State.build(state.models, started)
        log.info(
            "routing changed: weights %s, shadow %s, policy %s (experiment %d)", weights, shadow, policy, started.id
        )
        return self.config()

    @staticmethod
    def _check_shadow(models: ModelSet, shadow: list[str], weights: dict[str, int]) -> None:
        for version in shadow:
            if version not in weights:
                raise BadRequest(f"unknown shadow version {version!r}; known: {', '.join(weights)}")
            if version not in models.versions:
                raise BadRequest(f"shadow version {version!r} is not loaded; see GET /health")
            if weights[version] > 0:
                raise BadRequest(
                    f"{version} serves traffic (weight {weights[version]}): a shadow version must have weight 0"
                )

    @staticmethod
    def _policy(
        update: ConfigUpdate, current: Experiment, weights: dict[str, int], models: ModelSet
    ) -> dict[str, Any] | None:
        """The period's policy. Fixed stays fixed unless asked. A Thompson bandit starts from these weights, and
        starts again from them when the weights or shadow versions change under it: its arms are the versions
        the operator gives traffic to now, never a version they turned off or made a shadow."""
        name = update.policy or current.policy_name
        if name == "fixed":
            return None
        if update.policy is None and update.weights is None and update.shadow is None:
            return current.policy
        arms = [v for v, w in weights.items() if w > 0 and v in models.versions]
        previous = (current.policy or {}).get("min_share", DEFAULT_MIN_SHARE)
        min_share = previous if update.min_share is None else update.min_share
        if len(arms) < 2:
            raise BadRequest(f"a bandit needs two versions with traffic to choose between; weights {weights}")
        if min_share * len(arms) > 1:
            raise BadRequest(f"min_share {min_share:g} is more than {len(arms)} versions can each get")
        return {"name": "thompson", "min_share": min_share, "versions": arms, "since_experiment": None}

    def reload(self) -> dict[str, Any]:
        """Reload models from MODELS_DIR here, and ask every other worker to do the same."""
        with self._lock:
            before = self.state.models
            self._reload_models()
            generation = self.store.bump_generation()
            self._generation = generation
            after = self.state.models
        return {
            "status": after.status,
            "generation": generation,
            "models": {v: lv.sha256 for v, lv in after.versions.items()},
            "reloaded": sorted(
                v
                for v, lv in after.versions.items()
                if getattr(before.versions.get(v), "predictor", None) is not lv.predictor
            ),
            "failed": dict(after.failed),
            "kept_previous": sorted(v for v in after.failed if v in after.versions),
        }

    # -- rollouts ------------------------------------------------------------------------------

    def start_rollout(self, plan: RolloutPlan) -> dict[str, Any]:
        """Start a canary rollout at its first step; Conflict while another one runs."""
        state = self.state
        for version in (plan.candidate, plan.baseline):
            state.models.loaded(version)
        weights = plan.weights(plan.steps[0], _versions(state))
        reason = f"started: {plan.candidate} gets {plan.steps[0]}% against {plan.baseline}"
        try:
            rollout = self.store.start_rollout(
                plan.to_dict(), weights, history_entry(0, weights, "start", reason, None)
            )
        except StateConflict as exc:
            raise Conflict(f"{exc}: wait for it to end or DELETE /rollouts/current") from None
        log.info("rollout %d %s", rollout.id, reason)
        self.sync()
        return self._rollout_view(rollout)

    def current_rollout(self) -> dict[str, Any]:
        """The latest rollout, with the live evidence of its step while it runs."""
        rollout = self.store.current_rollout()
        if rollout is None:
            raise NotFound("no rollout has been started; POST /rollouts with the admin token starts one")
        return self._rollout_view(rollout)

    def abort_rollout(self) -> dict[str, Any]:
        """Abort the running rollout and give the baseline all traffic back."""
        rollout = self.store.current_rollout()
        if rollout is None or rollout.state != "running":
            raise Conflict("no rollout is running" + (f" (rollout {rollout.id} {rollout.state})" if rollout else ""))
        plan = RolloutPlan.from_dict(rollout.plan)
        weights = plan.weights(0, _versions(self.state))
        entry = history_entry(rollout.step, weights, "abort", "aborted by an operator: the baseline serves all", None)
        try:
            ended = self.store.decide_rollout(
                rollout.id, rollout.step, state="aborted", new_step=rollout.step, entry=entry, weights=weights
            )
        except StateConflict as exc:
            raise Conflict(f"the rollout was decided meanwhile ({exc}); GET /rollouts/current") from None
        metrics.ROLLOUT_DECISIONS.labels("abort").inc()
        log.info("rollout %d aborted by an operator, weights %s", rollout.id, weights)
        self.sync()
        return self._rollout_view(ended)

    def _rollout_view(self, rollout: Rollout) -> dict[str, Any]:
        plan = RolloutPlan.from_dict(rollout.plan)
        view: dict[str, Any] = {
            "id": rollout.id,
            "state": rollout.state,
            "candidate": plan.candidate,
            "baseline": plan.baseline,
            "step": rollout.step,
            "steps": list(plan.steps),
            "share": plan.share(rollout.state, rollout.step),
            "weights": rollout.history[-1]["weights"] if rollout.history else {},
            "experiment_id": rollout.experiment_id,
            "plan": plan.to_dict(),
            "started_at": iso(rollout.started_at),
            "updated_at": iso(rollout.updated_at),
            "history": rollout.history,
        }
        if rollout.state == "running":
            verdict = evaluate(
                plan,
                rollout.step,
                self.store.variant_counts(experiment_id=rollout.experiment_id),
                self.store.latency_histograms(experiment_id=rollout.experiment_id),
                elapsed=time.time() - rollout.updated_at,
            )
            view["evidence"] = verdict.evidence
            view["next"] = {"decision": verdict.decision, "reason": verdict.reason}
        return view

    # -- feedback and reports ------------------------------------------------------------------

    def feedback(self, items: list[FeedbackItem], *, admin: bool = False) -> list[FeedbackResult]:
        """Record labels, in one store transaction; never waits for anything.

        Without the admin token every label needs the feedback token its prediction was answered with,
        and a prediction already labelled keeps its label (relabelling is an admin action). A label for
        a prediction whose row is not stored yet (its worker flushes every LOG_FLUSH_SECONDS) is queued
        and applied when the row is written: only ids whose token verified (or an admin's) are queued,
        and only while younger than FEEDBACK_PENDING_SECONDS by the time inside the id.
        """
        results: list[FeedbackResult | None] = [None] * len(items)
        todo: list[tuple[int, LabelItem]] = []
        for i, item in enumerate(items):
            if not admin and (item.token is None or not self.tokens.verify(item.prediction_id, item.token)):
                why = "feedback_token is missing" if item.token is None else "feedback_token does not match"
                results[i] = _feedback_error(
                    "forbidden", item, f"{why}: send the feedback_token /predict returned with this prediction"
                )
            elif not is_uuid(item.prediction_id):
                results[i] = _feedback_error("not_found", item, f"no prediction with id {item.prediction_id!r}")
            else:
                queue = issued_within(item.prediction_id, self.settings.feedback_pending_seconds)
                todo.append((i, LabelItem(item.prediction_id, item.label, queue)))
        outcomes = self.store.set_labels([label for _, label in todo], relabel=admin) if todo else []
        for (i, _), outcome in zip(todo, outcomes, strict=True):
            results[i] = self._feedback_result(items[i], outcome)
        return [r for r in results if r is not None]

    def _feedback_result(self, item: FeedbackItem, outcome: LabelOutcome) -> FeedbackResult:
        pid = item.prediction_id
        if outcome.status in ("recorded", "relabelled"):
            correct = outcome.prediction == item.label
            if outcome.status == "recorded":
                metrics.FEEDBACK.labels(outcome.model_version, "correct" if correct else "incorrect").inc()
            else:
                metrics.FEEDBACK_CORRECTIONS.labels(outcome.model_version).inc()
            body = {
                "prediction_id": pid,
                "model_version": outcome.model_version,
                "prediction": outcome.prediction,
                "label": item.label,
                "correct": correct,
                "corrected": outcome.status == "relabelled",
            }
            return FeedbackResult(outcome.status, body)
        if outcome.status == "queued":
            return FeedbackResult("queued", {"prediction_id": pid, "label": item.label, "status": "queued"})
        if outcome.status == "refused":
            return _feedback_error(
                "refused", item, "this prediction is labelled already; relabelling needs the admin token"
            )
        return _feedback_error("not_found", item, f"no prediction with id {pid!r}")

    def drift(self) -> dict[str, Any]:
        """Drift of the last DRIFT_WINDOW logged rows against the training reference (cached 1 s)."""
        now = time.monotonic()
        if self._drift_cache and now - self._drift_cache[0] < _DRIFT_CACHE_SECONDS:
            return self._drift_cache[1]
        models = self.state.models
        if models.reference is None:
            raise ModelUnavailable("training statistics are not loaded; drift cannot be computed")
        result = window_drift(self.store, models.reference, models.feature_names, self.settings)
        self._drift_cache = (now, result)
        return result

    def drift_history(self, points: int) -> dict[str, Any]:
        """Drift of up to ``points`` successive windows back through the log, oldest first. The whole history
        (MAX_HISTORY_POINTS windows) is computed at most every 5 s whatever ``points`` callers ask for."""
        now = time.monotonic()
        cached = self._drift_history_cache
        if cached is None or now - cached[0] >= _DRIFT_HISTORY_CACHE_SECONDS:
            models = self.state.models
            if models.reference is None:
                raise ModelUnavailable("training statistics are not loaded; drift cannot be computed")
            history = drift_history(
                self.store, models.reference, models.feature_names, self.settings, MAX_HISTORY_POINTS
            )
            cached = self._drift_history_cache = (now, history)
        return {**cached[1], "windows": cached[1]["windows"][-points:]}

    def ab_report(self, since: float | None = None) -> dict[str, Any]:
        """The A/B verdict for the current experiment period, or for everything since ``since``.

        Not cached: it reads only the store's running counters (well under a millisecond on a 10M-row log),
        so every call is exact, whichever worker answers.
        """
        state = self.state
        return ab_report(self.store, state.experiment, since=since, shares=state.router.shares)

    def timeline(self, since: float | None = None) -> dict[str, Any]:
        """Each version's accuracy and share over time, with the experiment periods (from the counters, not cached)."""
        return timeline(self.store, since=since)

    def metrics_snapshot(self) -> dict[str, Any]:
        """Scrape-time gauges: drift, per-version accuracy, weights, loaded models."""
        state = self.state
        snapshot: dict[str, Any] = {
            "store_available": self.store.health().available,
            "unwritten_rows": self.prediction_log.unwritten,
            "weights": dict(state.experiment.weights),
            "policy": state.experiment.policy_name,
            "models": {
                v: {
                    "sha256": lv.sha256,
                    "n_estimators": lv.meta.get("params", {}).get("n_estimators", ""),
                    "backend": lv.predictor.backend,
                }
                for v, lv in state.models.versions.items()
            },
        }
        try:
            result = self.drift()
            snapshot["drift_score"] = result["drift_score"]
            snapshot["drift_detected"] = result["drift_detected"]
            snapshot["feature_scores"] = {
                name: drift_score_from_p(f["p_value_adjusted"], threshold=self.settings.drift_threshold)
                for name, f in result["features"].items()
            }
        except (StoreUnavailable, ModelUnavailable, ValueError) as exc:
            log.warning("drift not computed for /metrics: %s", exc)
        snapshot["accuracy"] = self._accuracy(state.experiment.id)
        try:
            rollout = self.store.current_rollout()
            if rollout is not None:  # the gauges need no evidence: nothing is evaluated at scrape time
                share = RolloutPlan.from_dict(rollout.plan).share(rollout.state, rollout.step)
                snapshot["rollout"] = {"step": rollout.step, "state": rollout.state, "share": share}
            snapshot["shadow"] = {
                c.version: {
                    "agreement": c.agreed / c.requests if c.requests else None,
                    "accuracy": c.correct / c.labeled if c.labeled else None,
                }
                for c in self.store.shadow_counts(experiment_id=state.experiment.id)
            }
        except StoreUnavailable as exc:
            log.warning("rollout and shadow gauges not computed for /metrics: %s", exc)
        return snapshot

    def _accuracy(self, exp_id: int) -> dict[str, float]:
        now = time.monotonic()
        cached = self._accuracy_cache
        if cached and cached[1] == exp_id and now - cached[0] < _ACCURACY_CACHE_SECONDS:
            return cached[2]
        try:
            counts = self.store.variant_counts(experiment_id=exp_id)
        except StoreUnavailable:
            return {}
        accuracy = {c.version: c.correct / c.labeled for c in counts if c.labeled}
        self._accuracy_cache = (now, exp_id, accuracy)
        return accuracy

    # -- keeping workers in step ---------------------------------------------------------------

    def _env_weights(self, models: ModelSet) -> dict[str, int]:
        """MODEL_<VERSION>_WEIGHT for the manifest's versions; all zero is a configuration error."""
        versions = list(models.manifest.get("versions", {}))
        unknown = sorted(set(self.settings.env_weights) - set(versions))
        if versions and unknown:
            log.warning("weights given for unknown model versions %s (known: %s)", unknown, versions)
        weights = self.settings.weights_for(versions)
        if weights and not any(weights.values()):
            raise ValueError(f"every A/B weight is 0 ({weights}): at least one MODEL_<VERSION>_WEIGHT must be above 0")
        return weights

    def _env_experiment(self, models: ModelSet) -> Experiment:
        """The stored period while the environment's weights are unchanged, else a new one from them."""
        env_weights = self._env_weights(models)
        return self._safe(
            lambda: self.store.ensure_experiment(env_weights, env_weights), _offline_experiment(env_weights)
        )

    def _pull_models(self) -> None:
        """Bring MODELS_DIR to the newest model set published in the store, if there is a newer one."""
        try:
            model_sync.pull(self.store, self.settings.models_dir, self.settings.signing_key)
        except StoreUnavailable as exc:
            log.error("published model sets not checked, the state store is unavailable: %s", exc)
        except (IntegrityError, ValueError, OSError) as exc:
            log.error("the published model set was not installed: %s", exc)

    def _reload_models(self) -> None:
        """Load MODELS_DIR again, after fetching a newer published set, and swap in the new state (under the lock)."""
        self._pull_models()
        state = self.state
        models = load_model_set(
            self.settings.models_dir,
            self.settings.predict_backend,
            previous=state.models,
            signing_key=self.settings.signing_key,
        )
        metrics.initialise(models.versions, models.class_names)
        experiment = state.experiment
        if models.versions and not any(v in experiment.weights for v in models.versions):
            # The first models to appear (the service started before training): their environment
            # weights start the first real experiment; ensure_experiment makes it one row for all workers.
            try:
                experiment = self._env_experiment(models)
            except ValueError as exc:
                log.error("new models not routed: %s", exc)
        self.state = State.build(models, experiment)
        self._drift_cache = None

    def sync(self) -> None:
        """Adopt the store's newer weights and model generation (the poller calls this)."""
        if self._own_secrets:  # the store is back: use the install's secrets like every other worker
            self.salt = self.settings.experiment_salt or self.store.secret("experiment_salt")
            self.tokens = FeedbackTokens(self.store.secret("feedback_token").encode())
            self._own_secrets = False
        latest = self.store.latest_experiment()
        generation = self.store.generation()
        with self._lock:
            # Only ever forward: a PUT on this worker may have adopted a newer period meanwhile.
            if latest is not None and latest.id > self.state.experiment.id:
                self.state = State.build(self.state.models, latest)
            if generation != self._generation:
                self._reload_models()
                self._generation = generation

    def _sync_loop(self) -> None:
        last_error = 0.0
        while not self._stop.is_set():
            # PostgreSQL announces changes (LISTEN/NOTIFY): the worker adopts them at once; SQLite polls.
            self.store.wait_for_change(self.settings.state_poll_seconds, self._stop)
            if self._stop.is_set():
                return
            try:
                self.sync()
            except StoreUnavailable as exc:
                if time.monotonic() - last_error > 60:
                    log.error("state store unavailable, keeping current weights and models: %s", exc)
                    last_error = time.monotonic()
            except Exception:
                log.exception("state sync failed")  # the poller must never die

    @staticmethod
    def _open_store(settings: Settings) -> Store:
        return open_store(settings.database_url, busy_timeout=settings.store_busy_timeout, create=settings.store_create)

    def _install_secret(self, name: str) -> str:
        """A per-install secret from the store; a random one for this worker alone while the store is down."""
        try:
            return self.store.secret(name)
        except StoreUnavailable as exc:
            log.error("state store unavailable at start-up, %s is this worker's own until it is back: %s", name, exc)
            self._own_secrets = True
            return secrets.token_urlsafe(32)

    @staticmethod
    def _safe(action: Callable[[], _T], default: _T) -> _T:
        try:
            return action()
        except StoreUnavailable as exc:
            log.error("state store unavailable at start-up: %s", exc)
            return default


def _versions(state: State) -> list[str]:
    """Every version weights are kept for: the manifest's (the period's, before any manifest is loaded)."""
    return list(state.models.manifest.get("versions", {})) or list(state.experiment.weights)


def _feedback_error(status: str, item: FeedbackItem, message: str) -> FeedbackResult:
    return FeedbackResult(status, {"prediction_id": item.prediction_id, "error": message})


def _offline_experiment(weights: dict[str, int]) -> Experiment:
    """The period used while the store cannot be reached: the environment's weights, id 0 (not logged)."""
    return Experiment(0, time.time(), dict(weights), dict(weights), "env")
