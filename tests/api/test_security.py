"""The doors an attacker tries: the admin token's rules and failed-attempt limit, non-JSON bodies (cross-site
form posts), foreign Host headers, a model set changed by someone without the signing key, paths in /health."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil

import joblib
import pytest

from app.api import auth, service_of
from app.api.auth import FailedAttempts
from app.artifacts import MANIFEST_NAME, sha256_file, write_signature
from app.settings import Settings, SettingsError
from tests.api.helpers import check_schema, served
from tests.helpers import ADMIN, SETOSA

TOKEN = ADMIN["Authorization"].removeprefix("Bearer ")
KEY = "model-signing-key-of-32-chars!!!"


# -- the admin token ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token", ["short", "fifteen-chars-x", "sixteen chars ok", "tab\tseparated-token", "é" * 20], ids=repr
)
def test_an_admin_token_breaking_the_rules_stops_the_start_without_being_shown(token):
    with pytest.raises(SettingsError, match="ADMIN_TOKEN") as caught:
        Settings.from_env({"ADMIN_TOKEN": token})
    assert token not in str(caught.value) and "at least 16" in str(caught.value)


def test_secrets_are_never_in_the_settings_repr():
    settings = Settings.from_env({"ADMIN_TOKEN": TOKEN, "MODEL_SIGNING_KEY": KEY})
    assert settings.admin_enabled and settings.signing_key == KEY.encode()
    assert TOKEN not in repr(settings) and KEY not in repr(settings)


def test_failed_admin_attempts_are_limited_per_client_address(client, caplog):
    guess = {"Authorization": "Bearer guess-number-0000042"}
    with caplog.at_level(logging.WARNING, logger="app.api.auth"):
        for _ in range(5):
            assert client.post("/models/reload", headers=guess).status_code == 401
        r = client.put("/config", json={"weights": {"v1": 1}}, headers=ADMIN)  # even the right token now
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert "retry in" in r.get_json()["error"]
    check_schema(r, "/config", "put")
    assert client.get("/config").get_json()["weights"] == {"v1": 50, "v2": 50}
    failures = [rec.getMessage() for rec in caplog.records if "admin authentication failed" in rec.getMessage()]
    assert len(failures) == 5 and all("from 127.0.0.1 on POST /models/reload" in m for m in failures)
    assert all(rec.levelno == logging.WARNING for rec in caplog.records)
    assert "guess-number" not in caplog.text and TOKEN not in caplog.text
    # Another address is not blocked; a client choosing its own X-Forwarded-For is (PROXY_HOPS=0: no proxy).
    assert client.post("/models/reload", headers=ADMIN, environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 200
    assert client.post("/models/reload", headers={**ADMIN, "X-Forwarded-For": "10.0.0.3"}).status_code == 429


def test_behind_the_front_door_the_address_it_names_is_the_client(make_app):
    c = make_app(proxy_hops=1).test_client()
    guess = {"Authorization": "Bearer guess-number-0000042"}
    for _ in range(5):
        assert c.post("/models/reload", headers={**guess, "X-Forwarded-For": "10.0.0.9"}).status_code == 401
    assert c.post("/models/reload", headers={**ADMIN, "X-Forwarded-For": "10.0.0.9"}).status_code == 429
    assert c.post("/models/reload", headers={**ADMIN, "X-Forwarded-For": "10.0.0.3"}).status_code == 200


def test_a_missing_token_counts_and_the_block_ends_with_the_window(app, client):
    now = [1000.0]
    app.extensions[auth.EXTENSION] = FailedAttempts(5, 60, clock=lambda: now[0])
    for _ in range(5):
        assert client.post("/models/reload").status_code == 401
    assert client.post("/models/reload", headers=ADMIN).status_code == 429
    now[0] += 59.5
    r = client.post("/models/reload", headers=ADMIN)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    now[0] += 0.5
    assert client.post("/models/reload", headers=ADMIN).status_code == 200
    assert client.post("/models/reload").status_code == 401  # a new window: one failure in it


def test_admin_disabled_is_a_403_and_counts_no_failure(make_app):
    c = make_app(admin_token=None).test_client()
    assert all(c.post("/models/reload").status_code == 403 for _ in range(8))


def test_failed_attempts_remember_a_bounded_number_of_clients(monkeypatch):
    monkeypatch.setattr(FailedAttempts, "MAX_CLIENTS", 3)
    attempts = FailedAttempts(2, 60, clock=lambda: 0.0)
    for client in ["a", "a", "b", "c", "d"]:
        attempts.fail(client)
    assert attempts.retry_after("a") == 0  # the oldest was forgotten to make room
    assert attempts.fail("d") == 2 and attempts.retry_after("d") == 60


# -- bodies must be JSON -----------------------------------------------------------------------------

JSON_ROW = json.dumps({"features": SETOSA}).encode()
NOT_JSON = [
    ("post", "/predict", "text/plain", JSON_ROW),  # what a cross-site <form enctype="text/plain"> sends
    ("post", "/predict", None, JSON_ROW),
    ("post", "/predict", "application/x-www-form-urlencoded", b"features=1"),
    ("post", "/feedback", "text/plain", b'{"prediction_id": "x", "label": 1}'),
    ("post", "/feedback", "multipart/form-data; boundary=b", b"--b--"),
    ("put", "/config", "text/plain", b'{"weights": {"v1": 0, "v2": 1}}'),
    ("post", "/models/reload", "text/plain", b"reload"),
]


@pytest.mark.parametrize(("method", "path", "content_type", "body"), NOT_JSON)
def test_a_body_that_is_not_json_is_a_415_before_anything_runs(client, app, method, path, content_type, body):
    config = client.get("/config").get_json()
    served_before = served()
    r = getattr(client, method)(path, data=body, content_type=content_type, headers=ADMIN)
    assert r.status_code == 415 and set(r.get_json()) == {"error"}
    assert "Content-Type: application/json" in r.get_json()["error"]
    if path != "/models/reload":
        check_schema(r, path, method)
    assert served() == served_before and client.get("/config").get_json() == config
    service = service_of(app)
    service.prediction_log.flush()
    assert service.store.count_predictions() == 0


def test_a_chunked_body_that_is_not_json_is_a_415(client):
    r = client.post(
        "/predict",
        input_stream=io.BytesIO(JSON_ROW),
        content_type="text/plain",
        headers={"Transfer-Encoding": "chunked"},
    )
    assert r.status_code == 415


def test_json_with_a_charset_bodyless_posts_and_other_methods_pass(client):
    r = client.post("/predict", data=JSON_ROW, content_type="application/json; charset=utf-8")
    assert r.status_code == 200
    assert client.post("/models/reload", headers=ADMIN).status_code == 200  # curl -X POST: no body, no type
    assert client.get("/config", data=b"x", content_type="text/plain").status_code == 200
    assert client.delete("/config", data=b"x", content_type="text/plain").status_code == 405
    assert client.post("/nope", data=b"x", content_type="text/plain").status_code == 404


# -- ALLOWED_HOSTS -----------------------------------------------------------------------------------


def test_any_host_is_answered_without_allowed_hosts(client):
    assert client.get("/health", headers={"Host": "anything.example:8080"}).status_code == 200


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("api.example.com", 200),
        ("API.Example.com:5000", 200),
        ("api.example.com.", 200),
        ("127.0.0.1:5000", 200),
        ("[::1]:5000", 200),
        ("flask-api:5000", 200),
        ("evil.example", 400),
        ("api.example.com.evil.example", 400),
        ("evil.api.example.com", 400),
        ("127.0.0.2", 400),
        ("", 400),
    ],
)
def test_with_allowed_hosts_other_hosts_get_a_json_400(make_app, host, status):
    c = make_app(allowed_hosts="api.example.com, 127.0.0.1,[::1],flask-api").test_client()
    r = c.get("/health", headers={"Host": host})
    assert r.status_code == status and r.is_json
    if status == 400:
        error = r.get_json()["error"]
        assert "ALLOWED_HOSTS" in error and (not host or host not in error)  # the Host is not echoed


def test_a_foreign_host_changes_nothing(make_app, settings):
    c = make_app(allowed_hosts="api.example.com").test_client()
    before = served()
    r = c.post("/predict", json={"features": SETOSA}, headers={"Host": "evil.example"})
    assert r.status_code == 400 and served() == before


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [("a.example, B.example ,,", ("a.example", "b.example")), ("127.0.0.1,[::1]", ("127.0.0.1", "[::1]"))],
)
def test_allowed_hosts_setting(raw, parsed):
    assert Settings.from_env({"ALLOWED_HOSTS": raw}).allowed_hosts == parsed
    assert Settings.from_env({}).allowed_hosts is None


@pytest.mark.parametrize("raw", ["http://api.example.com", "api.example.com:5000", "a b", "*"])
def test_allowed_hosts_must_be_names(raw):
    with pytest.raises(SettingsError, match="ALLOWED_HOSTS"):
        Settings.from_env({"ALLOWED_HOSTS": raw})


# -- the model signing key ---------------------------------------------------------------------------


def test_the_signing_key_comes_from_the_variable_or_a_file_outside_the_models(tmp_path):
    key_file = tmp_path / "signing.key"
    key_file.write_text(KEY + "\n")
    from_file = Settings.from_env({"MODEL_SIGNING_KEY_FILE": str(key_file), "MODELS_DIR": str(tmp_path / "models")})
    assert from_file.signing_key == KEY.encode() and from_file.with_overrides(api_port=6000).signing_key == KEY.encode()
    assert Settings.from_env({"MODEL_SIGNING_KEY": KEY}).signing_key == KEY.encode()
    assert Settings.from_env({}).signing_key is None


def test_a_signing_key_that_cannot_protect_anything_stops_the_start(tmp_path):
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(models)
    for path, text in [(models / "sub" / "k", KEY), (tmp_path / "short", "k" * 31), (tmp_path / "ok", KEY)]:
        path.write_text(text)
    cases = [
        ({"MODEL_SIGNING_KEY": "k" * 31}, "MODEL_SIGNING_KEY=(hidden): Value error, must be at least 32"),
        ({"MODEL_SIGNING_KEY_FILE": str(models / "sub" / "k")}, "outside MODELS_DIR"),
        ({"MODEL_SIGNING_KEY_FILE": str(tmp_path / "link" / "sub" / "k")}, "outside MODELS_DIR"),
        ({"MODEL_SIGNING_KEY_FILE": str(tmp_path / "missing")}, "cannot be read"),
        ({"MODEL_SIGNING_KEY_FILE": str(tmp_path / "short")}, "at least 32"),
        ({"MODEL_SIGNING_KEY_FILE": str(tmp_path / "ok"), "MODEL_SIGNING_KEY": KEY}, "not both"),
    ]
    for env, message in cases:
        with pytest.raises(SettingsError, match=re.escape(message)) as caught:
            Settings.from_env({"MODELS_DIR": str(models), **env})
        assert KEY not in str(caught.value)


def sign_set(models_dir):
    write_signature(models_dir, (models_dir / MANIFEST_NAME).read_bytes(), KEY.encode())


def test_with_a_signing_key_a_tampered_set_is_refused_on_reload_and_the_old_one_serves(make_app, settings, tmp_path):
    sign_set(settings.models_dir)
    c = make_app(model_signing_key=KEY).test_client()
    assert c.get("/health").get_json()["status"] == "healthy"
    # Someone who can write the models directory, but has no key: v2's forest as v1, the manifest to match.
    shutil.copy(settings.models_dir / "model_v2.pkl", settings.models_dir / "model_v1.pkl")
    manifest = json.loads((settings.models_dir / MANIFEST_NAME).read_text())
    manifest["versions"]["v1"]["sha256"] = sha256_file(settings.models_dir / "model_v1.pkl")
    (settings.models_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    r = c.post("/models/reload", headers=ADMIN)
    assert r.status_code == 200 and r.get_json()["status"] == "degraded"
    assert "signature does not match" in r.get_json()["failed"]["manifest"]
    health = c.get("/health").get_json()
    assert health["status"] == "degraded" and "signature" in health["errors"]["manifest"]
    assert health["models"]["v1"]["n_estimators"] == 50  # still the signed v1
    assert c.post("/predict", json={"features": SETOSA}).status_code == 200
    assert joblib.load(settings.models_dir / "model_v1.pkl").n_estimators == 100  # the swap was on disk


def test_with_a_signing_key_an_unsigned_set_is_never_served(make_app):
    c = make_app(model_signing_key=KEY).test_client()
    r = c.get("/health")
    assert r.status_code == 503 and "not signed" in r.get_json()["errors"]["manifest"]
    assert c.post("/predict", json={"features": SETOSA}).status_code == 503


# -- /health ------------------------------------------------------------------------------------------


def test_health_names_no_absolute_path(make_app, tmp_path):
    text = make_app(models_dir=tmp_path / "empty").test_client().get("/health").get_data(as_text=True)
    assert "manifest.json not found in the models directory" in text
    assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text
