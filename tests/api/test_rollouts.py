"""POST /rollouts, GET and DELETE /rollouts/current, and what PUT /config does around them; shadow and policy."""

from __future__ import annotations

import pytest

from app.api import service_of
from tests.api.helpers import check_schema, sample
from tests.helpers import ADMIN, SETOSA, counter, wait_until

PLAN = {"candidate": "v2", "baseline": "v1", "steps": [10, 50, 100], "min_labels": 200, "margin": 0.05,
        "max_error_rate": 0.02, "max_p99_ms": 50}  # fmt: skip


def test_no_rollout_yet_is_a_404(client):
    r = client.get("/rollouts/current")
    assert r.status_code == 404 and "POST /rollouts" in r.get_json()["error"]
    check_schema(r, "/rollouts/current")


def test_a_rollout_starts_at_its_first_step_and_owns_the_routing(client, app):
    r = client.post("/rollouts", json=PLAN, headers=ADMIN)
    assert r.status_code == 201, r.get_json()
    check_schema(r, "/rollouts", "post")
    body = r.get_json()
    assert (body["state"], body["step"], body["share"], body["weights"]) == ("running", 0, 10, {"v1": 90, "v2": 10})
    assert body["history"][0]["decision"] == "start" and body["next"]["decision"] == "hold"
    assert client.get("/config").get_json()["weights"] == {"v1": 90, "v2": 10}  # this worker adopted it at once
    current = client.get("/rollouts/current")
    check_schema(current, "/rollouts/current")
    assert current.get_json()["evidence"]["candidate"]["labeled"] == 0
    again = client.post("/rollouts", json=PLAN, headers=ADMIN)
    assert again.status_code == 409 and "is running" in again.get_json()["error"]
    put = client.put("/config", json={"weights": {"v1": 50}}, headers=ADMIN)
    assert put.status_code == 409 and "DELETE /rollouts/current" in put.get_json()["error"]
    assert client.get("/config").get_json()["weights"] == {"v1": 90, "v2": 10}


def test_abort_restores_the_baseline(client):
    assert client.delete("/rollouts/current", headers=ADMIN).status_code == 409  # none running
    client.post("/rollouts", json=PLAN, headers=ADMIN)
    before = counter("rollout_decisions_total", decision="abort")
    r = client.delete("/rollouts/current", headers=ADMIN)
    assert r.status_code == 200
    check_schema(r, "/rollouts/current", "delete")
    body = r.get_json()
    assert body["state"] == "aborted" and [h["decision"] for h in body["history"]] == ["start", "abort"]
    assert client.get("/config").get_json()["weights"] == {"v1": 100, "v2": 0}
    assert counter("rollout_decisions_total", decision="abort") == before + 1
    assert client.delete("/rollouts/current", headers=ADMIN).status_code == 409
    assert client.put("/config", json={"weights": {"v1": 50, "v2": 50}}, headers=ADMIN).status_code == 200


def test_rollout_gauges(client):
    client.post("/rollouts", json=PLAN, headers=ADMIN)
    text = client.get("/metrics").get_data(as_text=True)
    assert sample(text, "rollout_step") == 1.0 and sample(text, "rollout_candidate_share") == 10.0
    assert sample(text, "rollout_state", state="running") == 1.0
    assert sample(text, "rollout_state", state="promoted") == 0.0


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"Authorization": "Bearer wrong-token-0123456789"}, 401)])
def test_rollout_writes_need_the_admin_token(client, headers, status):
    assert client.post("/rollouts", json=PLAN, headers=headers).status_code == status
    assert client.delete("/rollouts/current", headers=headers).status_code == status
    assert client.get("/rollouts/current").status_code == 404


@pytest.mark.parametrize(
    ("plan", "status", "message"),
    [
        ({**PLAN, "candidate": "v9"}, 404, "v9"),
        ({**PLAN, "steps": [60, 50]}, 400, "increasing"),
        ({**PLAN, "margin": -1}, 400, '"margin"'),
        ({"candidate": "v2"}, 400, "send a plan like"),
    ],
)
def test_bad_plans_change_nothing(client, app, plan, status, message):
    r = client.post("/rollouts", json=plan, headers=ADMIN)
    assert r.status_code == status and message in r.get_json()["error"]
    assert service_of(app).store.current_rollout() is None and len(service_of(app).store.experiments()) == 1


def test_shadow_and_policy_through_put_config(client, app):
    r = client.put("/config", json={"weights": {"v1": 100, "v2": 0}, "shadow": ["v2"]}, headers=ADMIN)
    assert r.status_code == 200, r.get_json()
    check_schema(r, "/config", "put")
    assert r.get_json()["shadow"] == ["v2"] and r.get_json()["policy"] == {"name": "fixed"}
    for _ in range(5):
        assert client.post("/predict", json={"features": SETOSA}).get_json()["model_version"] == "v1"
    service = service_of(app)

    def scored() -> bool:
        service.prediction_log.flush()
        return client.get("/ab/report").get_json()["shadow"].get("v2", {}).get("requests") == 5

    wait_until(scored, timeout=5, message="the five rows scored by the shadow version")
    report = client.get("/ab/report")
    check_schema(report, "/ab/report")
    assert report.get_json()["experiment"]["shadow"] == ["v2"]
    text = client.get("/metrics").get_data(as_text=True)
    assert sample(text, "model_shadow_agreement", version="v2") is not None
    bad = client.put("/config", json={"weights": {"v2": 10}}, headers=ADMIN)  # v2 cannot serve while shadowing
    assert bad.status_code == 400 and "must have weight 0" in bad.get_json()["error"]
    off = client.put("/config", json={"shadow": [], "weights": {"v2": 50, "v1": 50}}, headers=ADMIN)
    assert off.status_code == 200 and off.get_json()["shadow"] == []


def test_the_thompson_policy(client):
    r = client.put("/config", json={"policy": "thompson", "min_share": 0.2}, headers=ADMIN)
    assert r.status_code == 200, r.get_json()
    policy = r.get_json()["policy"]
    assert policy["name"] == "thompson" and policy["min_share"] == 0.2 and policy["versions"] == ["v1", "v2"]
    assert policy["since_experiment"] == r.get_json()["experiment"]["id"]
    client.post("/predict", json={"features": SETOSA})
    report = client.get("/ab/report").get_json()
    assert report["srm"]["applicable"] is False and "bandit" in report["srm"]["note"]
    (period,) = report["allocation"]
    assert (
        period["configured_share"] == {"v1": 0.5, "v2": 0.5} and period["experiment_id"] == policy["since_experiment"]
    )
    too_much = client.put("/config", json={"policy": "thompson", "min_share": 0.5, "weights": {"v1": 1}}, headers=ADMIN)
    assert too_much.status_code == 200  # 2 versions x 0.5 is exactly everything
    one = client.put("/config", json={"policy": "thompson", "weights": {"v1": 0}}, headers=ADMIN)
    assert one.status_code == 400 and "two versions" in one.get_json()["error"]
    # Weights or shadow versions changed under the bandit start it again from them: its arms are what serves now.
    moved = client.put("/config", json={"weights": {"v1": 60, "v2": 40}}, headers=ADMIN)
    assert moved.status_code == 200, moved.get_json()
    restarted = moved.get_json()["policy"]
    assert (
        restarted["versions"] == ["v1", "v2"] and restarted["since_experiment"] == moved.get_json()["experiment"]["id"]
    )
    assert restarted["min_share"] == 0.5  # kept from the bandit it replaces
    shadowed = client.put("/config", json={"weights": {"v1": 100, "v2": 0}, "shadow": ["v2"]}, headers=ADMIN)
    assert shadowed.status_code == 400 and "two versions" in shadowed.get_json()["error"]  # say "fixed" first
    fixed = client.put("/config", json={"policy": "fixed"}, headers=ADMIN)
    assert fixed.get_json()["policy"] == {"name": "fixed"}
    assert client.get("/ab/report").get_json()["srm"]["applicable"] is True
    assert client.get("/ab/report").get_json()["allocation"] is None
