"""The Admin tab: the routing weights with the traffic share the server derives from them, and a form to change them."""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from app.ui.client import ApiClient
from app.ui.format import as_float, format_when

_FLAT_WEIGHT = re.compile(r"model_(\w+)_weight")


def render(client: ApiClient) -> None:
    """Current routing weights and, with the admin token, a form to change them."""
    result = client.config()
    weights_box = st.container()
    if not result.ok:
        weights_box.error(f"Cannot load the routing config: {result.error}")
        return
    weights = current_weights(result.data)
    token = st.text_input("Admin token", type="password", key="admin_token")
    shown = result.data
    if not token:
        st.info("Enter the admin token to change the weights.")
    elif weights:
        shown = _weights_form(client, weights, token) or result.data
    # Filled last so a successful update shows the new weights in this same run.
    with weights_box:
        show_weights(shown)


def current_weights(config: dict[str, Any]) -> dict[str, int]:
    """Routing weights per version from a /config reply."""
    weights = config.get("weights")
    if isinstance(weights, dict) and weights:
        return {str(k): int(v) for k, v in weights.items()}
    # Fall back to the flat model_<version>_weight keys the reply also carries.
    flat = ((_FLAT_WEIGHT.fullmatch(k), v) for k, v in config.items())
    return {match.group(1): int(v) for match, v in flat if match}


def share_text(config: dict[str, Any], version: str) -> str:
    """The server's traffic share of one version as "50% of traffic", or "no traffic" when it sent none or 0."""
    shares = config.get("shares")
    # The server's share already leaves out versions that cannot serve; weight / total here would not.
    share = as_float(shares.get(version)) if isinstance(shares, dict) else None
    return f"{share:.0%} of traffic" if share else "no traffic"


def show_weights(config: dict[str, Any]) -> None:
    """Current weights per version with the server's share of traffic for each."""
    st.subheader("Routing weights")
    weights = current_weights(config)
    for column, (name, weight) in zip(st.columns(max(len(weights), 1)), weights.items(), strict=False):
        column.metric(name, str(weight), delta=share_text(config, name), delta_color="off", delta_arrow="off")
    experiment = config.get("experiment") or {}
    st.caption(
        f"Experiment #{experiment.get('id', '?')} · started {format_when(experiment.get('started_at'))} "
        f"· weights from {experiment.get('source', '?')}"
    )


def _weights_form(client: ApiClient, weights: dict[str, int], token: str) -> dict[str, Any] | None:
    """A number input per version; returns the new config after a successful update."""
    with st.form("weights_form"):
        columns = st.columns(len(weights))
        new_weights = {
            name: int(column.number_input(f"{name} weight", min_value=0, value=weight, step=1))
            for column, (name, weight) in zip(columns, weights.items(), strict=True)
        }
        submitted = st.form_submit_button("Update weights", type="primary")
    if not submitted:
        return None
    result = client.update_weights(new_weights, token)
    if not result.ok:
        st.error(f"Weights not changed: {result.error}")
        return None
    st.success("Weights updated: " + ", ".join(f"{k} {v}" for k, v in current_weights(result.data).items()) + ".")
    return result.data
