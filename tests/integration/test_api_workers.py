"""A real gunicorn server with 2 workers: exact metrics, shared state, restarts, shutdown."""

from __future__ import annotations

import signal
import socket
import sqlite3
import time

import pytest
import requests

from tests.helpers import ADMIN, SETOSA, post_many, scrape, total, until_every_worker, value, wait_until

pytestmark = pytest.mark.integration


def test_seed_curl_example_and_headers(live_api):
    r = requests.post(f"{live_api.url}/predict", json={"features": SETOSA}, timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["prediction"] == 0 and body["model_version"] in ("v1", "v2")
    assert r.headers["X-Model-Version"] == body["model_version"] and r.headers["X-Served-By"].isdigit()
    health = requests.get(f"{live_api.url}/health", timeout=5).json()
    assert health["status"] == "healthy" and health["models_loaded"] is True


def test_counters_are_exact_across_workers(live_api):
    before = scrape(live_api.url)
    good, bad = 300, 37
    responses = post_many(live_api.url, [{"features": SETOSA}] * good + [b'{"features": [1, 2]}'] * bad)
    assert sum(r.status_code == 200 for r in responses) == good
    assert sum(r.status_code == 400 for r in responses) == bad
    assert len({r.headers["X-Served-By"] for r in responses}) == 2, "both workers must have served"
    after = scrape(live_api.url)
    by_version = {v: sum(r.headers.get("X-Model-Version") == v for r in responses) for v in ("v1", "v2")}
    assert value(after, "prediction_requests_total") - value(before, "prediction_requests_total") == good + bad
    assert (
        value(after, "prediction_errors_total", code="400") - value(before, "prediction_errors_total", code="400")
        == bad
    )
    for version, count in by_version.items():
        assert (
            value(after, "model_version_requests_total", version=version)
            - value(before, "model_version_requests_total", version=version)
        ) == count
    assert total(after, "prediction_latency_seconds_count") - total(before, "prediction_latency_seconds_count") == good
    assert (
        total(after, "predictions_total", **{"class": "setosa"})
        - total(before, "predictions_total", **{"class": "setosa"})
    ) == good


def test_batch_rows_count_as_predictions(live_api):
    before = scrape(live_api.url)
    r = requests.post(f"{live_api.url}/predict", json={"instances": [SETOSA] * 25}, timeout=5)
    assert r.status_code == 200 and len(r.json()["prediction_ids"]) == 25
    after = scrape(live_api.url)
    assert total(after, "predictions_total") - total(before, "predictions_total") == 25
    assert value(after, "prediction_requests_total") - value(before, "prediction_requests_total") == 1


def test_sticky_user_is_stable_across_workers(live_api):
    responses = post_many(live_api.url, [{"features": SETOSA, "user_id": "user-42"}] * 60)
    assert len({r.headers["X-Served-By"] for r in responses}) == 2
    assert len({r.json()["model_version"] for r in responses}) == 1


def test_config_change_reaches_every_worker_within_a_second(live_api):
    current = requests.get(f"{live_api.url}/config", timeout=5).json()["weights"]
    target = {"v1": 0, "v2": 7} if current.get("v1", 0) else {"v1": 7, "v2": 0}
    only = "v2" if target["v2"] else "v1"
    r = requests.put(f"{live_api.url}/config", json={"weights": target}, headers=ADMIN, timeout=5)
    assert r.status_code == 200
    try:
        changed_at = time.monotonic()
        while time.monotonic() - changed_at < 1.0:  # traffic during the propagation window
            post_many(live_api.url, [{"features": SETOSA}] * 8, threads=4)
        responses = post_many(live_api.url, [{"features": SETOSA}] * 200)
        assert len({r.headers["X-Served-By"] for r in responses}) == 2
        assert {r.json()["model_version"] for r in responses} == {only}
        configs = [requests.get(f"{live_api.url}/config", timeout=5) for _ in range(20)]
        assert {c.json()["weights"][only] for c in configs} == {7}
        samples = scrape(live_api.url)
        assert value(samples, "model_traffic_weight", version=only) == 7
    finally:
        # The server is shared by the module's tests: put the weights back even when this test fails.
        restored = requests.put(f"{live_api.url}/config", json={"weights": current}, headers=ADMIN, timeout=5)
        assert restored.status_code == 200, restored.text


def test_reload_reaches_every_worker(api_server_factory):
    server = api_server_factory()
    with open(server.models_dir / "model_v2.pkl", "ab") as handle:
        handle.write(b"tampered")
    r = requests.post(f"{server.url}/models/reload", headers=ADMIN, timeout=10)
    assert r.status_code == 200 and r.json()["kept_previous"] == ["v2"]
    started = time.monotonic()
    until_every_worker(server.url, "/health", 2, lambda h: h.json()["status"] == "degraded", timeout=5, interval=0.05)
    assert time.monotonic() - started < 2.0
    responses = post_many(server.url, [{"features": SETOSA}] * 100)
    assert all(r.status_code == 200 for r in responses)  # v2 keeps serving its previous model


def test_clean_shutdown_loses_no_logged_prediction(api_server_factory):
    server = api_server_factory()
    responses = post_many(server.url, [{"instances": [SETOSA] * 3}] * 100)
    assert all(r.status_code == 200 for r in responses)
    ids = {pid for r in responses for pid in r.json()["prediction_ids"]}
    assert server.stop(signal.SIGTERM) == 0
    with sqlite3.connect(server.database) as db:
        stored = {row[0] for row in db.execute("SELECT prediction_id FROM predictions")}
    assert ids <= stored and len(ids) == 300


def test_logged_prediction_is_readable_within_a_second(live_api):
    r = requests.post(f"{live_api.url}/predict", json={"features": SETOSA}, timeout=5)
    pid = r.json()["prediction_id"]
    start = time.monotonic()
    with sqlite3.connect(live_api.database) as db:
        wait_until(
            lambda: db.execute("SELECT 1 FROM predictions WHERE prediction_id = ?", (pid,)).fetchone(),
            timeout=1.0,
            message="the prediction row",
        )
    assert time.monotonic() - start <= 1.0


def test_runtime_weights_survive_restart_until_environment_changes(api_server_factory, tmp_path):
    database = tmp_path / "restart.db"
    first = api_server_factory(database=database, name="first")
    r = requests.put(f"{first.url}/config", json={"weights": {"v1": 90, "v2": 10}}, headers=ADMIN, timeout=5)
    assert r.status_code == 200
    first.stop()
    second = api_server_factory(database=database, name="second")
    assert requests.get(f"{second.url}/config", timeout=5).json()["weights"] == {"v1": 90, "v2": 10}
    second.stop()
    third = api_server_factory(
        database=database, name="third", extra_env={"MODEL_V1_WEIGHT": "70", "MODEL_V2_WEIGHT": "30"}
    )
    config = requests.get(f"{third.url}/config", timeout=5).json()
    assert config["weights"] == {"v1": 70, "v2": 30} and config["experiment"]["source"] == "env"
    assert (config["model_v1_weight"], config["model_v2_weight"], config["total_weight"]) == (70, 30, 100)


@pytest.mark.parametrize("path", ["/predict", "/feedback"])
def test_malformed_chunked_body_is_a_json_400(live_api, path):
    """gunicorn's own body reader fails on a bad chunk size; the client still gets a JSON 400."""
    with socket.create_connection(("127.0.0.1", live_api.port), timeout=5) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".encode()
        )
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"400", response[:300]
    assert b"application/json" in head and b"could not read the request body" in body
