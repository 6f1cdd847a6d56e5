"""Prometheus metrics: counters and histograms shared by every gunicorn worker, gauges from the store.

Counters and the latency histogram use prometheus_client's multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set (run_demo.sh and the container entrypoint set and wipe it before
gunicorn starts), so a count is exact whichever worker answered. Values that describe shared
state (drift, accuracy, weights, loaded models) are computed at scrape time by ``StateCollector``
from the store and the model set, which every worker sees the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from app.stats.latency import LATENCY_BUCKETS
from app.store.contract import POLICIES, ROLLOUT_STATES

PREDICTION_REQUESTS = Counter("prediction_requests", "POST /predict and V2 infer requests, accepted or rejected")
MODEL_VERSION_REQUESTS = Counter("model_version_requests", "Prediction requests served, by model version", ["version"])
PREDICTION_LATENCY = Histogram(
    "prediction_latency_seconds", "Server time to answer a prediction request", ["version"], buckets=LATENCY_BUCKETS
)
PREDICTION_ERRORS = Counter(
    "prediction_errors", "Rejected or failed POST /predict and V2 infer requests, by HTTP status", ["code"]
)
PREDICTIONS = Counter(
    "predictions", "Predictions (each batch row counts one), by version and class", ["version", "class"]
)
LOG_ERRORS = Counter("prediction_log_errors", "Prediction-log rows lost (store unavailable or queue full)", ["reason"])
FEEDBACK = Counter(
    "prediction_feedback", "First labels received for predictions, by version and outcome", ["version", "outcome"]
)
PREDICTION_FAILURES = Counter(
    "prediction_failures", "Requests whose model failed to predict (answered 503), by version", ["version"]
)
FEEDBACK_CORRECTIONS = Counter("prediction_feedback_corrections", "Labels that replaced an earlier label", ["version"])
SHADOW_PREDICTIONS = Counter(
    "shadow_predictions", "Rows scored by a shadow version beside the served one (never returned)", ["version"]
)
ROLLOUT_DECISIONS = Counter(
    "rollout_decisions", "Decisions of the controller: rollout steps and bandit reallocations", ["decision"]
)

PREDICT_ERROR_CODES = ("400", "413", "415", "500", "503")
"""The error statuses the API itself can answer POST /predict with (404 and 405 are not /predict's)."""
FEEDBACK_OUTCOMES = ("correct", "incorrect")
LOG_LOSS_REASONS = ("store_unavailable", "queue_full", "shutdown", "client_quota", "shadow_dropped")
CONTROLLER_DECISIONS = ("advance", "promote", "rollback", "abort", "reallocate")


def initialise(versions: Iterable[str], class_names: Iterable[str]) -> None:
    """Create every labelled series at 0 for these model versions and classes.

    A series that was never incremented does not exist for Prometheus, so ``rate(prediction_errors_total[5m])``
    would answer nothing on a fresh start. Idempotent and cheap: call it whenever a model set is loaded. In
    multiprocess mode each worker writes its zeros to its own file and the scrape sums them.
    """
    for code in PREDICT_ERROR_CODES:
        PREDICTION_ERRORS.labels(code)
    for reason in LOG_LOSS_REASONS:
        LOG_ERRORS.labels(reason)
    for decision in CONTROLLER_DECISIONS:
        ROLLOUT_DECISIONS.labels(decision)
    classes = list(class_names)
    for version in versions:
        MODEL_VERSION_REQUESTS.labels(version)
        PREDICTION_LATENCY.labels(version)
        FEEDBACK_CORRECTIONS.labels(version)
        SHADOW_PREDICTIONS.labels(version)
        PREDICTION_FAILURES.labels(version)
        for outcome in FEEDBACK_OUTCOMES:
            FEEDBACK.labels(version, outcome)
        for name in classes:
            PREDICTIONS.labels(version, name)


def multiprocess_enabled() -> bool:
    """True when the start-up script prepared a shared metrics directory."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class StateCollector:
    """Gauges computed at scrape time from a snapshot function (drift, accuracy, weights, models)."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        """Yield the gauges for the current state."""
        state = self._snapshot()
        drift = GaugeMetricFamily(
            "model_drift_score",
            "Drift score of the live window, 0..1 (drift at DRIFT_THRESHOLD: see model_drift_detected)",
        )
        drift.add_metric([], state.get("drift_score", 0.0))
        yield drift
        detected = GaugeMetricFamily(
            "model_drift_detected", "1 when the live window drifted (drift_score >= DRIFT_THRESHOLD), else 0"
        )
        detected.add_metric([], 1.0 if state.get("drift_detected") else 0.0)
        yield detected
        per_feature = GaugeMetricFamily(
            "model_feature_drift_score", "Per-feature drift score of the live window", labels=["feature"]
        )
        for feature, score in state.get("feature_scores", {}).items():
            per_feature.add_metric([feature], score)
        yield per_feature
        accuracy = GaugeMetricFamily(
            "model_accuracy", "Accuracy over labelled predictions of the current experiment", labels=["version"]
        )
        for version, value in state.get("accuracy", {}).items():
            accuracy.add_metric([version], value)
        yield accuracy
        agreement = GaugeMetricFamily(
            "model_shadow_agreement",
            "Share of routed rows where a shadow version predicted what was served (current experiment)",
            labels=["version"],
        )
        shadow_accuracy = GaugeMetricFamily(
            "model_shadow_accuracy",
            "Accuracy of a shadow version on labelled rows (current experiment)",
            labels=["version"],
        )
        for version, shadow in state.get("shadow", {}).items():
            if shadow["agreement"] is not None:
                agreement.add_metric([version], shadow["agreement"])
            if shadow["accuracy"] is not None:
                shadow_accuracy.add_metric([version], shadow["accuracy"])
        yield agreement
        yield shadow_accuracy
        rollout = state.get("rollout")
        step = GaugeMetricFamily(
            "rollout_step", "Step of the latest rollout in force (1-based; 0 when no rollout ever ran)", labels=[]
        )
        step.add_metric([], float(rollout["step"] + 1) if rollout else 0.0)
        yield step
        rollout_state = GaugeMetricFamily(
            "rollout_state",
            "1 for the latest rollout's state (running, promoted, rolled_back, aborted)",
            labels=["state"],
        )
        for name in ROLLOUT_STATES:
            rollout_state.add_metric([name], 1.0 if rollout and rollout["state"] == name else 0.0)
        yield rollout_state
        share = GaugeMetricFamily(
            "rollout_candidate_share", "Percent of traffic the latest rollout's candidate gets in its step", labels=[]
        )
        share.add_metric([], float(rollout["share"]) if rollout else 0.0)
        yield share
        policy = GaugeMetricFamily(
            "model_routing_policy",
            "1 for the routing policy in force (fixed weights, or the Thompson bandit)",
            labels=["policy"],
        )
        for name in POLICIES:
            policy.add_metric([name], 1.0 if state.get("policy", "fixed") == name else 0.0)
        yield policy
        weights = GaugeMetricFamily("model_traffic_weight", "Configured A/B weight", labels=["version"])
        for version, weight in state.get("weights", {}).items():
            weights.add_metric([version], weight)
        yield weights
        info = GaugeMetricFamily(
            "model_info", "Loaded model versions", labels=["version", "sha256", "n_estimators", "backend"]
        )
        for version, meta in state.get("models", {}).items():
            info.add_metric([version, meta["sha256"], str(meta["n_estimators"]), meta["backend"]], 1)
        yield info
        store = GaugeMetricFamily(
            "state_store_available", "1 while this worker's last state-store operation worked, else 0"
        )
        store.add_metric([], 1.0 if state.get("store_available", True) else 0.0)
        yield store
        unwritten = GaugeMetricFamily(
            "prediction_log_unwritten_rows", "Prediction-log rows held in memory while the store refuses them"
        )
        unwritten.add_metric([], float(state.get("unwritten_rows", 0)))
        yield unwritten


def render(state_collector: StateCollector) -> tuple[bytes, str]:
    """The /metrics body: every worker's counters plus the scrape-time gauges."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    state_registry = CollectorRegistry(auto_describe=False)
    state_registry.register(state_collector)
    return generate_latest(registry) + generate_latest(state_registry), CONTENT_TYPE_LATEST
