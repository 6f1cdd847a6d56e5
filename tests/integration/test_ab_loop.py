"""The feedback loop end to end on a 2-worker server: exact counts, a verdict, and the SRM alarm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
import requests
from sklearn.datasets import load_iris

from app.settings import REPO_DIR
from tests.helpers import ADMIN, post_many, scrape, until_every_worker, value, wait_until

pytestmark = pytest.mark.integration


def start_period(api, weights: dict) -> int:
    """Change the weights and wait until every worker routes under the new experiment period."""
    new_id = requests.put(f"{api.url}/config", json={"weights": weights}, headers=ADMIN, timeout=5).json()[
        "experiment"
    ]["id"]
    until_every_worker(
        api.url, "/config", 2, lambda r: r.json()["experiment"]["id"] == new_id, timeout=1.5, interval=0.01
    )
    return new_id


def accuracy_gauge_is(url: str, version: str, expected: float) -> Callable[[], bool]:
    """A check for wait_until: the model_accuracy gauge of ``version`` reads ``expected``."""
    return lambda: value(scrape(url), "model_accuracy", version=version) == pytest.approx(expected)


def test_verdict_counts_and_srm(api_server_factory):
    api = api_server_factory()
    start_period(api, {"v1": 50, "v2": 50})
    rows = load_iris().data.tolist()
    responses = post_many(api.url, [{"features": rows[i % 150]} for i in range(400)])
    assert all(r.status_code == 200 for r in responses)
    served = {v: [r.json() for r in responses if r.json()["model_version"] == v] for v in ("v1", "v2")}
    assert served["v1"] and served["v2"]

    # v1 is always right; v2 is right for exactly 70% of its predictions (by position).
    labels, expected_correct = [], {"v1": 0, "v2": 0}
    for version, predictions in served.items():
        for i, p in enumerate(predictions):
            right = version == "v1" or i % 10 < 7
            label = p["prediction"] if right else (p["prediction"] + 1) % 3
            labels.append({"prediction_id": p["prediction_id"], "label": label, "feedback_token": p["feedback_token"]})
            expected_correct[version] += right

    def all_logged() -> bool:
        variants = requests.get(f"{api.url}/ab/report", timeout=10).json()["variants"]
        return sum(v["requests"] for v in variants.values()) == len(responses)

    wait_until(all_logged, timeout=5, message="every prediction in the log")  # labels then record, not queue
    before = scrape(api.url)
    half = len(labels) // 2
    r = requests.post(f"{api.url}/feedback", json={"feedback": labels[:half]}, timeout=30)
    assert r.status_code == 200 and r.json()["accepted"] == half and r.json()["not_found"] == []
    for item in labels[half:]:
        assert requests.post(f"{api.url}/feedback", json=item, timeout=10).status_code == 200
    # a repeated label is refused without the admin token, and with it is a correction, never a second count
    assert requests.post(f"{api.url}/feedback", json=labels[0], timeout=10).status_code == 409
    again = requests.post(f"{api.url}/feedback", json=labels[0], headers=ADMIN, timeout=10).json()
    assert again["corrected"] is True

    report = requests.get(f"{api.url}/ab/report", timeout=10).json()
    for version in ("v1", "v2"):
        variant = report["variants"][version]
        assert variant["requests"] == len(served[version])
        assert variant["labeled"] == len(served[version])
        assert variant["correct"] == expected_correct[version]
        assert variant["accuracy_ci95"][0] <= variant["accuracy"] <= variant["accuracy_ci95"][1]
    assert report["variants"]["v1"]["accuracy"] == 1.0
    comparison = report["comparison"]
    assert comparison["baseline"] == "v1" and comparison["challenger"] == "v2"
    assert comparison["significant"] is True and comparison["p_value"] < 0.001 and comparison["winner"] == "v1"
    assert report["srm"]["mismatch"] is False
    assert (
        report["recommendation"].startswith("v1 is more accurate") and "shift traffic to v1" in report["recommendation"]
    )

    after = scrape(api.url)
    for version in ("v1", "v2"):
        correct = expected_correct[version]
        wrong = len(served[version]) - correct
        assert (
            value(after, "prediction_feedback_total", version=version, outcome="correct")
            - value(before, "prediction_feedback_total", version=version, outcome="correct")
            == correct
        )
        assert (
            value(after, "prediction_feedback_total", version=version, outcome="incorrect")
            - value(before, "prediction_feedback_total", version=version, outcome="incorrect")
            == wrong
        )
        # a gauge computed at scrape time, cached at most a second per worker
        wait_until(
            accuracy_gauge_is(api.url, version, correct / len(served[version])),
            timeout=2.0,
            message=f"model_accuracy {version}",
        )

    cli = subprocess.run(
        [sys.executable, "-m", "app.ab_report", "--json"],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": api.env["DATABASE_URL"]},
        check=True,
        timeout=120,
    )
    from_cli = json.loads(cli.stdout)
    assert {v: from_cli["variants"][v]["correct"] for v in ("v1", "v2")} == expected_correct
    text = subprocess.run(
        [sys.executable, "-m", "app.ab_report"],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": api.env["DATABASE_URL"]},
        check=True,
        timeout=120,
    ).stdout
    assert "v1 is more accurate" in text

    # A new period in which one heavy sticky user dominates: the split no longer matches 50/50.
    start_period(api, {"v1": 50, "v2": 50})
    heavy = post_many(api.url, [{"features": rows[0], "user_id": "heavy-user"}] * 300)
    light = post_many(api.url, [{"features": rows[0]}] * 100)
    assert all(r.status_code == 200 for r in heavy + light)
    assert len({r.json()["model_version"] for r in heavy}) == 1

    # every worker's log reaches the store within a second (one flush interval plus margin)
    def report_with_all_400() -> dict | None:
        rep = requests.get(f"{api.url}/ab/report", timeout=10).json()
        return rep if sum(v["requests"] for v in rep["variants"].values()) == 400 else None

    report = wait_until(report_with_all_400, timeout=1.0, message="all 400 predictions in the report")
    assert report["srm"]["mismatch"] is True and report["srm"]["p_value"] < 0.001
    assert report["recommendation"].startswith("sample ratio mismatch")
    # the whole history (?since=) still holds the first period's labels
    since = requests.get(f"{api.url}/ab/report", params={"since": "2000-01-01T00:00:00+00:00"}, timeout=10).json()
    assert since["variants"]["v1"]["labeled"] == len(served["v1"])
