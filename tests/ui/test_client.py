"""app/ui/client.py: the HTTP client, against the fake API over real HTTP."""

from __future__ import annotations

import pytest

from app.settings import Settings
from app.ui.client import ApiClient, one_line
from tests.helpers import free_port
from tests.ui.fake_api import DRIFT_HISTORY, HEALTH, ROLLOUT, TIMELINE, FakeApi


def client_for(api: FakeApi, timeout: float = 3.0) -> ApiClient:
    """A client for the fake API."""
    return ApiClient(api.url, timeout)


def test_from_settings_takes_url_and_timeout() -> None:
    settings = Settings.from_env({"API_URL": " http://flask-api:5000/ ", "API_TIMEOUT_SECONDS": "0.5"})

    client = ApiClient.from_settings(settings)

    assert (client.base_url, client.timeout) == ("http://flask-api:5000", 0.5)


def test_from_settings_defaults_to_localhost_and_three_seconds() -> None:
    client = ApiClient.from_settings(Settings.from_env({}))

    assert (client.base_url, client.timeout) == ("http://localhost:5000", 3.0)


def test_a_json_object_is_the_result(fake_api: FakeApi) -> None:
    result = client_for(fake_api).health()

    assert (result.ok, result.data, result.status, result.error) == (True, HEALTH, 200, None)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"error": "no prediction with id 'x'"}, "no prediction with id 'x' (HTTP 404)"),
        (401, {}, "Admin token missing or wrong (HTTP 401)"),
        (403, {"detail": "x"}, "Admin changes are disabled on the server (ADMIN_TOKEN is not set) (HTTP 403)"),
        (503, {}, "The API has no model loaded (HTTP 503)"),
        (500, {}, "API error (HTTP 500)"),
        (502, b"<html>\n  Bad   gateway\n</html>", "<html> Bad gateway </html> (HTTP 502)"),
    ],
)
def test_a_failed_status_becomes_one_line_in_the_apis_words(
    fake_api: FakeApi, status: int, body: object, expected: str
) -> None:
    fake_api.reply("POST", "/feedback", status, body)

    result = client_for(fake_api).feedback("x", 0, "token-x")

    assert (result.ok, result.error, result.status, result.data) == (False, expected, status, {})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>gateway</html>", "The API sent a reply that is not JSON (HTTP 200)"),
        ([1, 2], "The API sent an unexpected reply (HTTP 200)"),
    ],
)
def test_a_reply_that_is_not_a_json_object_is_an_error(fake_api: FakeApi, body: object, expected: str) -> None:
    fake_api.reply("GET", "/drift", 200, body)

    assert client_for(fake_api).drift().error == expected


def test_the_admin_token_goes_in_the_authorization_header_only_when_given(fake_api: FakeApi) -> None:
    client = client_for(fake_api)

    assert client.update_weights({"v1": 90, "v2": 10}, "s3cret").data["weights"] == {"v1": 90, "v2": 10}
    assert client.config().ok

    (put,) = fake_api.sent("PUT", "/config")
    assert (put.headers["Authorization"], put.body) == ("Bearer s3cret", {"weights": {"v1": 90, "v2": 10}})
    (get,) = fake_api.sent("GET", "/config")
    assert "Authorization" not in get.headers


def test_the_timeline_drift_history_and_rollout_are_read_where_the_api_serves_them(fake_api: FakeApi) -> None:
    client = client_for(fake_api)
    fake_api.reply("GET", "/drift/history?points=5", 200, DRIFT_HISTORY)

    assert client.timeline().data == TIMELINE
    assert client.drift_history(5).data == DRIFT_HISTORY
    assert client.rollout().data == ROLLOUT

    assert [r.path for r in fake_api.requests] == ["/ab/timeline", "/drift/history?points=5", "/rollouts/current"]
    assert all("Authorization" not in r.headers for r in fake_api.requests)


def test_aborting_a_rollout_is_a_delete_with_the_admin_token(fake_api: FakeApi) -> None:
    result = client_for(fake_api).abort_rollout("s3cret")

    assert result.data["state"] == "aborted"
    (sent,) = fake_api.sent("DELETE", "/rollouts/current")
    assert (sent.headers["Authorization"], sent.body) == ("Bearer s3cret", None)


def test_predict_sends_the_features_and_the_user_id(fake_api: FakeApi) -> None:
    assert client_for(fake_api).predict([5.1, 3.5, 1.4, 0.2], "user-0001").data["class_name"] == "setosa"

    assert fake_api.sent("POST", "/predict")[0].body == {"features": [5.1, 3.5, 1.4, 0.2], "user_id": "user-0001"}


def test_after_a_timeout_later_calls_fail_at_once(fake_api: FakeApi) -> None:
    fake_api.delay = 5.0
    client = client_for(fake_api, timeout=0.2)

    first, second = client.health(), client.drift()

    assert first.error == second.error == f"The API at {fake_api.url} did not answer within 0.2 s"
    assert [r.path for r in fake_api.requests] == ["/health"]


def test_an_unreachable_api_says_so() -> None:
    client = ApiClient(f"http://127.0.0.1:{free_port()}", 3.0)

    assert client.models().error == f"Cannot reach the API at {client.base_url}: is it running?"
    assert client.config().error == client.models().error


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [("a\n  b\tc ", 240, "a b c"), ("x" * 10, 10, "x" * 10), ("x" * 11, 10, "x" * 9 + "…")],
)
def test_one_line_collapses_whitespace_and_truncates(text: str, limit: int, expected: str) -> None:
    assert one_line(text, limit) == expected
