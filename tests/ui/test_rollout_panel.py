"""app/ui/panels/rollout.py: the rollout's state, step and decisions as the server made them, and the abort button."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from app.ui.panels.rollout import evidence_text, plan_text
from tests.ui.driver import button, metric_values, rerun, run_app, tab
from tests.ui.fake_api import ROLLOUT, ROLLOUT_PLAN, FakeApi


def rollout_with(**changes: Any) -> dict[str, Any]:
    """A copy of the canned rollout with some fields changed."""
    rollout = copy.deepcopy(ROLLOUT)
    rollout.update(changes)
    return rollout


def with_token(token: str = "s3cret-admin-token") -> AppTest:
    """The page with the admin token typed into the Admin tab."""
    at = run_app()
    at.text_input(key="admin_token").input(token)
    return rerun(at)


def test_the_state_the_step_and_every_decision_newest_first(fake_api: FakeApi) -> None:
    at = run_app()

    rollout = tab(at, "Rollout")
    assert rollout.info[0].value == (
        "**Rolling out**: v2 against v1 (rollout #2, started 2026-11-22 15:00 UTC, last change 2026-11-24 09:00 UTC)"
    )
    metrics = metric_values(rollout)
    assert {k: metrics[k] for k in ("State", "Step", "v2 weight now")} == {
        "State": "running",
        "Step": "2 of 3",
        "v2 weight now": "50 of 100",
    }
    (bar,) = rollout.progress
    assert (bar.value, bar.text) == (66, "Step 2 of 3: v2 planned at 50% of traffic (steps 10%, 50%, 100%)")
    # This step's evidence so far, in numbers, and what the controller would decide now.
    assert "Now: hold, waiting for labels: v2 has 31 of 200" in [c.value for c in rollout.caption]
    assert metrics["Accuracy difference"] == "-22.5 pp"
    assert metrics["Always-valid interval"] == "[-52.0, +7.0] pp"
    assert metrics["Always-valid p"] == "0.21"
    sides = rollout.dataframe[0].value
    assert list(sides[""]) == ["v2 (candidate)", "v1 (baseline)"]
    assert list(sides["accuracy"]) == ["74.2%", "96.7%"] and list(sides["p99 latency"]) == ["12.4 ms", "10.1 ms"]
    decisions = rollout.dataframe[1].value
    assert list(decisions["decision"]) == ["advance", "start"]
    assert list(decisions["step"]) == [2, 1]
    assert list(decisions["weights"]) == ["v1 50 · v2 50", "v1 90 · v2 10"]
    assert decisions["reason"][0] == "v2 is no worse than v1 by more than 5 points, errors and p99 within the plan"
    assert decisions["accuracy difference [always valid] (pp)"][0] == "+2.1 [-4.2, +8.4] · p = 1"
    assert decisions["accuracy difference [always valid] (pp)"][1] == "—"
    captions = [c.value for c in rollout.caption]
    assert "Enter the admin token in the Admin tab to abort this rollout." in captions
    assert "Plan: v2 at 10%, 50%, 100% of traffic; at least 200 labels per step; " in " ".join(captions)
    assert not rollout.button


@pytest.mark.parametrize(
    ("state", "box", "words"),
    [("promoted", "success", "Promoted"), ("rolled_back", "error", "Rolled back"), ("aborted", "warning", "Aborted")],
)
def test_a_finished_rollout_says_how_it_ended_and_cannot_be_aborted(
    fake_api: FakeApi, state: str, box: str, words: str
) -> None:
    fake_api.reply("GET", "/rollouts/current", 200, rollout_with(state=state))

    at = with_token()

    rollout = tab(at, "Rollout")
    assert getattr(rollout, box)[0].value.startswith(f"**{words}**: v2 against v1")
    assert metric_values(rollout)["State"] == state
    assert not rollout.button
    assert "abort" not in " ".join(c.value for c in rollout.caption)


@pytest.mark.parametrize(
    "body", [{"error": "no rollout has run yet"}, {"error": "no such endpoint: GET /rollouts/current"}]
)
def test_no_rollout_yet_says_how_to_start_one(fake_api: FakeApi, body: dict[str, str]) -> None:
    fake_api.reply("GET", "/rollouts/current", 404, body)

    at = run_app()

    rollout = tab(at, "Rollout")
    assert rollout.info[0].value.startswith("No rollout has run yet.")
    (code,) = rollout.code
    assert f"curl -X POST {fake_api.url}/rollouts" in code.value
    assert "Authorization: Bearer $ADMIN_TOKEN" in code.value
    assert '"steps": [10, 50, 100], "min_labels": 200, "margin": 0.05' in code.value
    assert not rollout.error and not rollout.metric


def test_a_failing_rollout_endpoint_is_one_error_line(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/rollouts/current", 503, {"error": "state store unavailable, try again shortly"})

    at = run_app()

    (error,) = tab(at, "Rollout").error
    assert error.value == "Cannot load the rollout: state store unavailable, try again shortly (HTTP 503)"


def test_the_admin_token_aborts_the_rollout(fake_api: FakeApi) -> None:
    at = with_token("s3cret-admin-token")
    assert not fake_api.sent("DELETE", "/rollouts/current")

    button(at, "Abort rollout").click()
    at = rerun(at)

    (sent,) = fake_api.sent("DELETE", "/rollouts/current")
    assert sent.headers["Authorization"] == "Bearer s3cret-admin-token"
    rollout = tab(at, "Rollout")
    assert rollout.success[0].value == "Rollout aborted: it is aborted, with weights v1 100 · v2 0."
    assert rollout.warning[0].value.startswith("**Aborted**: v2 against v1")
    assert metric_values(rollout)["State"] == "aborted"
    assert rollout.dataframe[1].value["decision"].iloc[0] == "abort"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error": "admin token missing or wrong"}, "admin token missing or wrong (HTTP 401)"),
        (409, {"error": "the rollout is not running: it was promoted"}, "it was promoted (HTTP 409)"),
        (409, {}, "The API refused: the state changed meanwhile (HTTP 409)"),
    ],
)
def test_a_refused_abort_is_an_error_and_changes_nothing_shown(
    fake_api: FakeApi, status: int, body: dict[str, str], expected: str
) -> None:
    fake_api.reply("DELETE", "/rollouts/current", status, body)
    at = with_token()

    button(at, "Abort rollout").click()
    at = rerun(at)

    rollout = tab(at, "Rollout")
    (error,) = rollout.error
    assert error.value.startswith("Rollout not aborted: ") and error.value.endswith(expected)
    assert metric_values(rollout)["State"] == "running"


@pytest.mark.parametrize(
    "changes",
    [
        {"steps": None, "step": None, "weights": None, "history": None, "plan": None},
        {"step": 7, "steps": ["ten", 50], "history": [None, {"evidence": "strong"}], "weights": {"v1": "all"}},
        {"step": True, "history": [{"step": "2", "evidence": {"candidate": None, "confidence_sequence": [0]}}]},
    ],
)
def test_a_malformed_rollout_shows_what_it_can(fake_api: FakeApi, changes: dict[str, Any]) -> None:
    fake_api.reply("GET", "/rollouts/current", 200, rollout_with(**changes))

    at = run_app()

    rollout = tab(at, "Rollout")
    assert not rollout.error
    assert metric_values(rollout)["Step"] == "—" and not rollout.progress


def test_evidence_and_plan_in_words() -> None:
    assert evidence_text(None) == "—" and evidence_text({}) == "—"
    assert evidence_text({"accuracy_diff": 0.021, "confidence_sequence": [-0.042, 0.084], "p_value": 1.0}) == (
        "+2.1 [-4.2, +8.4] · p = 1"
    )
    assert plan_text(ROLLOUT_PLAN) == (
        "v2 at 10%, 50%, 100% of traffic; at least 200 labels per step; no worse than v1 by more than 5 points; "
        "errors at most 2.0%; p99 at most 50 ms"
    )
    assert plan_text({}) == "—"
