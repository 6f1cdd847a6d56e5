"""Progressive delivery on a live 2-worker API: a canary that rolls back or promotes by itself, across a restart.

The test plays the users: it sends predictions, and labels each one right or wrong according to the version that
served it, as a user's ground truth would. The controller (whichever worker holds the store's lease) decides.
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests
from sklearn.datasets import load_iris

from tests.helpers import ADMIN, MEASURED, ApiServer, LabellingUsers, scrape, until_every_worker, value, wait_until

pytestmark = pytest.mark.integration

ROWS = load_iris().data.tolist()
FAST_CONTROLLER = {"CONTROLLER_INTERVAL_SECONDS": "0.3", "LOG_LEVEL": "info"}


def start_rollout(api: ApiServer, **plan) -> dict:
    body = {"candidate": "v2", "baseline": "v1", "steps": [10, 50, 100], "min_labels": 200, "margin": 0.05,
            "max_error_rate": 0.02, "max_p99_ms": 50} | plan  # fmt: skip
    r = requests.post(f"{api.url}/rollouts", json=body, headers=ADMIN, timeout=5)
    assert r.status_code == 201, r.text
    rollout = r.json()
    until_every_worker(api.url, "/config", 2, lambda c: c.json()["experiment"]["id"] == rollout["experiment_id"], 5)
    return rollout


def served_only(api: ApiServer, version: str) -> None:
    """Every worker routes to ``version`` alone."""
    until_every_worker(api.url, "/config", 2, lambda c: c.json()["shares"][version] == 1.0, timeout=5)
    answers = [requests.post(f"{api.url}/predict", json={"features": ROWS[i]}, timeout=5).json() for i in range(40)]
    assert {a["model_version"] for a in answers} == {version}


def test_a_bad_candidate_is_rolled_back_and_the_baseline_serves_everything(api_server_factory):
    api = api_server_factory(extra_env=FAST_CONTROLLER)
    start_rollout(api)
    users = LabellingUsers(api.url, {"v1": lambda i: i % 20 != 0, "v2": lambda i: i % 2 == 0})  # right 95% against 50%
    rollout = users.until(lambda r: r["state"] != "running")
    assert rollout["state"] == "rolled_back", rollout
    assert [h["decision"] for h in rollout["history"]] == ["start", "rollback"]
    decision = rollout["history"][-1]
    assert "less accurate" in decision["reason"] and decision["evidence"]["confidence_sequence"][1] < 0
    assert decision["weights"] == {"v1": 100, "v2": 0}
    MEASURED["rollback of a 50% candidate"] = (
        f"after {decision['evidence']['candidate']['labeled']} candidate labels, "
        f"{users.seen['v1'] + users.seen['v2']} rows in all"
    )
    served_only(api, "v1")
    samples = scrape(api.url)
    assert value(samples, "rollout_state", state="rolled_back") == 1.0
    assert value(samples, "rollout_decisions_total", decision="rollback") == 1.0
    assert f"rollout {rollout['id']}: rollback, weights {{'v1': 100, 'v2': 0}}: v2 is less accurate" in api.log()


def test_an_equal_candidate_is_promoted_through_every_step_across_a_restart(api_server_factory):
    api = api_server_factory(extra_env=FAST_CONTROLLER)
    start_rollout(api, margin=0.1, max_p99_ms=1000)
    equal = {"v1": lambda i: i % 20 != 0, "v2": lambda i: i % 20 != 0}  # both right 95%
    users = LabellingUsers(api.url, equal)
    rollout = users.until(lambda r: r["step"] == 1 or r["state"] != "running")
    assert (rollout["state"], rollout["share"]) == ("running", 50), rollout
    until_every_worker(api.url, "/config", 2, lambda c: c.json()["weights"] == {"v1": 50, "v2": 50}, timeout=5)

    # A restart in the middle: the rollout, its step and its history are in the store, not in a worker.
    api.stop()
    api = api_server_factory(
        models_dir=api.models_dir, database=api.database, name="restarted", extra_env=FAST_CONTROLLER
    )
    after = requests.get(f"{api.url}/rollouts/current", timeout=5).json()
    assert (after["state"], after["step"], after["history"]) == ("running", 1, rollout["history"])
    assert requests.get(f"{api.url}/config", timeout=5).json()["weights"] == {"v1": 50, "v2": 50}

    users.url = api.url
    done = users.until(lambda r: r["state"] != "running")
    assert done["state"] == "promoted", done
    assert [h["decision"] for h in done["history"]] == ["start", "advance", "promote"]
    assert [h["weights"]["v2"] for h in done["history"]] == [10, 50, 100]
    assert all("non-inferior" in h["reason"] for h in done["history"][1:])
    MEASURED["promotion of an equal candidate"] = (
        f"{users.seen['v1'] + users.seen['v2']} labelled rows over 2 steps and a restart; candidate labels per step "
        + ", ".join(str(h["evidence"]["candidate"]["labeled"]) for h in done["history"][1:])
    )
    served_only(api, "v2")
    assert value(scrape(api.url), "rollout_state", state="promoted") == 1.0


def test_shadow_traffic_on_live_workers(api_server_factory):
    api = api_server_factory()
    r = requests.put(f"{api.url}/config", json={"weights": {"v1": 100, "v2": 0}, "shadow": ["v2"]}, headers=ADMIN,
                     timeout=5)  # fmt: skip
    assert r.status_code == 200, r.text
    until_every_worker(api.url, "/config", 2, lambda c: c.json()["shadow"] == ["v2"], timeout=5)
    users = LabellingUsers(api.url, {"v1": lambda i: i % 10 != 0})
    for _ in range(5):
        users.round()
    assert users.seen == Counter({"v1": 1000})  # the shadow version never answers anyone

    def judged() -> dict | None:
        shadow = requests.get(f"{api.url}/ab/report", timeout=5).json()["shadow"].get("v2")
        return shadow if shadow and shadow["labeled"] == 1000 else None

    shadow = wait_until(judged, timeout=10, message="every shadow row scored and labelled")
    assert shadow["requests"] == 1000 and shadow["served_accuracy"] == pytest.approx(0.9)
    assert 0.0 < shadow["agreement"] <= 1.0
    samples = scrape(api.url)
    assert value(samples, "shadow_predictions_total", version="v2") == 1000
    assert value(samples, "model_version_requests_total", version="v2") == 0
    assert value(samples, "model_shadow_agreement", version="v2") == pytest.approx(shadow["agreement"])
