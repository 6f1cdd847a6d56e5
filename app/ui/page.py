"""The whole page: config and title, the settings, the sticky user id, the sidebar and the five tabs.

Each panel runs inside ``contained`` so one malformed reply cannot break the others, and nothing that
goes wrong (bad settings, an API that is down or confused) reaches the page as a traceback.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from app.settings import Settings, SettingsError
from app.ui.client import ApiClient, one_line
from app.ui.panels import admin, connection, drift, experiment, predict, rollout

PAGE_TITLE = "Iris Classifier — MLOps A/B Demo"
TABS = ["Predict", "Experiment", "Drift", "Rollout", "Admin"]
# Accept ids from the URL only if they look like ids, so a crafted link cannot
# push arbitrary text into the API's logs and metrics labels.
_UID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def main() -> None:
    """Render the whole page; each panel fails on its own."""
    st.set_page_config(page_title=PAGE_TITLE, page_icon="🌸", layout="wide")
    st.title(f"🌸 {PAGE_TITLE}")
    client = load_client()
    if client is None:
        return
    uid = user_id()
    with st.sidebar, contained("Connection"):
        connection.render(client, uid)
    predict_tab, experiment_tab, drift_tab, rollout_tab, admin_tab = st.tabs(TABS)
    with predict_tab, contained("Predict"):
        predict.render(client, uid)
    with experiment_tab, contained("Experiment"):
        experiment.render(client)
    with drift_tab, contained("Drift"):
        drift.render(client)
    with rollout_tab, contained("Rollout"):
        rollout.render(client)
    with admin_tab, contained("Admin"):
        admin.render(client)


def load_client() -> ApiClient | None:
    """The API client built from the settings, or None after saying in one line which setting is wrong."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        st.error(one_line(f"Invalid setting, fix it and restart the UI: {exc}"))
        return None
    return ApiClient.from_settings(settings)


@contextmanager
def contained(name: str) -> Iterator[None]:
    """Contain a panel's failures so one malformed reply cannot break the others."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - no traceback may reach the page
        reason = f"{type(exc).__name__}: {exc}"
        st.error(one_line(f"{name} is unavailable: unexpected reply from the API ({reason})"))


def user_id() -> str:
    """Return this browser's stable A/B user id, kept in session state and ?uid=."""
    uid = st.session_state.get("user_id")
    if not isinstance(uid, str) or not uid:
        candidate = str(st.query_params.get("uid", ""))
        # A reload starts a new session; the id in the URL carries over so the
        # sticky router keeps sending this browser to the same version.
        uid = candidate if _UID_PATTERN.match(candidate) else str(uuid.uuid4())
        st.session_state["user_id"] = uid
    if st.query_params.get("uid") != uid:
        st.query_params["uid"] = uid
    return uid
