"""app/ui/page.py through the entry point: layout, settings, the sticky user id and per-panel containment."""

from __future__ import annotations

import uuid

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import free_port
from tests.ui.driver import TAB_LABELS, metric_values, predict, rerun, run_app, sliders, tab
from tests.ui.fake_api import FakeApi


def test_layout_has_title_and_tabs_with_predict_first(fake_api: FakeApi) -> None:
    at = run_app()

    assert at.title[0].value == "🌸 Iris Classifier — MLOps A/B Demo"
    assert [t.label for t in at.tabs] == TAB_LABELS
    assert not at.error


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("abc", "Input should be a valid number"), ("-1", "greater than 0"), ("0", "greater than 0")],
)
def test_an_invalid_setting_is_one_error_line_naming_it(
    fake_api: FakeApi, monkeypatch: pytest.MonkeyPatch, raw: str, reason: str
) -> None:
    monkeypatch.setenv("API_TIMEOUT_SECONDS", raw)

    at = run_app()

    (error,) = at.error
    assert error.value.startswith(f"Invalid setting, fix it and restart the UI: API_TIMEOUT_SECONDS='{raw}': ")
    assert reason in error.value
    assert "\n" not in error.value and "Traceback" not in error.value
    assert not at.tabs
    assert not fake_api.requests


def test_the_timeout_setting_is_used(fake_api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TIMEOUT_SECONDS", "0.3")
    fake_api.delay = 5.0

    at = run_app()

    assert "did not answer within 0.3 s" in at.sidebar.error[0].value


def test_user_id_is_a_uuid_kept_in_session_and_url(fake_api: FakeApi) -> None:
    at = run_app()
    uid = at.session_state["user_id"]
    assert str(uuid.UUID(uid)) == uid
    assert at.query_params["uid"] == uid

    predict(at)
    predict(at)

    assert [r.body["user_id"] for r in fake_api.sent("POST", "/predict")] == [uid, uid]
    assert run_app().session_state["user_id"] != uid


def test_user_id_from_the_url_survives_a_reload(fake_api: FakeApi) -> None:
    uid = str(uuid.uuid4())

    at = predict(run_app({"uid": uid}))

    assert at.session_state["user_id"] == uid
    assert fake_api.sent("POST", "/predict")[0].body["user_id"] == uid


def test_a_malformed_uid_in_the_url_is_replaced(fake_api: FakeApi) -> None:
    at = run_app({"uid": "<script>"})

    assert at.session_state["user_id"] != "<script>"
    assert at.query_params["uid"] == at.session_state["user_id"]


def _assert_one_line_errors_everywhere(at: AppTest, phrase: str) -> None:
    """Every panel shows exactly one error line containing phrase, and no traceback."""
    assert not at.exception
    for label in TAB_LABELS:
        errors = tab(at, label).error
        assert len(errors) == 1, label
        assert phrase in errors[0].value and "\n" not in errors[0].value
        assert "Traceback" not in errors[0].value
    assert phrase in at.sidebar.error[0].value


def test_api_down_says_so_in_one_line_per_panel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("API_TIMEOUT_SECONDS", raising=False)

    at = run_app()

    _assert_one_line_errors_everywhere(at, "Cannot reach the API")
    assert not at.slider
    at.button(key="refresh").click()
    _assert_one_line_errors_everywhere(rerun(at), "Cannot reach the API")


def test_api_too_slow_says_so_and_waits_only_once(fake_api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TIMEOUT_SECONDS", "0.3")
    fake_api.delay = 5.0

    at = run_app()

    _assert_one_line_errors_everywhere(at, "did not answer within 0.3 s")
    # The first timeout short-circuits the other calls of the same run, so the
    # page waits out one timeout, not one per panel.
    assert len(fake_api.requests) == 1


def test_a_malformed_reply_breaks_only_its_own_panel(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/drift", 200, {"drift_score": "high", "features": {"x": {"psi": [1]}}, "samples": None})
    fake_api.reply("GET", "/ab/report", 200, b"<html>gateway</html>")

    at = run_app()

    assert "not JSON" in tab(at, "Experiment").error[0].value
    assert metric_values(tab(at, "Drift"))["Drift score"] == "—"
    assert metric_values(tab(at, "Admin")) == {"v1": "50", "v2": "50"}
    assert len(sliders(at)) == 4


def test_a_panel_crash_is_contained(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/config", 200, {"weights": {"v1": "lots"}})

    at = run_app()

    (error,) = tab(at, "Admin").error
    assert error.value.startswith("Admin is unavailable: unexpected reply from the API (ValueError: ")
    assert metric_values(tab(at, "Drift"))["Drift score"] == "0.120"
    assert metric_values(tab(at, "Predict")) == {}
    assert len(sliders(at)) == 4
