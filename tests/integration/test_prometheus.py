"""A real Prometheus scraping a real 2-worker API: the seed README's queries must tell the truth."""

from __future__ import annotations

import math
import os
import shutil
import subprocess

import pytest
import requests

from app.serving.metrics import LATENCY_BUCKETS
from app.settings import REPO_DIR
from tests.helpers import free_port, post_many, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def prometheus(api_server_factory, tmp_path):
    """Prometheus on a free port with the native config that run_demo.sh writes, scraping the API."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: run ./install.sh (Debian's prometheus package)")
    api = api_server_factory(extra_env={"DRIFT_CLIENT_SHARE": "1"})  # the test is the only client
    port = free_port()
    run_dir = tmp_path / "run"
    env = {**os.environ, "RUN_DIR": str(run_dir), "API_UPSTREAM_PORT": str(api.port), "PROMETHEUS_PORT": str(port)}
    config = subprocess.run(
        ["./run_demo.sh", "prometheus-config"], cwd=REPO_DIR, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    with open(tmp_path / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{url}/-/ready", timeout=2).ok, timeout=60, message="prometheus ready")
        yield api, url
    finally:
        process.terminate()
        process.wait(30)


def query(url: str, promql: str) -> list[dict]:
    body = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def scalar(url: str, promql: str) -> float | None:
    result = query(url, promql)
    return sum(float(r["value"][1]) for r in result) if result else None


def test_seed_queries_match_the_traffic(prometheus):
    api, prom = prometheus
    wait_until(
        lambda: query(prom, 'up{job="flask-api"}') and query(prom, 'up{job="flask-api"}')[0]["value"][1] == "1",
        timeout=30,
        interval=0.5,
        message="the API target up",
    )
    responses = post_many(api.url, [{"features": [5.1, 3.5, 1.4, 0.2]}] * 240)
    assert all(r.status_code == 200 for r in responses)
    sent = len(responses)
    per_version = {v: sum(r.json()["model_version"] == v for r in responses) for v in ("v1", "v2")}

    wait_until(
        lambda: scalar(prom, "prediction_requests_total") == sent,
        timeout=40,
        interval=0.5,
        message=f"prediction_requests_total == {sent}",
    )
    for version, count in per_version.items():
        assert scalar(prom, f'model_version_requests_total{{version="{version}"}}') == count
    wait_until(
        lambda: (scalar(prom, "rate(prediction_requests_total[1m])") or 0) > 0,
        timeout=40,
        interval=0.5,
        message="a positive request rate",
    )

    # histogram_quantile interpolates inside the bucket that holds the observation of rank 0.95 * count
    # (counted from the cumulative buckets), so the estimate must lie within that bucket's edges.
    edges = (0.0, *LATENCY_BUCKETS, math.inf)
    for series in query(prom, "histogram_quantile(0.95, prediction_latency_seconds_bucket)"):
        version = series["metric"]["version"]
        estimate = float(series["value"][1])
        latencies = [r.json()["latency_ms"] / 1000 for r in responses if r.json()["model_version"] == version]
        rank = 0.95 * len(latencies)

        def bucket_edge(shift: float, latencies: list[float] = latencies, rank: float = rank) -> float:
            """The upper edge of the bucket holding that rank, with every latency moved by ``shift``."""
            return next(e for e in edges[1:] if sum(x + shift <= e for x in latencies) >= rank)

        # latency_ms is rounded to the microsecond, so a value next to an edge may sit on either side of it.
        lowest, highest = bucket_edge(-0.5e-6), bucket_edge(0.5e-6)
        lower = edges[edges.index(lowest) - 1]
        assert lower <= estimate <= highest, (version, sorted(latencies)[-10:], estimate)

    # 240 identical rows are as drifted as a window can be; Prometheus must read what /drift says.
    drift = requests.get(f"{api.url}/drift", timeout=5).json()
    assert drift["drift_detected"] and drift["drift_score"] == 1.0
    wait_until(
        lambda: scalar(prom, "model_drift_score") == drift["drift_score"],
        timeout=40,
        interval=0.5,
        message="model_drift_score from the live window",
    )
    assert scalar(prom, "rate(prediction_errors_total[5m])") in (None, 0.0)


def test_alert_rules_are_loaded(prometheus):
    _, prom = prometheus
    groups = requests.get(f"{prom}/api/v1/rules", timeout=5).json()["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {
        "ModelDriftDetected",
        "HighPredictionErrorRate",
        "HighPredictionLatencyP95",
        "PredictionApiDown",
        "ABSplitMismatch",
    } <= names
