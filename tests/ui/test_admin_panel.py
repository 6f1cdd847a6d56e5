"""app/ui/panels/admin.py: routing weights with the server's traffic shares, and the form to change them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from app.ui.panels.admin import current_weights
from tests.ui.driver import button, metric_deltas, metric_values, rerun, run_app, tab
from tests.ui.fake_api import CONFIG, FakeApi


def admin_with_token(token: str = "s3cret") -> AppTest:
    """The page with the admin token typed in."""
    at = run_app()
    at.text_input(key="admin_token").input(token)
    return rerun(at)


def submit_weights(at: AppTest, weights: dict[str, int]) -> AppTest:
    """Fill in the weights form and press Update weights."""
    inputs = {n.label: n for n in at.number_input}
    for version, weight in weights.items():
        inputs[f"{version} weight"].set_value(weight)
    button(at, "Update weights").click()
    return rerun(at)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"weights": {"v1": 70, "v2": 30}, "model_v1_weight": 1}, {"v1": 70, "v2": 30}),
        ({"model_v1_weight": 80, "model_v2_weight": 20, "total_weight": 100}, {"v1": 80, "v2": 20}),
        ({"weights": {}, "model_v3_weight": 5}, {"v3": 5}),
        ({}, {}),
    ],
)
def test_current_weights_prefers_the_weights_object(config: dict[str, Any], expected: dict[str, int]) -> None:
    assert current_weights(config) == expected


def test_admin_shows_weights_and_shares_and_needs_a_token(fake_api: FakeApi) -> None:
    at = run_app()

    admin = tab(at, "Admin")
    assert metric_values(admin) == {"v1": "50", "v2": "50"}
    assert metric_deltas(admin) == {"v1": "50% of traffic", "v2": "50% of traffic"}
    assert admin.caption[0].value == "Experiment #3 · started 2026-11-24 03:00 UTC · weights from rollout"
    assert admin.info[0].value == "Enter the admin token to change the weights."
    assert not admin.number_input
    assert not fake_api.sent("PUT", "/config")


def test_the_shares_are_the_servers_not_weight_over_total(fake_api: FakeApi) -> None:
    # v2 is not loaded: it keeps its weight but the server routes all traffic to v1.
    fake_api.reply("GET", "/config", 200, CONFIG | {"shares": {"v1": 1.0, "v2": 0.0}})

    at = run_app()

    admin = tab(at, "Admin")
    assert metric_values(admin) == {"v1": "50", "v2": "50"}
    assert metric_deltas(admin) == {"v1": "100% of traffic", "v2": "no traffic"}


@pytest.mark.parametrize("shares", ["absent", None, {}, {"v1": None, "v2": "half"}])
def test_without_shares_from_the_server_it_says_no_traffic(fake_api: FakeApi, shares: object) -> None:
    config = copy.deepcopy(CONFIG)
    if shares == "absent":
        del config["shares"]
    else:
        config["shares"] = shares
    fake_api.reply("GET", "/config", 200, config)

    at = run_app()

    assert metric_deltas(tab(at, "Admin")) == {"v1": "no traffic", "v2": "no traffic"}


def test_admin_changes_weights_with_the_token(fake_api: FakeApi) -> None:
    at = admin_with_token()
    assert [n.value for n in at.number_input] == [50, 50]

    at = submit_weights(at, {"v1": 90, "v2": 10})

    (sent,) = fake_api.sent("PUT", "/config")
    assert sent.headers["Authorization"] == "Bearer s3cret"
    assert sent.body == {"weights": {"v1": 90, "v2": 10}}
    admin = tab(at, "Admin")
    assert admin.success[0].value == "Weights updated: v1 90, v2 10."
    assert metric_values(admin) == {"v1": "90", "v2": "10"}
    assert metric_deltas(admin) == {"v1": "90% of traffic", "v2": "10% of traffic"}
    assert "Experiment #4" in admin.caption[0].value


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "at least one weight must be above 0"}, "at least one weight must be above 0"),
        (401, {"error": "missing or wrong admin token"}, "missing or wrong admin token"),
        (401, {}, "Admin token missing or wrong"),
        (403, {}, "Admin changes are disabled on the server (ADMIN_TOKEN is not set)"),
    ],
)
def test_admin_shows_the_apis_error_in_words(
    fake_api: FakeApi, status: int, body: dict[str, str], expected: str
) -> None:
    fake_api.reply("PUT", "/config", status, body)

    at = submit_weights(admin_with_token(), {"v1": 0, "v2": 0})

    (shown,) = tab(at, "Admin").error
    assert shown.value == f"Weights not changed: {expected} (HTTP {status})"
    assert metric_values(tab(at, "Admin")) == {"v1": "50", "v2": "50"}
    assert metric_deltas(tab(at, "Admin")) == {"v1": "50% of traffic", "v2": "50% of traffic"}


def test_the_config_failing_to_load_is_said_in_words(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/config", 503, {"error": "store unavailable"})

    at = run_app()

    (error,) = tab(at, "Admin").error
    assert error.value == "Cannot load the routing config: store unavailable (HTTP 503)"
    assert not at.text_input
