"""Scrape-time gauges from a state snapshot, and the /metrics body."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from app.serving.metrics import StateCollector, render


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
