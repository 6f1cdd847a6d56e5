"""The sidebar: which API the page talks to, whether it is healthy and this browser's A/B user id."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.ui.client import ApiClient


def render(client: ApiClient, uid: str) -> None:
    """Show which API the page talks to, its health and this browser's user id."""
    st.header("Connection")
    st.caption(f"API: `{client.base_url}`")
    health = client.health()
    if not health.ok:
        st.error(health.error)
    else:
        show_health(health.data)
    st.caption(f"Your user id: `{uid}` — it keeps your A/B assignment sticky.")
    # Any rerun re-reads the API; the button just gives the operator one.
    st.button("Refresh", key="refresh", width="stretch")


def show_health(data: dict[str, Any]) -> None:
    """Show the API's health status as a coloured one-liner."""
    status = str(data.get("status", "unknown"))
    loaded = "models loaded" if data.get("models_loaded") else "no models loaded"
    line = f"API {status} · {loaded}"
    if status == "healthy":
        st.success(line)
    elif status == "degraded":
        st.warning(line)
    else:
        st.error(line)
