"""Scrape-time gauges from a state snapshot, the /metrics body, and labelled series that exist from the start."""

from __future__ import annotations

import os
import subprocess
import sys

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.serving.metrics import PREDICT_ERROR_CODES, StateCollector, initialise, render


def samples(snapshot: dict) -> dict[tuple[str, tuple], float]:
    body, content_type = render(StateCollector(lambda: snapshot))
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_gauges_follow_the_snapshot():
    got = samples(
        {
            "drift_score": 0.42,
            "drift_detected": True,
            "feature_scores": {"petal_length": 0.42},
            "accuracy": {"v1": 0.9},
            "weights": {"v1": 90, "v2": 10},
            "models": {"v1": {"sha256": "ab", "n_estimators": 50, "backend": "fast"}},
        }
    )
    assert got[("model_drift_score", ())] == 0.42 and got[("model_drift_detected", ())] == 1.0
    assert got[("model_feature_drift_score", (("feature", "petal_length"),))] == 0.42
    assert got[("model_traffic_weight", (("version", "v2"),))] == 10
    assert got[("model_accuracy", (("version", "v1"),))] == 0.9
    info = (("backend", "fast"), ("n_estimators", "50"), ("sha256", "ab"), ("version", "v1"))
    assert got[("model_info", info)] == 1


def test_no_drift_computed_reads_as_no_drift():
    got = samples({})
    assert got[("model_drift_score", ())] == 0.0 and got[("model_drift_detected", ())] == 0.0


def scrape_registry() -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        for s in family.samples
    }


def test_initialise_creates_every_labelled_series_at_zero():
    initialise(["v-init"], ["alpha", "beta"])
    got = scrape_registry()
    for code in PREDICT_ERROR_CODES:
        assert ("prediction_errors_total", (("code", code),)) in got
    for reason in ("store_unavailable", "queue_full", "shutdown", "client_quota"):
        assert ("prediction_log_errors_total", (("reason", reason),)) in got
    version = (("version", "v-init"),)
    assert got[("model_version_requests_total", version)] == 0
    assert got[("prediction_latency_seconds_count", version)] == 0
    assert got[("prediction_feedback_corrections_total", version)] == 0
    for name in ("alpha", "beta"):
        assert got[("predictions_total", (("class", name), ("version", "v-init")))] == 0
    for outcome in ("correct", "incorrect"):
        assert got[("prediction_feedback_total", (("outcome", outcome), ("version", "v-init")))] == 0
    initialise(["v-init"], ["alpha", "beta"])  # again (a reload): nothing changes
    assert scrape_registry()[("model_version_requests_total", version)] == 0


_FRESH_WORKER = """
import sys
from pathlib import Path
from prometheus_client.parser import text_string_to_metric_families
from app.serving import metrics
{setup}
body, _ = metrics.render(metrics.StateCollector(lambda: {{}}))
for family in text_string_to_metric_families(body.decode()):
    for s in family.samples:
        print(s.name, ",".join(f"{{k}}={{v}}" for k, v in sorted(s.labels.items())), s.value)
"""


def fresh_worker(tmp_path, setup: str) -> set[str]:
    """The /metrics samples of a new interpreter (a fresh gunicorn worker) in multiprocess mode."""
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir(exist_ok=True)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    code = _FRESH_WORKER.format(setup=setup)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.splitlines())


def test_initialised_series_reach_a_multiprocess_scrape(tmp_path):
    samples = fresh_worker(tmp_path, 'metrics.initialise(["v1"], ["setosa"])')
    assert "prediction_errors_total code=500 0.0" in samples
    assert "predictions_total class=setosa,version=v1 0.0" in samples
    assert "prediction_latency_seconds_count version=v1 0.0" in samples


def test_a_fresh_service_exposes_its_series_before_any_request(tmp_path, trained_models):
    setup = (
        "from app.serving.service import Service\n"
        "from app.settings import Settings\n"
        f"Service(Settings.from_env({{}}, models_dir=Path({str(trained_models)!r}), "
        f"database_url='sqlite:///{tmp_path}/state.db'))"
    )
    samples = fresh_worker(tmp_path, setup)
    assert "prediction_errors_total code=503 0.0" in samples
    assert "model_version_requests_total version=v2 0.0" in samples
    assert "predictions_total class=virginica,version=v1 0.0" in samples
    assert "prediction_feedback_total outcome=incorrect,version=v2 0.0" in samples


def test_store_gauges_follow_the_snapshot():
    down = samples({"store_available": False, "unwritten_rows": 12})
    assert down[("state_store_available", ())] == 0.0 and down[("prediction_log_unwritten_rows", ())] == 12
    up = samples({})
    assert up[("state_store_available", ())] == 1.0 and up[("prediction_log_unwritten_rows", ())] == 0
