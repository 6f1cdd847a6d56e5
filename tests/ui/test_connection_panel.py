"""app/ui/panels/connection.py: the sidebar names the API, its health and this browser's user id."""

from __future__ import annotations

import pytest

from tests.ui.driver import run_app
from tests.ui.fake_api import FakeApi


def test_sidebar_names_the_api_its_health_and_the_user_id(fake_api: FakeApi) -> None:
    at = run_app()

    captions = [c.value for c in at.sidebar.caption]
    uid = at.session_state["user_id"]
    assert captions == [f"API: `{fake_api.url}`", f"Your user id: `{uid}` — it keeps your A/B assignment sticky."]
    assert [s.value for s in at.sidebar.success] == ["API healthy · models loaded"]
    assert at.sidebar.button[0].label == "Refresh"


@pytest.mark.parametrize(
    ("health", "kind", "line"),
    [
        ({"status": "degraded", "models_loaded": True}, "warning", "API degraded · models loaded"),
        ({"status": "unhealthy", "models_loaded": False}, "error", "API unhealthy · no models loaded"),
        ({}, "error", "API unknown · no models loaded"),
    ],
)
def test_health_is_coloured_by_status(fake_api: FakeApi, health: dict[str, object], kind: str, line: str) -> None:
    fake_api.reply("GET", "/health", 200, health)

    at = run_app()

    assert [e.value for e in getattr(at.sidebar, kind)] == [line]
    assert not at.sidebar.success


def test_a_failed_health_call_is_one_error_line(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/health", 503, {"error": "no model is loaded"})

    at = run_app()

    assert [e.value for e in at.sidebar.error] == ["no model is loaded (HTTP 503)"]
