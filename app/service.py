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
from typing import NamedTuple
from datetime import datetime, timezone

import numpy as np

from app import drift, experiment, metrics
from app.errors import BadRequest, ModelUnavailable, NotFound
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


class Service:
    """Everything one worker needs to serve, report and administer."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.database_url, busy_timeout=settings.store_busy_timeout)
        self.models: ModelSet = load_model_set(settings.models_dir, settings.predict_backend)
        self._generation = self._safe(self.store.generation, 0)
        env_weights = self._env_weights()
        fallback = Experiment(0, time.time(), env_weights, env_weights, "env")
        self.experiment: Experiment = self._safe(
            lambda: self.store.ensure_experiment(env_weights, env_weights), fallback
        )
        self.router = Router(self.experiment.weights, servable=list(self.models.versions))
        self.prediction_log = PredictionLog(
            self.store,
            flush_seconds=settings.log_flush_seconds,
            max_queue=settings.log_queue_size,
            retention_rows=settings.log_retention_rows,
            on_lost=lambda reason, n: metrics.LOG_ERRORS.labels(reason).inc(n),
        )
        self._reload_lock = threading.Lock()
        self._metric_children: dict[str, tuple] = {}
        self._drift_cache: tuple[float, dict] | None = None
        self._accuracy_cache: tuple[float, int, dict] | None = None
        self._stop = threading.Event()
        self._sync_thread = threading.Thread(target=self._sync_loop, name="state-sync", daemon=True)
        self._sync_thread.start()

    def _env_weights(self) -> dict[str, int]:
        """MODEL_<VERSION>_WEIGHT for the manifest's versions; all zero is a configuration error."""
        versions = list(self.models.manifest.get("versions", {}))
        unknown = sorted(set(self.settings.env_weights) - set(versions))
        if versions and unknown:
            log.warning("weights given for unknown model versions %s (known: %s)", unknown, versions)
        weights = self.settings.weights_for(versions)
        if weights and not any(weights.values()):
            raise ValueError(f"every A/B weight is 0 ({weights}): at least one MODEL_<VERSION>_WEIGHT must be above 0")
        return weights

    # -- serving -------------------------------------------------------------------------------

    def predict(self, request: PredictRequest, started: float) -> Prediction:
        """Route, predict, log and count one request (a batch goes to one version)."""
        models, router, exp = self.models, self.router, self.experiment
        try:
            version = router.choose(request.user_id, salt=self.settings.experiment_salt)
        except NoRoutableModel as exc:
            raise ModelUnavailable(str(exc)) from None
        loaded = models.versions[version]
        proba = loaded.predictor.predict_proba(request.X)
        probabilities = proba.tolist()
        # For a few rows plain Python is faster than a numpy call (first maximum, like argmax).
        classes = proba.argmax(axis=1).tolist() if len(probabilities) > 16 else [r.index(max(r)) for r in probabilities]
        names = models.class_names
        latency = time.perf_counter() - started
        now = time.time()
        ids = new_prediction_ids(len(classes), now)
        user_hash = hash_user(self.settings.experiment_salt, request.user_id) if request.user_id is not None else None
        latency_ms = latency * 1000.0
        self.prediction_log.record(
            [
                PredictionRecord(pid, now, exp.id or None, version, row, c, p, latency_ms, user_hash)
                for pid, row, c, p in zip(ids, request.X.tolist(), classes, probabilities)
            ]
        )
        self._count(version, latency, classes, names)
        return Prediction(
            version=version,
            classes=classes,
            class_names=[names[c] for c in classes],
            probabilities=probabilities,
            prediction_ids=ids,
            timestamp=iso(now),
            latency_ms=round(latency_ms, 3),
        )

    def _count(self, version: str, latency: float, classes: list[int], names: list[str]) -> None:
        """Update the per-version metrics through cached label children (labels() costs a lookup)."""
        children = self._metric_children.get(version)
        if children is None:
            children = (metrics.MODEL_VERSION_REQUESTS.labels(version), metrics.PREDICTION_LATENCY.labels(version), {})
            self._metric_children[version] = children
        requests, latency_histogram, per_class = children
        requests.inc()
        latency_histogram.observe(latency)
        for c in set(classes):
            counter = per_class.get(c)
            if counter is None:
                counter = per_class[c] = metrics.PREDICTIONS.labels(version, names[c])
            counter.inc(classes.count(c) if len(classes) > 1 else 1)

    # -- admin ---------------------------------------------------------------------------------

    def set_weights(self, raw: object) -> Experiment:
        """Validate and persist new weights; a new experiment period starts now."""
        known = list(self.models.manifest.get("versions", {})) or list(self.experiment.weights)
        try:
            weights = validate_weights(raw, known, self.experiment.weights)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        started = self.store.start_experiment(weights, self.experiment.env_weights, "api")
        self._adopt(started)
        log.info("weights changed to %s (experiment %d)", weights, started.id)
        return started

    def reload(self) -> dict:
        """Reload models from MODELS_DIR here, and ask every other worker to do the same."""
        before = self.models
        self._reload_models()
        generation = self.store.bump_generation()
        self._generation = generation
        after = self.models
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
        """Record labels; an id not yet flushed by its worker is awaited briefly before 'not found'."""
        results: list[dict | None] = [self._label(pid, label) for pid, label in items]
        # Only ids this service could have issued are worth waiting for; anything else is 404 at once.
        if any(r is None and _is_uuid(pid) for r, (pid, _) in zip(results, items)):
            self.prediction_log.flush()
            deadline = time.monotonic() + self.settings.feedback_wait_seconds
            while True:
                results = [r if r is not None else self._label(pid, label) for r, (pid, label) in zip(results, items)]
                if all(r is not None for r in results) or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        return results

    def _label(self, prediction_id: str, label: int) -> dict | None:
        if not _is_uuid(prediction_id):
            return None
        found = self.store.set_label(prediction_id, label)
        if found is None:
            return None
        correct = found.prediction == label
        if found.previous_label is None:
            metrics.FEEDBACK.labels(found.model_version, "correct" if correct else "incorrect").inc()
        else:
            metrics.FEEDBACK_CORRECTIONS.labels(found.model_version).inc()
        return {
            "prediction_id": prediction_id,
            "model_version": found.model_version,
            "prediction": found.prediction,
            "label": label,
            "correct": correct,
            "corrected": found.previous_label is not None,
        }

    def drift(self) -> dict:
        """Drift of the last DRIFT_WINDOW logged rows against the training reference (cached 1 s)."""
        now = time.monotonic()
        if self._drift_cache and now - self._drift_cache[0] < _DRIFT_CACHE_SECONDS:
            return self._drift_cache[1]
        models = self.models
        if models.reference is None:
            raise ModelUnavailable("training statistics are not loaded; drift cannot be computed")
        result = window_drift(self.store, models.reference, models.feature_names, self.settings)
        self._drift_cache = (now, result)
        return result

    def ab_report(self, since: float | None = None) -> dict:
        """The A/B verdict for the current experiment period, or for everything since ``since``."""
        return assemble_ab_report(self.store, self.experiment, since=since, shares=self.router.share)

    def metrics_snapshot(self) -> dict:
        """Scrape-time gauges: drift, per-version accuracy, weights, loaded models."""
        snapshot: dict = {
            "weights": dict(self.experiment.weights),
            "models": {
                v: {"sha256": lv.sha256, "n_estimators": lv.meta.get("params", {}).get("n_estimators", ""), "backend": lv.predictor.backend}
                for v, lv in self.models.versions.items()
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
        snapshot["accuracy"] = self._accuracy()
        return snapshot

    def _accuracy(self) -> dict[str, float]:
        now = time.monotonic()
        exp_id = self.experiment.id
        if self._accuracy_cache and self._accuracy_cache[1] == exp_id and now - self._accuracy_cache[0] < _ACCURACY_CACHE_SECONDS:
            return self._accuracy_cache[2]
        try:
            counts = self.store.variant_counts(experiment_id=exp_id)
        except StoreUnavailable:
            return {}
        accuracy = {c.version: c.correct / c.labeled for c in counts if c.labeled}
        self._accuracy_cache = (now, exp_id, accuracy)
        return accuracy

    # -- keeping workers in step ---------------------------------------------------------------

    def _adopt(self, exp: Experiment) -> None:
        self.experiment = exp
        self.router = Router(exp.weights, servable=list(self.models.versions))

    def _reload_models(self) -> None:
        with self._reload_lock:
            self.models = load_model_set(self.settings.models_dir, self.settings.predict_backend, previous=self.models)
            self._drift_cache = None
            self._metric_children = {}
            if self.models.versions and not any(v in self.experiment.weights for v in self.models.versions):
                # The first models to appear (the service started before training): their environment
                # weights start the first real experiment; ensure_experiment makes it one row for all workers.
                env_weights = self._env_weights()
                self.experiment = self._safe(lambda: self.store.ensure_experiment(env_weights, env_weights),
                                             Experiment(0, time.time(), env_weights, env_weights, "env"))
            self.router = Router(self.experiment.weights, servable=list(self.models.versions))

    def sync(self) -> None:
        """Adopt the store's latest weights and model generation (the poller calls this)."""
        latest = self.store.latest_experiment()
        if latest is not None and latest.id != self.experiment.id:
            self._adopt(latest)
        generation = self.store.generation()
        if generation != self._generation:
            self._generation = generation
            self._reload_models()

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


class _EntropyPool:
    """os.urandom drawn 64 KiB at a time: one system call per ~6,500 ids instead of one per id."""

    def __init__(self, chunk: int = 65536) -> None:
        self._chunk = chunk
        self._lock = threading.Lock()
        self._buffer = b""
        self._position = 0
        self._pid = 0

    def take(self, n: int) -> bytes:
        """n fresh random bytes (never shared with a forked process)."""
        with self._lock:
            if self._pid != os.getpid() or self._position + n > len(self._buffer):
                self._buffer, self._position, self._pid = os.urandom(max(self._chunk, n)), 0, os.getpid()
            start, self._position = self._position, self._position + n
            return self._buffer[start:self._position]


_ENTROPY = _EntropyPool()


def new_prediction_ids(n: int, now: float) -> list[str]:
    """n UUIDv7 ids (RFC 9562): unguessable, and time-ordered so the log's unique index grows at its end."""
    stamp = int(now * 1000).to_bytes(6, "big")
    entropy = _ENTROPY.take(10 * n)
    ids = []
    for i in range(n):
        raw = bytearray(stamp + entropy[10 * i:10 * i + 10])
        raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


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
