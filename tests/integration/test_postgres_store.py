"""The API on PostgreSQL, restarted under load: predictions keep being served from memory, /health says the
store is down, and when it is back every prediction-log row and every acknowledged label is stored."""

from __future__ import annotations

import threading

import psycopg
import pytest
import requests

from tests.helpers import SETOSA, throwaway_postgres, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def own_postgres():
    """A cluster of this test's own: it is stopped and started again in the middle of the test."""
    with throwaway_postgres("mlops-pg-restart-") as server:
        yield server


def health(url: str) -> dict:
    return requests.get(f"{url}/health", timeout=5).json()


def test_a_postgres_restart_under_load_loses_nothing_acknowledged(own_postgres, api_server_factory):
    database = own_postgres.create_database("restart")
    api = api_server_factory(database_url=database, extra_env={"STORE_BUSY_TIMEOUT": "1"})
    served: list[dict] = []
    labels: dict[str, int] = {}  # prediction id -> label, for every label the API acknowledged
    refused: list[int] = []
    stop = threading.Event()

    def load() -> None:
        session = requests.Session()
        for _ in range(3000):  # bounded; the test stops it sooner
            if stop.is_set():
                return
            r = session.post(f"{api.url}/predict", json={"features": SETOSA}, timeout=10)
            assert r.status_code == 200
            body = r.json()
            served.append(body)
            if len(served) % 5 == 0:
                item = {"prediction_id": body["prediction_id"], "label": 0, "feedback_token": body["feedback_token"]}
                f = session.post(f"{api.url}/feedback", json=item, timeout=10)
                if f.status_code in (200, 202):
                    labels[body["prediction_id"]] = 0
                else:
                    refused.append(f.status_code)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_until(lambda: len(served) >= 100, timeout=30, message="traffic before the restart")
        own_postgres.stop()  # fast shutdown: every connection is cut
        wait_until(lambda: health(api.url)["store"]["status"] == "unavailable", timeout=15, message="store down")
        during = len(served)
        wait_until(lambda: len(served) >= during + 100, timeout=30, message="predictions served while it is down")
        assert health(api.url)["status"] == "degraded"
        own_postgres.start()
        wait_until(lambda: health(api.url)["store"]["status"] == "ok", timeout=30, message="store back")
        after = len(served)
        wait_until(lambda: len(served) >= after + 100, timeout=30, message="traffic after the restart")
    finally:
        stop.set()
        worker.join(60)
    assert not worker.is_alive()

    ids = {body["prediction_id"] for body in served}

    def stored() -> set[str]:
        with psycopg.connect(database) as conn:
            return {row[0] for row in conn.execute("SELECT prediction_id FROM predictions")}

    wait_until(lambda: stored() == ids, timeout=30, message="every served prediction in the log")
    with psycopg.connect(database) as conn:
        got = dict(conn.execute("SELECT prediction_id, label FROM predictions WHERE label IS NOT NULL").fetchall())
    assert got == labels  # every acknowledged label, and no other
    assert set(refused) <= {503} and refused, "labels sent while the store was down are refused (503), not lost"
    assert health(api.url)["store"]["unwritten_rows"] == 0
