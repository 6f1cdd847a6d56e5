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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from app.clock import iso, utc_now
from app.errors import BadRequest, ModelUnavailable
from app.reports.ab import ab_report
from app.reports.drift import window_drift
from app.serving import metrics
from app.serving.ids import is_uuid, new_prediction_ids, recently_issued
from app.serving.prediction_log import PredictionLog
from app.serving.registry import ModelSet, load_model_set
from app.serving.router import NoRoutableModel, Router, hash_user, merge_weights
from app.settings import Settings
from app.stats.drift import drift_score_from_p
from app.store import Experiment, PredictionRecord, Store, StoreUnavailable, open_store

log = logging.getLogger(__name__)

_DRIFT_CACHE_SECONDS = 1.0
_ACCURACY_CACHE_SECONDS = 1.0
_T = TypeVar("_T")


class Prediction(NamedTuple):
    """The outcome of one prediction request (a batch goes to one version)."""

    version: str
    classes: list[int]
    class_names: list[str]
    probabilities: list[list[float]]
    prediction_ids: list[str]
    timestamp: str
    latency_ms: float


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
        self.store = store or open_store(settings.database_url, busy_timeout=settings.store_busy_timeout)
        # Read the generation before loading, so a reload asked for meanwhile is not missed.
        self._generation = self._safe(self.store.generation, 0)
        models = load_model_set(settings.models_dir, settings.predict_backend)
        self.state = State.build(models, self._env_experiment(models))
        self._lock = threading.RLock()  # writers of self.state; readers just take the reference
        self.prediction_log = PredictionLog(
            self.store,
            flush_seconds=settings.log_flush_seconds,
            max_queue=settings.log_queue_size,
            retention_rows=settings.log_retention_rows,
            on_lost=lambda reason, n: metrics.LOG_ERRORS.labels(reason).inc(n),
        )
        self._drift_cache: tuple[float, dict[str, Any]] | None = None
        self._accuracy_cache: tuple[float, int, dict[str, float]] | None = None
        self._stop = threading.Event()
        self._sync_thread = threading.Thread(target=self._sync_loop, name="state-sync", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the prediction-log writer and the state poller."""
        self.prediction_log.start()
        self._sync_thread.start()

    def stop(self) -> None:
        """Flush the prediction log and stop background threads (clean shutdown loses nothing)."""
        self._stop.set()
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

    def predict(self, X: npt.NDArray[np.float64], user_id: str | None, started: float, state: State) -> Prediction:
        """Route, predict, log and count one request of validated rows ``X`` (a batch goes to one version)."""
        try:
            version = state.router.choose(user_id, salt=self.settings.experiment_salt)
        except NoRoutableModel as exc:
            raise ModelUnavailable(str(exc)) from None
        proba = state.models.versions[version].predictor.predict_proba(X)
        probabilities = proba.tolist()
        # For a few rows plain Python is faster than a numpy call (first maximum, like argmax).
        classes: list[int] = (
            proba.argmax(axis=1).tolist() if len(probabilities) > 16 else [r.index(max(r)) for r in probabilities]
        )
        names = state.models.class_names
        latency = time.perf_counter() - started
        now = time.time()
        ids = new_prediction_ids(len(classes), now)
        user_hash = hash_user(self.settings.experiment_salt, user_id) if user_id is not None else None
        latency_ms = latency * 1000.0
        experiment_id = state.experiment.id or None
        self.prediction_log.record(
            [
                PredictionRecord(pid, now, experiment_id, version, row, c, p, latency_ms, user_hash)
                for pid, row, c, p in zip(ids, X.tolist(), classes, probabilities, strict=True)
            ]
        )
        metrics.MODEL_VERSION_REQUESTS.labels(version).inc()
        metrics.PREDICTION_LATENCY.labels(version).observe(latency)
        for c in set(classes):
            metrics.PREDICTIONS.labels(version, names[c]).inc(classes.count(c) if len(classes) > 1 else 1)
        return Prediction(
            version=version,
            classes=classes,
            class_names=[names[c] for c in classes],
            probabilities=probabilities,
            prediction_ids=ids,
            timestamp=iso(now),
            latency_ms=round(latency_ms, 3),
        )

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
                }
                for v, lv in models.versions.items()
            },
        }
        errors = dict(models.failed)
        if models.versions and not routable:
            errors["router"] = f"no loaded version has a weight above 0 (weights {state.experiment.weights})"
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
        body["sticky"] = {"body_field": "user_id", "header": "X-User-ID"}
        return body

    def set_weights(self, update: dict[str, int]) -> dict[str, Any]:
        """Apply a well-formed weights update; a new experiment period starts now. Returns the new config."""
        with self._lock:
            state = self.state
            known = list(state.models.manifest.get("versions", {})) or list(state.experiment.weights)
            try:
                weights = merge_weights(update, known, state.experiment.weights)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            if state.models.versions and not any(weights.get(v, 0) > 0 for v in state.models.versions):
                raise BadRequest(
                    f"no loaded version would get traffic: loaded {sorted(state.models.versions)}, weights {weights}"
                )
            started = self.store.start_experiment(weights, state.experiment.env_weights, "api")
            self.state = State.build(state.models, started)
        log.info("weights changed to %s (experiment %d)", weights, started.id)
        return self.config()

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

    # -- feedback and reports ------------------------------------------------------------------

    def feedback(self, items: list[tuple[str, int]]) -> list[dict[str, Any] | None]:
        """Record labels (None for an unknown id); a just-issued id not yet flushed is awaited briefly."""
        results = self._label(items, [None] * len(items))
        # Only ids this service issued in the last few seconds can still be on their way to the store.
        if any(r is None and recently_issued(pid) for r, (pid, _) in zip(results, items, strict=True)):
            self.prediction_log.flush()
            deadline = time.monotonic() + self.settings.feedback_wait_seconds
            while True:
                results = self._label(items, results)
                pending = [r is None and recently_issued(pid) for r, (pid, _) in zip(results, items, strict=True)]
                if not any(pending) or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        return results

    def _label(self, items: list[tuple[str, int]], results: list[dict[str, Any] | None]) -> list[dict[str, Any] | None]:
        """Label the items not labelled yet, in one store transaction."""
        todo = [i for i, r in enumerate(results) if r is None and is_uuid(items[i][0])]
        if not todo:
            return results
        found = self.store.set_labels([items[i] for i in todo])
        results = list(results)
        for i, outcome in zip(todo, found, strict=True):
            if outcome is None:
                continue
            pid, label = items[i]
            correct = outcome.prediction == label
            if outcome.previous_label is None:
                metrics.FEEDBACK.labels(outcome.model_version, "correct" if correct else "incorrect").inc()
            else:
                metrics.FEEDBACK_CORRECTIONS.labels(outcome.model_version).inc()
            results[i] = {
                "prediction_id": pid,
                "model_version": outcome.model_version,
                "prediction": outcome.prediction,
                "label": label,
                "correct": correct,
                "corrected": outcome.previous_label is not None,
            }
        return results

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

    def ab_report(self, since: float | None = None) -> dict[str, Any]:
        """The A/B verdict for the current experiment period, or for everything since ``since``."""
        state = self.state
        return ab_report(self.store, state.experiment, since=since, shares=state.router.shares)

    def metrics_snapshot(self) -> dict[str, Any]:
        """Scrape-time gauges: drift, per-version accuracy, weights, loaded models."""
        state = self.state
        snapshot: dict[str, Any] = {
            "weights": dict(state.experiment.weights),
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

    def _reload_models(self) -> None:
        """Load MODELS_DIR again and swap in the new state (callers hold the lock)."""
        state = self.state
        models = load_model_set(self.settings.models_dir, self.settings.predict_backend, previous=state.models)
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
        while not self._stop.wait(self.settings.state_poll_seconds):
            try:
                self.sync()
            except StoreUnavailable as exc:
                if time.monotonic() - last_error > 60:
                    log.error("state store unavailable, keeping current weights and models: %s", exc)
                    last_error = time.monotonic()
            except Exception:
                log.exception("state sync failed")  # the poller must never die

    @staticmethod
    def _safe(action: Callable[[], _T], default: _T) -> _T:
        try:
            return action()
        except StoreUnavailable as exc:
            log.error("state store unavailable at start-up: %s", exc)
            return default


def _offline_experiment(weights: dict[str, int]) -> Experiment:
    """The period used while the store cannot be reached: the environment's weights, id 0 (not logged)."""
    return Experiment(0, time.time(), dict(weights), dict(weights), "env")
