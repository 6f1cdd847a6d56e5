"""The serving core without HTTP: prediction, logging, weights and periods, workers in step, a locked store."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

from app.errors import BadRequest, ModelUnavailable
from app.serving.router import ConfigUpdate
from app.serving.service import Service
from app.store import StoreUnavailable
from tests.helpers import counter, wait_until

SETOSA = np.array([[5.1, 3.5, 1.4, 0.2]])


def lost(reason: str) -> float:
    """Rows the prediction log has counted as lost for ``reason``."""
    return counter("prediction_log_errors_total", reason=reason)


def test_predict_routes_logs_and_answers(service):
    result = service.predict(SETOSA, "alice", time.perf_counter(), service.state)
    assert result.classes == [0] and result.class_names == ["setosa"] and result.version in ("v1", "v2")
    again = service.predict(SETOSA, "alice", time.perf_counter(), service.state)
    assert again.version == result.version  # sticky
    assert service.prediction_log.flush()
    row = service.store.find_prediction(result.prediction_ids[0])
    assert row is not None and row["model_version"] == result.version and row["features"] == SETOSA[0].tolist()
    assert row["user_hash"] is not None and row["user_hash"] != "alice"
    assert row["experiment_id"] == service.experiment.id


def test_a_weights_change_starts_a_period_and_reroutes(service):
    before = service.experiment.id
    config = service.set_config(ConfigUpdate(weights={"v1": 0}))
    assert config["weights"] == {"v1": 0, "v2": 50} and config["experiment"]["id"] == before + 1
    assert {service.predict(SETOSA, f"u{i}", 0.0, service.state).version for i in range(20)} == {"v2"}
    with pytest.raises(BadRequest, match="unknown model version"):
        service.set_config(ConfigUpdate(weights={"v7": 1}))
    assert service.experiment.id == before + 1


def test_sync_adopts_newer_periods_only(service, monkeypatch):
    older = service.experiment
    service.set_config(ConfigUpdate(weights={"v1": 10}))
    newer = service.experiment
    monkeypatch.setattr(service.store, "latest_experiment", lambda: older)
    service.sync()
    assert service.experiment == newer and service.state.router.weights == newer.weights


def test_a_second_worker_adopts_a_change_within_a_poll(service, settings):
    other = Service(settings)
    other.start()
    try:
        service.set_config(ConfigUpdate(weights={"v1": 90, "v2": 10}))
        # state_poll_seconds is 0.1 in these settings: a few polls, not the whole timeout.
        wait_until(lambda: other.experiment == service.experiment, timeout=2, message="the other worker adopting")
        assert other.state.router.weights == {"v1": 90, "v2": 10}
    finally:
        other.stop()


def test_predictions_are_served_while_the_store_is_locked(settings):
    service = Service(settings.with_overrides(store_busy_timeout=0.1))
    service.start()
    blocker = sqlite3.connect(service.store.path, isolation_level=None)  # type: ignore[attr-defined]
    blocker.execute("BEGIN EXCLUSIVE")
    before = lost("store_unavailable")
    try:
        for _ in range(5):
            assert service.predict(SETOSA, None, 0.0, service.state).classes == [0]
        assert service.prediction_log.flush(timeout=5)
        assert service.prediction_log.unwritten == 5
        with pytest.raises(StoreUnavailable, match="locked"):
            service.set_config(ConfigUpdate(weights={"v1": 1}))
        health = service.health()
        assert health.serving and health.body["status"] == "degraded"
        assert health.body["store"]["status"] == "unavailable" and health.body["store"]["unwritten_rows"] == 5
        assert service.metrics_snapshot()["weights"] == {"v1": 50, "v2": 50}
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    try:
        assert service.prediction_log.flush(timeout=5)
        assert service.store.count_predictions() == 5 and lost("store_unavailable") == before
        assert service.health().body["store"]["status"] == "ok" and service.health().body["status"] == "healthy"
    finally:
        service.stop()


def test_stop_writes_what_is_buffered(settings):
    service = Service(settings.with_overrides(log_flush_seconds=60))
    service.start()
    ids = [service.predict(SETOSA, None, 0.0, service.state).prediction_ids[0] for _ in range(3)]
    assert service.store.count_predictions() == 0  # still buffered: the writer waits 60 s
    service.stop()
    reopened = Service(settings)
    try:
        assert all(reopened.store.find_prediction(pid) is not None for pid in ids)
    finally:
        reopened.stop()


def test_health_says_not_serving_until_a_loaded_version_gets_traffic(settings):
    with open(settings.models_dir / "model_v1.pkl", "ab") as handle:
        handle.write(b"tampered")
    service = Service(settings.with_overrides(env_weights={"v1": 100, "v2": 0}))
    try:
        health = service.health()
        assert health.serving is False and health.body["status"] == "unhealthy"
        assert "sha256 mismatch" in health.body["errors"]["v1"]
        service.set_config(ConfigUpdate(weights={"v2": 1}))
        assert service.health().serving is True and service.health().body["status"] == "degraded"
    finally:
        service.stop()


def test_one_client_cannot_fill_the_log(settings):
    service = Service(settings.with_overrides(log_client_rows_per_minute=10))
    service.start()
    before = lost("client_quota")
    try:
        rows = np.repeat(SETOSA, 5, axis=0)
        answers = [service.predict(rows, None, 0.0, service.state, client="10.0.0.1") for _ in range(3)]
        other = service.predict(rows, None, 0.0, service.state, client="10.0.0.2")
        assert all(a.classes == [0] * 5 for a in [*answers, other])  # every request is served
        assert service.prediction_log.flush()
        assert service.store.count_predictions() == 15  # 10 of the first client's 15 rows, and the other's 5
        assert lost("client_quota") == before + 5
        assert service.store.find_prediction(answers[2].prediction_ids[0]) is None
    finally:
        service.stop()


def test_secrets_are_the_installs_not_the_workers(settings):
    first, second = Service(settings), Service(settings)
    try:
        assert first.salt == second.salt and len(first.salt) >= 32
        pid = first.predict(SETOSA, "u", 0.0, first.state).prediction_ids[0]
        token = first.tokens.issue([pid])[0]
        assert second.tokens.verify(pid, token) and not second.tokens.verify(pid, token[:-1] + "x")
    finally:
        first.stop()
        second.stop()


def test_a_configured_salt_wins(settings):
    service = Service(settings.with_overrides(experiment_salt="my-own-salt"))
    try:
        assert service.salt == "my-own-salt"
    finally:
        service.stop()


def test_a_failing_model_is_answered_503_and_counted_per_row(service, monkeypatch, caplog):
    service.set_config(ConfigUpdate(weights={"v1": 0, "v2": 100}))

    def broken(X):
        raise RuntimeError("the forest fell over")

    monkeypatch.setattr(service.models.versions["v2"].predictor, "predict_proba", broken)
    before = counter("prediction_failures_total", version="v2")
    rows = np.repeat(SETOSA, 5, axis=0)
    for _ in range(3):
        with pytest.raises(ModelUnavailable, match="model v2 failed to predict"):
            service.predict(rows, None, 0.0, service.state)
    assert counter("prediction_failures_total", version="v2") == before + 3
    assert service.prediction_log.flush()
    (counts,) = service.store.variant_counts(experiment_id=service.experiment.id)
    assert (counts.version, counts.requests, counts.errors) == ("v2", 0, 15)  # per row, like requests
    assert sum("the forest fell over" in r.exc_text for r in caplog.records if r.exc_text) == 1  # once a minute
