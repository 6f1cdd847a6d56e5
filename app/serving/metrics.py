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

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

PREDICTION_REQUESTS = Counter("prediction_requests", "POST /predict requests, accepted or rejected")
MODEL_VERSION_REQUESTS = Counter("model_version_requests", "Prediction requests served, by model version", ["version"])
PREDICTION_LATENCY = Histogram(
    "prediction_latency_seconds", "Server time to answer a prediction request", ["version"], buckets=LATENCY_BUCKETS
)
PREDICTION_ERRORS = Counter("prediction_errors", "Rejected or failed POST /predict requests, by HTTP status", ["code"])
PREDICTIONS = Counter(
    "predictions", "Predictions (each batch row counts one), by version and class", ["version", "class"]
)
LOG_ERRORS = Counter("prediction_log_errors", "Prediction-log rows lost (store unavailable or queue full)", ["reason"])
FEEDBACK = Counter(
    "prediction_feedback", "First labels received for predictions, by version and outcome", ["version", "outcome"]
)
FEEDBACK_CORRECTIONS = Counter("prediction_feedback_corrections", "Labels that replaced an earlier label", ["version"])


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
