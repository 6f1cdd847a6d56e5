"""The Rollout tab: the canary rollout's state, its step, every decision with its evidence, and an abort button.

Every decision here is the server's (hold, advance, promote, roll back) with the reason and the numbers it
gave; the page only arranges them. Aborting needs the admin token typed into the Admin tab.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from app.ui.client import ApiClient
from app.ui.format import DASH, as_float, format_ms, format_when, pct, weights_text

ADMIN_TOKEN_KEY = "admin_token"
"""The session-state key of the Admin tab's token field."""

EXAMPLE_PLAN: dict[str, Any] = {
    "candidate": "v2",
    "baseline": "v1",
    "steps": [10, 50, 100],
    "min_labels": 200,
    "margin": 0.05,
    "max_error_rate": 0.02,
    "max_p99_ms": 50,
}

_STATES = {
    "running": ("info", "Rolling out"),
    "promoted": ("success", "Promoted"),
    "rolled_back": ("error", "Rolled back"),
    "aborted": ("warning", "Aborted"),
}


def render(client: ApiClient) -> None:
    """The current (or last) rollout, or how to start one."""
    result = client.rollout()
    if result.status == 404:
        _show_how_to_start(client.base_url)
        return
    if not result.ok:
        st.error(f"Cannot load the rollout: {result.error}")
        return
    rollout = result.data
    state_box = st.container()
    token = st.session_state.get(ADMIN_TOKEN_KEY)
    aborted = _abort_button(client, rollout, token) if isinstance(token, str) and token else None
    if rollout.get("state") == "running" and not token:
        st.caption("Enter the admin token in the Admin tab to abort this rollout.")
    shown = aborted or rollout
    # Filled first on the page, last in the run: an abort shows the rollout as the server left it.
    with state_box:
        show_state(shown)
    show_decisions(shown)


def show_state(rollout: dict[str, Any]) -> None:
    """The state, and the step reached of how many."""
    state = str(rollout.get("state", "unknown"))
    kind, words = _STATES.get(state, ("info", f"State {state}"))
    candidate, baseline = rollout.get("candidate", "?"), rollout.get("baseline", "?")
    getattr(st, kind)(
        f"**{words}**: {candidate} against {baseline} (rollout #{rollout.get('id', '?')}, "
        f"started {format_when(rollout.get('started_at'))}, last change {format_when(rollout.get('updated_at'))})"
    )
    steps = [s for s in rollout.get("steps") or [] if as_float(s) is not None]
    step = rollout.get("step")
    weights = rollout.get("weights")
    weights = weights if isinstance(weights, dict) else {}
    state_col, step_col, share_col = st.columns(3)
    state_col.metric("State", state)
    if isinstance(step, int) and not isinstance(step, bool) and 0 <= step < len(steps):
        step_col.metric("Step", f"{step + 1} of {len(steps)}")
        st.progress(
            (step + 1) / len(steps),
            text=f"Step {step + 1} of {len(steps)}: {candidate} planned at {steps[step]:g}% of traffic "
            f"(steps {', '.join(f'{s:g}%' for s in steps)})",
        )
    else:
        step_col.metric("Step", DASH)
    share_col.metric(f"{candidate} weight now", _weight_of_total(weights, candidate))
    st.caption(f"Weights now: {weights_text(weights)}")


def show_decisions(rollout: dict[str, Any]) -> None:
    """The evidence of the latest decision, every decision, and the plan."""
    candidate, baseline = rollout.get("candidate", "?"), rollout.get("baseline", "?")
    history = [e for e in rollout.get("history") or [] if isinstance(e, dict)]
    upcoming = rollout.get("next")
    if rollout.get("state") == "running" and isinstance(rollout.get("evidence"), dict):
        # While it runs the server sends this step's evidence so far and what it would decide now.
        now = upcoming if isinstance(upcoming, dict) else {}
        decision = {"at": None, "decision": now.get("decision", "?"), "reason": now.get("reason", "")}
        _show_evidence({**decision, "evidence": rollout["evidence"]}, {"candidate": candidate, "baseline": baseline})
    else:
        latest = next((e for e in reversed(history) if isinstance(e.get("evidence"), dict)), None)
        _show_evidence(latest, {"candidate": candidate, "baseline": baseline})
    _show_history(history)
    plan = rollout.get("plan")
    if isinstance(plan, dict):
        st.caption(f"Plan: {plan_text(plan)}")


def plan_text(plan: dict[str, Any]) -> str:
    """What a rollout plan asks for, in words."""
    parts = []
    steps = [s for s in plan.get("steps") or [] if as_float(s) is not None]
    if steps:
        parts.append(f"{plan.get('candidate', 'the candidate')} at {', '.join(f'{s:g}%' for s in steps)} of traffic")
    if plan.get("min_labels") is not None:
        parts.append(f"at least {plan['min_labels']} labels per step")
    margin = as_float(plan.get("margin"))
    if margin is not None:
        parts.append(f"no worse than {plan.get('baseline', 'the baseline')} by more than {margin * 100:g} points")
    error_rate = as_float(plan.get("max_error_rate"))
    if error_rate is not None:
        parts.append(f"errors at most {error_rate:.1%}")
    p99 = as_float(plan.get("max_p99_ms"))
    if p99 is not None:
        parts.append(f"p99 at most {p99:g} ms")
    return "; ".join(parts) or DASH


def evidence_text(evidence: object) -> str:
    """The comparison a decision rested on, in a few words: "-22.5 [-52.0, +7.0] · p = 0.21" (points)."""
    if not isinstance(evidence, dict):
        return DASH
    parts = []
    diff = as_float(evidence.get("accuracy_diff"))
    if diff is not None:
        parts.append(f"{diff * 100:+.1f}")
    sequence = _points(evidence.get("confidence_sequence"))
    if sequence:
        parts.append(sequence)
    p_value = as_float(evidence.get("p_value"))
    if p_value is not None:
        parts.append(f"· p = {p_value:.2g}")
    return " ".join(parts) or DASH


def _points(bounds: object) -> str | None:
    """An interval of accuracy differences in percentage points: "[-52.0, +7.0]"."""
    if not isinstance(bounds, list) or len(bounds) != 2:
        return None
    low, high = (as_float(b) for b in bounds)
    if low is None or high is None:
        return None
    return f"[{low * 100:+.1f}, {high * 100:+.1f}]"


def _show_evidence(decision: dict[str, Any] | None, versions: dict[str, Any]) -> None:
    """The numbers of this step so far (``at`` None), or of the latest decision that had some: the difference,
    and each side's health."""
    if decision is None:
        return
    evidence = decision["evidence"]
    if decision.get("at") is None:
        st.subheader("This step so far")
        st.caption(f"Now: {decision.get('decision', '?')}, {decision.get('reason', '')}")
    else:
        st.subheader("Latest evidence")
        st.caption(f"{format_when(decision.get('at'))}: {decision.get('decision', '?')}, {decision.get('reason', '')}")
    diff_col, sequence_col, p_col = st.columns(3)
    diff = as_float(evidence.get("accuracy_diff"))
    diff_col.metric("Accuracy difference", DASH if diff is None else f"{diff * 100:+.1f} pp")
    sequence = _points(evidence.get("confidence_sequence"))
    sequence_col.metric("Always-valid interval", f"{sequence} pp" if sequence else DASH)
    p_value = as_float(evidence.get("p_value"))
    p_col.metric("Always-valid p", DASH if p_value is None else f"{p_value:.2g}")
    rows = [
        {
            "": f"{versions.get(role, '?')} ({role})",
            "requests": side.get("requests"),
            "labelled": side.get("labeled"),
            "accuracy": pct(side.get("accuracy")),
            "error rate": pct(side.get("error_rate")),
            "p99 latency": format_ms(side.get("p99_ms")),
        }
        for role in ("candidate", "baseline")
        if isinstance(side := evidence.get(role), dict)
    ]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)


def _show_history(history: list[dict[str, Any]]) -> None:
    """Every decision, newest first."""
    st.subheader("Decisions")
    if not history:
        st.info("No decisions yet.")
        return
    rows = [
        {
            "time": format_when(e.get("at")),
            "step": e["step"] + 1 if isinstance(e.get("step"), int) else e.get("step"),
            "weights": weights_text(e.get("weights")),
            "decision": e.get("decision"),
            "accuracy difference [always valid] (pp)": evidence_text(e.get("evidence")),
            "reason": e.get("reason"),
        }
        for e in reversed(history)
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def _abort_button(client: ApiClient, rollout: dict[str, Any], token: str) -> dict[str, Any] | None:
    """While the rollout runs, a button that stops it; returns the rollout as the server left it."""
    if rollout.get("state") != "running":
        return None
    if not st.button("Abort rollout", type="primary"):
        return None
    result = client.abort_rollout(token)
    if not result.ok:
        st.error(f"Rollout not aborted: {result.error}")
        return None
    state, weights = result.data.get("state", "?"), weights_text(result.data.get("weights"))
    st.success(f"Rollout aborted: it is {state}, with weights {weights}.")
    return result.data if "state" in result.data else None


def _show_how_to_start(base_url: str) -> None:
    """No rollout ever ran: say how to start one."""
    st.info("No rollout has run yet. Start one with the admin token; the API moves the traffic step by step.")
    body = json.dumps(EXAMPLE_PLAN)
    st.code(
        f'curl -X POST {base_url}/rollouts -H "Authorization: Bearer $ADMIN_TOKEN" \\\n'
        f"  -H \"Content-Type: application/json\" -d '{body}'",
        language="bash",
    )


def _weight_of_total(weights: dict[str, Any], version: object) -> str:
    """A version's weight and the total, as "50 of 100"."""
    numbers = [w for w in weights.values() if isinstance(w, int) and not isinstance(w, bool)]
    weight = weights.get(str(version))
    if not isinstance(weight, int) or isinstance(weight, bool):
        return DASH
    return f"{weight} of {sum(numbers)}"
