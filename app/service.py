"""The serving core of one worker: models, router, state store and prediction log, kept in step.

Flask handlers call these methods; nothing here knows about HTTP. Shared state lives in the
store, and a background thread in each worker re-reads it every STATE_POLL_SECONDS, so a weights
change or a model reload made through any worker reaches every worker within a second.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

import numpy as np

from app import drift, experiment, metrics
from app.errors import BadRequest, ModelUnavailable
from app.prediction_log import PredictionLog
from app.registry import ModelSet, load_model_set
from app.router import NoRoutableModel, Router, hash_user, validate_weights
from app.settings import Settings
from app.store import Experiment, PredictionRecord, Store, StoreUnavailable, open_store
from app.validation import PredictRequest

log = logging.getLogger(__name__)

_DRIFT_CACHE_SECONDS = 1.0
_ACCURACY_CACHE_SECONDS = 1.0


class Prediction(NamedTuple):
    """The outcome of one /predict request."""

    version: str
    classes: list[int]
    class_names: list[str]
    probabilities: list[list[float]]
    prediction_ids: list[str]
    timestamp: str
    latency_ms: float


def utc_now() -> str:
    """The current time as ISO-8601 UTC."""
    return datetime.now(timezone.utc).isoformat()


def iso(ts: float) -> str:
    """A unix time as ISO-8601 UTC."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def parse_since(raw: str) -> float:
    """An ISO-8601 time with a timezone, or unix seconds, as unix seconds; ValueError says what is wrong."""
    try:
        moment = datetime.fromtimestamp(float(raw), timezone.utc)
    except (ValueError, OverflowError, OSError):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError("since must be an ISO-8601 time (with a timezone) or unix seconds") from None
    if moment.tzinfo is None:
        raise ValueError("since must include a timezone, e.g. 2026-01-01T00:00:00Z")
    try:
        since = moment.timestamp()
        datetime.fromtimestamp(since, timezone.utc)  # the report prints it back
    except (OverflowError, OSError, ValueError):
        raise ValueError("since is out of range") from None
    return since


@dataclass(frozen=True)
class State:
    """What one request needs, swapped as a whole: a request never sees half a reload or weights change."""

    models: ModelSet
    experiment: Experiment
    router: Router

    @classmethod
    def build(cls, models: ModelSet, experiment: Experiment) -> "State":
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
        self._drift_cache: tuple[float, dict] | None = None
        self._accuracy_cache: tuple[float, int, dict] | None = None
        self._stop = threading.Event()
        self._sync_thread = threading.Thread(target=self._sync_loop, name="state-sync", daemon=True)
        self._sync_thread.start()

    @property
    def models(self) -> ModelSet:
        """The model set being served."""
        return self.state.models

    @property
    def experiment(self) -> Experiment:
        """The experiment period in force."""
        return self.state.experiment

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
        return self._safe(lambda: self.store.ensure_experiment(env_weights, env_weights),
                          _offline_experiment(env_weights))

    # -- serving -------------------------------------------------------------------------------

    def predict(self, request: PredictRequest, started: float, state: State) -> Prediction:
        """Route, predict, log and count one request (a batch goes to one version)."""
        try:
            version = state.router.choose(request.user_id, salt=self.settings.experiment_salt)
        except NoRoutableModel as exc:
            raise ModelUnavailable(str(exc)) from None
        proba = state.models.versions[version].predictor.predict_proba(request.X)
        probabilities = proba.tolist()
        # For a few rows plain Python is faster than a numpy call (first maximum, like argmax).
        classes = proba.argmax(axis=1).tolist() if len(probabilities) > 16 else [r.index(max(r)) for r in probabilities]
        names = state.models.class_names
        latency = time.perf_counter() - started
        now = time.time()
        ids = new_prediction_ids(len(classes), now)
        user_hash = hash_user(self.settings.experiment_salt, request.user_id) if request.user_id is not None else None
        latency_ms = latency * 1000.0
        experiment_id = state.experiment.id or None
        self.prediction_log.record(
            [
                PredictionRecord(pid, now, experiment_id, version, row, c, p, latency_ms, user_hash)
                for pid, row, c, p in zip(ids, request.X.tolist(), classes, probabilities)
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

    # -- admin ---------------------------------------------------------------------------------

    def set_weights(self, raw: object) -> Experiment:
        """Validate and persist new weights; a new experiment period starts now."""
        with self._lock:
            state = self.state
            known = list(state.models.manifest.get("versions", {})) or list(state.experiment.weights)
            try:
                weights = validate_weights(raw, known, state.experiment.weights)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            if state.models.versions and not any(weights.get(v, 0) > 0 for v in state.models.versions):
                raise BadRequest(
                    f"no loaded version would get traffic: loaded {sorted(state.models.versions)}, weights {weights}"
                )
            started = self.store.start_experiment(weights, state.experiment.env_weights, "api")
            self.state = State.build(state.models, started)
        log.info("weights changed to %s (experiment %d)", weights, started.id)
        return started

    def reload(self) -> dict:
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
                v for v, lv in after.versions.items()
                if getattr(before.versions.get(v), "predictor", None) is not lv.predictor
            ),
            "failed": dict(after.failed),
            "kept_previous": sorted(v for v in after.failed if v in after.versions),
        }

    # -- feedback and reports ------------------------------------------------------------------

    def feedback(self, items: list[tuple[str, int]]) -> list[dict | None]:
        """Record labels; a just-issued id not yet flushed by its worker is awaited briefly before 'not found'."""
        results = self._label(items, [None] * len(items))
        # Only ids this service issued in the last few seconds can still be on their way to the store.
        if any(r is None and _recently_issued(pid) for r, (pid, _) in zip(results, items)):
            self.prediction_log.flush()
            deadline = time.monotonic() + self.settings.feedback_wait_seconds
            while True:
                results = self._label(items, results)
                pending = [r is None and _recently_issued(pid) for r, (pid, _) in zip(results, items)]
                if not any(pending) or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        return results

    def _label(self, items: list[tuple[str, int]], results: list[dict | None]) -> list[dict | None]:
        """Label the items not labelled yet, in one store transaction."""
        todo = [i for i, r in enumerate(results) if r is None and _is_uuid(items[i][0])]
        if not todo:
            return results
        found = self.store.set_labels([items[i] for i in todo])
        results = list(results)
        for i, outcome in zip(todo, found):
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

    def drift(self) -> dict:
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

    def ab_report(self, since: float | None = None) -> dict:
        """The A/B verdict for the current experiment period, or for everything since ``since``."""
        state = self.state
        return assemble_ab_report(self.store, state.experiment, since=since, shares=state.router.share)

    def metrics_snapshot(self) -> dict:
        """Scrape-time gauges: drift, per-version accuracy, weights, loaded models."""
        state = self.state
        snapshot: dict = {
            "weights": dict(state.experiment.weights),
            "models": {
                v: {"sha256": lv.sha256, "n_estimators": lv.meta.get("params", {}).get("n_estimators", ""),
                    "backend": lv.predictor.backend}
                for v, lv in state.models.versions.items()
            },
        }
        try:
            result = self.drift()
            snapshot["drift_score"] = result["drift_score"]
            snapshot["feature_scores"] = {
                name: drift.drift_score_from_p(f["p_value_adjusted"], threshold=self.settings.drift_threshold)
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
            except Exception:  # noqa: BLE001 - the poller must never die
                log.exception("state sync failed")

    def close(self) -> None:
        """Flush the prediction log and stop background threads (clean shutdown loses nothing)."""
        self._stop.set()
        self.prediction_log.close()
        self._sync_thread.join(timeout=5)
        self.store.close()

    @staticmethod
    def _safe(action, default):
        try:
            return action()
        except StoreUnavailable as exc:
            log.error("state store unavailable at start-up: %s", exc)
            return default


def _offline_experiment(weights: dict[str, int]) -> Experiment:
    """The period used while the store cannot be reached: the environment's weights, id 0 (not logged)."""
    return Experiment(0, time.time(), dict(weights), dict(weights), "env")


def new_prediction_ids(n: int, now: float) -> list[str]:
    """n UUIDv7 ids (RFC 9562): unguessable, and time-ordered so the log's unique index grows at its end."""
    stamp = int(now * 1000).to_bytes(6, "big")
    entropy = os.urandom(10 * n)
    ids = []
    for i in range(n):
        raw = bytearray(stamp + entropy[10 * i:10 * i + 10])
        raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


_RECENT_MS = 5000


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _recently_issued(text: str) -> bool:
    """A UUIDv7 whose timestamp is within the last few seconds: its row may still be in a worker's buffer."""
    if not _is_uuid(text) or text[14] != "7":
        return False
    issued_ms = int(text[:8] + text[9:13], 16)
    return -1000 <= time.time() * 1000 - issued_ms <= _RECENT_MS


def window_drift(store: Store, reference: np.ndarray, feature_names: list[str], settings: Settings) -> dict:
    """Drift of the store's last DRIFT_WINDOW rows (every worker's) against ``reference``."""
    rows = store.recent_features(settings.drift_window)
    width = len(feature_names)
    current = np.array([r for r in rows if len(r) == width], dtype=np.float64).reshape(-1, width)
    result = drift.detect_drift(
        reference, current, feature_names, threshold=settings.drift_threshold, min_samples=settings.drift_min_samples
    )
    return {**result, "window_size": settings.drift_window, "timestamp": utc_now()}


def assemble_ab_report(store: Store, current: Experiment, *, since: float | None = None, shares=None) -> dict:
    """Gather the store's counts for a period and build the A/B report.

    Without ``since`` the period is the current experiment; its expected shares come from
    ``shares`` (the router's, which knows which versions can serve) or the configured weights.
    With ``since`` every experiment period overlapping it contributes its own weights,
    in proportion to the traffic it saw.
    """
    if since is None:
        counts = store.variant_counts(experiment_id=current.id)
        latencies = store.latencies(experiment_id=current.id)
        positive = sum(w for w in current.weights.values() if w > 0) or 1
        share = shares or (lambda v: max(current.weights.get(v, 0), 0) / positive)
        expected = {v: share(v) for v in current.weights}
    else:
        counts = store.variant_counts(since=since)
        latencies = store.latencies(since=since)
        expected = _mixed_shares(counts, {e.id: e for e in store.experiments()}, current)
    totals: dict[str, list[int]] = {}
    for c in counts:
        entry = totals.setdefault(c.version, [0, 0, 0])
        entry[0] += c.requests
        entry[1] += c.labeled
        entry[2] += c.correct
    versions = list(dict.fromkeys([*current.weights, *totals]))
    variants = [
        experiment.VariantData(
            version=v,
            weight=int(current.weights.get(v, 0)),
            expected_share=expected.get(v, 0.0),
            requests=totals.get(v, [0, 0, 0])[0],
            labeled=totals.get(v, [0, 0, 0])[1],
            correct=totals.get(v, [0, 0, 0])[2],
            latencies_ms=latencies.get(v, []),
        )
        for v in versions
    ]
    report = experiment.build_report(variants, baseline=versions[0] if versions else None)
    period = {"id": current.id, "started_at": iso(current.started_at), "weights": dict(current.weights),
              "source": current.source}
    return {
        "experiment": period,
        "since": iso(since) if since is not None else iso(current.started_at),
        "generated_at": utc_now(),
        **report,
    }


def _mixed_shares(counts, experiments: dict[int, Experiment], current: Experiment) -> dict[str, float]:
    """Expected shares over several periods: each period's configured shares, weighted by its traffic."""
    expected: dict[str, float] = {}
    per_period: dict[int | None, int] = {}
    for c in counts:
        per_period[c.experiment_id] = per_period.get(c.experiment_id, 0) + c.requests
    for exp_id, n in per_period.items():
        weights = experiments.get(exp_id, current).weights
        positive = sum(w for w in weights.values() if w > 0) or 1
        for v, w in weights.items():
            expected[v] = expected.get(v, 0.0) + n * max(w, 0) / positive
    grand = sum(expected.values()) or 1.0
    return {v: x / grand for v, x in expected.items()}
