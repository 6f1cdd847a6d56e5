"""./run_demo.sh native mode: a fresh start trains, serves, reports status and stops cleanly."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests

from app.settings import REPO_DIR
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.integration


def test_run_demo_start_status_stop(tmp_path):
    ports = {"API_PORT": free_port(), "UI_PORT": free_port(), "PROMETHEUS_PORT": free_port()}
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "RUN_MODE": "native",
        "RUN_DIR": str(tmp_path / "run"),
        "MODELS_DIR": str(tmp_path / "models"),  # empty: the script must train
        "DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "API_WORKERS": "2",
        "BIND_HOST": "127.0.0.1",
    }

    def script(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["./run_demo.sh", *args], cwd=REPO_DIR, env=env, capture_output=True, text=True,
                              timeout=300, check=check)

    try:
        started = script()
        assert "training" in started.stdout and "Training complete!" in started.stdout
        for port in ports.values():
            assert f"http://127.0.0.1:{port}" in started.stdout
        api = f"http://127.0.0.1:{ports['API_PORT']}"
        r = requests.post(f"{api}/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}, timeout=5)
        assert r.status_code == 200 and r.json()["prediction"] == 0
        assert requests.get(f"http://127.0.0.1:{ports['UI_PORT']}/_stcore/health", timeout=5).ok

        def scraped() -> set[str]:
            targets = requests.get(f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}/api/v1/targets", timeout=5).json()
            return {t["scrapeUrl"] for t in targets["data"]["activeTargets"]}

        wait_until(lambda: f"{api}/metrics" in scraped(), timeout=30, message="Prometheus scraping the API")
        status = script("status")
        assert status.stdout.count("healthy at") == 3
        again = script(check=False)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        stopped = script("stop", check=False)
    assert stopped.returncode == 0
    status = script("status", check=False)
    assert status.returncode != 0 and status.stdout.count("stopped") == 3
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{ports['API_PORT']}/health", timeout=2)
