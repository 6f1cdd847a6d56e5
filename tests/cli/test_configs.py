"""The config renderer: the one nginx template filled with validated values only, and the native Prometheus config.

That nginx itself accepts the rendered configs (`nginx -t`) is checked in tests/integration/test_frontdoor.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.cli import configs
from app.cli.configs import (
    COMPOSE_NGINX_CONFIG,
    NGINX_TEMPLATE,
    ConfigError,
    FrontDoor,
    compose_frontdoor,
    main,
    render,
    render_prometheus,
)
from app.settings import REPO_DIR, Settings

# Every status nginx itself may answer, each with a JSON body (the app's own errors pass through).
NGINX_ERRORS = (400, 404, 408, 413, 414, 429, 431, 494, 500, 502, 503, 504)


def native(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "nginx",
        "--listen-port",
        "5000",
        "--upstream-port",
        "15000",
        "--run-dir",
        str(tmp_path / "run"),
        "--temp-dir",
        str(tmp_path / "temp"),
        *extra,
    ]


def rendered(tmp_path: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(native(tmp_path, *extra)) == 0
    return capsys.readouterr().out


def test_render_fills_every_placeholder_and_nothing_else():
    assert render("a {{ x }} b {{y}} $host {c}", {"x": "1", "y": "2"}) == "a 1 b 2 $host {c}"
    with pytest.raises(ConfigError, match="no value for y"):
        render("{{ x }} {{ y }}", {"x": "1"})
    with pytest.raises(ConfigError, match="no placeholder for z"):
        render("{{ x }}", {"x": "1", "z": "2"})


def test_native_config_keeps_nginx_variables_and_has_the_front_door_settings(tmp_path, capsys):
    text = rendered(tmp_path, capsys=capsys)
    assert "{{" not in text and "}}" not in text
    template_variables = set(re.findall(r"\$[a-z_]+", NGINX_TEMPLATE.read_text(encoding="utf-8")))
    assert {"$remote_addr", "$binary_remote_addr", "$http_x_request_id", "$request_id"} <= template_variables
    assert template_variables == set(re.findall(r"\$[a-z_]+", text)), "nginx's own variables survive rendering"
    for directive in (
        "daemon off;",
        "server_tokens off;",
        "client_header_timeout 5s;",
        "client_body_timeout 5s;",
        "send_timeout 5s;",
        "client_max_body_size 1048576;",
        "proxy_request_buffering on;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Request-ID $api_request_id;",
        "limit_req_status 429;",
        "listen 127.0.0.1:5000 backlog=4096;",
        "server 127.0.0.1:15000;",
        f'pid "{(tmp_path / "run" / "nginx" / "nginx.pid").resolve()}";',
        f'client_body_temp_path "{(tmp_path / "temp").resolve()}/client_body";',
    ):
        assert directive in text, directive
    assert re.search(r"keepalive \d+;", text) and re.search(r"keepalive_timeout \d+s;", text)
    assert "resolve" not in re.search(r"server 127\.0\.0\.1:15000[^;]*;", text).group(0)


def test_every_nginx_error_is_json(tmp_path, capsys):
    text = rendered(tmp_path, capsys=capsys)
    routes = dict(re.findall(r"error_page (\d+) (?:=\d+ )?(/_frontdoor/error/\d+);", text))
    assert set(map(int, routes)) == set(NGINX_ERRORS)
    bodies = dict(re.findall(r"location = (/_frontdoor/error/\d+) \{ internal; return \d+ '(.*?)\\n'; \}", text))
    for code, uri in routes.items():
        assert uri in bodies, code
        assert set(yaml.safe_load(bodies[uri])) == {"error"}, bodies[uri]  # JSON is YAML
    assert "types { }" in text and "default_type application/json;" in text
    # The 413 says what the app's own 413 says.
    assert bodies["/_frontdoor/error/413"] == '{"error": "request body is larger than 1048576 bytes"}'


def test_body_limit_follows_max_body_bytes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    text = rendered(tmp_path, capsys=capsys)
    assert "client_max_body_size 2048;" in text
    assert '{"error": "request body is larger than 2048 bytes"}' in text


def test_rate_limits_only_writes_and_not_predict(tmp_path, capsys):
    text = rendered(tmp_path, "--write-rate", "3", "--write-burst", "7", capsys=capsys)
    assert "rate=3r/s" in text and "burst=7 nodelay" in text
    key_map = re.search(r"map \$request_method \$api_write_key \{(.*?)\}", text, re.S).group(1)
    assert re.findall(r'(\w+) "";', key_map) == ["GET", "HEAD", "OPTIONS"]
    assert "default $binary_remote_addr;" in key_map
    predict = re.search(r"location = /predict \{(.*?)\}", text, re.S).group(1)
    assert "limit_req" not in predict and "proxy_pass http://api;" in predict
    root = re.search(r"location / \{(.*?)\}", text, re.S).group(1)
    assert "limit_req zone=api_writes" in root


def test_workers_run_as_nobody_when_started_as_root(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(configs.os, "geteuid", lambda: 0)
    assert re.search(r"^user nobody \w+;$", rendered(tmp_path, capsys=capsys), re.M)
    monkeypatch.setattr(configs.os, "geteuid", lambda: 1000)
    assert not re.search(r"^user ", rendered(tmp_path, capsys=capsys), re.M)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--listen-port", "5000; include /etc/shadow"], "API_PORT"),
        (["--listen-port", "$(touch x)"], "API_PORT"),
        (["--listen-port", "0"], "API_PORT"),
        (["--listen-port", "65536"], "API_PORT"),
        (["--upstream-port", "1'/;e id #"], "API_UPSTREAM_PORT"),
        (["--upstream-port", "5000"], "API_UPSTREAM_PORT"),
        (["--listen-host", "127.0.0.1:80; listen 0.0.0.0"], "LISTEN_HOST"),
        (["--listen-host", "$hostname"], "LISTEN_HOST"),
        (["--run-dir", "/tmp/x;\nuser root"], "PID_FILE"),
        (["--run-dir", "/tmp/$host"], "PID_FILE"),
        (["--temp-dir", '/tmp/a" b'], "TEMP_DIR"),
        (["--temp-dir", "/tmp/{x}"], "TEMP_DIR"),
        (["--client-timeout", "5s; allow all"], "CLIENT_TIMEOUT"),
        (["--client-timeout", "0"], "CLIENT_TIMEOUT"),
        (["--write-rate", "1r/m"], "WRITE_RATE"),
        (["--write-burst", "-1"], "WRITE_BURST"),
        (["--connections-per-client", "x"], "CONNECTIONS_PER_CLIENT"),
    ],
)
def test_hostile_or_bad_values_are_refused_and_nothing_is_written(tmp_path, capsys, args, named):
    output = tmp_path / "frontdoor.conf"
    assert main([*native(tmp_path), *args, "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert named in err, err
    assert not output.exists()
    assert not list(tmp_path.glob(".*partial"))


def test_a_bad_setting_in_the_environment_stops_the_render(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", "lots")
    assert main(native(tmp_path)) == 2
    assert "MAX_BODY_BYTES" in capsys.readouterr().err


def test_ipv6_addresses_are_bracketed(tmp_path, capsys):
    assert "listen [::1]:5000 backlog=4096;" in rendered(tmp_path, "--listen-host", "::1", capsys=capsys)


def test_compose_config_is_the_template_for_the_compose_network():
    text = compose_frontdoor().render()
    assert "listen 0.0.0.0:5000" in text
    assert "server flask-api:5000 resolve;" in text and "zone api 64k;" in text
    assert "resolver 127.0.0.11 valid=5s ipv6=off;" in text
    assert not re.search(r"^user ", text, re.M), "the container's nginx is unprivileged already"
    assert re.findall(r'_temp_path "([^"]+)";', text) == [f"/tmp/{k}" for k in ("client_body", "proxy")] + [
        f"/tmp/{k}" for k in ("fastcgi", "uwsgi", "scgi")
    ]
    assert f"client_max_body_size {Settings.from_env({}).max_body_bytes};" in text
    assert COMPOSE_NGINX_CONFIG.read_text(encoding="utf-8") == text


def test_front_door_model_refuses_what_the_cli_cannot_pass():
    base = {"pid_file": "/tmp/p", "error_log": "stderr", "access_log": "/tmp/a", "temp_dir": "/tmp"}
    with pytest.raises(ValueError, match="user group"):
        FrontDoor(**base, user="root; daemon on")
    with pytest.raises(ConfigError, match="resolver"):
        FrontDoor(**base, resolve_upstream=True).render()


def test_prometheus_config_replaces_exactly_the_two_targets():
    text = render_prometheus("127.0.0.1:15000", "[::1]:9090")
    config = yaml.safe_load(text)
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {"flask-api": ["127.0.0.1:15000"], "prometheus": ["[::1]:9090"]}
    with pytest.raises(ConfigError, match="exactly one line"):
        render_prometheus("a:1", "b:2", template="- targets: ['localhost:9090']\n")


@pytest.mark.parametrize(
    "target",
    ["127.0.0.1:1'/;1e touch x #", "127.0.0.1:$(id)", "127.0.0.1", "host name:80", "127.0.0.1:99999", "'a':1"],
)
def test_prometheus_refuses_a_hostile_target(tmp_path, capsys, target):
    output = tmp_path / "prometheus.yml"
    code = main(["prometheus", "--api-target", target, "--prometheus-target", "127.0.0.1:9090", "-o", str(output)])
    assert code == 2
    assert "API target" in capsys.readouterr().err
    assert not output.exists()


def test_module_runs_as_a_script(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "app.cli.configs", *native(tmp_path)],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "server 127.0.0.1:15000;" in out.stdout


def balancer(tmp_path: Path, *replicas: str) -> list[str]:
    args = native(tmp_path)
    at = args.index("--upstream-port")
    del args[at : at + 2]
    return [*args, *(arg for replica in replicas for arg in ("--replica", replica))]


def test_load_balancer_lists_every_replica_with_passive_health_checks(tmp_path, capsys):
    assert main(balancer(tmp_path, "127.0.0.2:5000", "10.0.0.7:5001", "[::1]:5002")) == 0
    text = capsys.readouterr().out
    upstream = re.search(r"upstream api \{(.*?)\}", text, re.S)
    assert upstream is not None
    servers = re.findall(r"^\s*server (\S+) (.*);$", upstream.group(1), re.M)
    health = "max_fails=2 fail_timeout=5s"
    assert servers == [("127.0.0.2:5000", health), ("10.0.0.7:5001", health), ("[::1]:5002", health)]
    # a replica that cannot be reached is skipped; only /predict is asked again after it died mid-request
    assert text.count("proxy_next_upstream error timeout;") == 1
    assert re.search(r"location = /predict \{[^}]*proxy_next_upstream error timeout non_idempotent;", text)
    assert "http_503" not in text  # the app's 503 (a store outage, on every replica alike) takes none out


@pytest.mark.parametrize(
    ("replicas", "message"),
    [
        (("127.0.0.2:5000", "127.0.0.2:5000"), "listed twice"),
        (("127.0.0.2:5000;",), "replica"),
        (("evil host:5000",), "replica"),
        (("127.0.0.2",), "replica"),
    ],
)
def test_load_balancer_refuses_bad_replicas(tmp_path, capsys, replicas, message):
    output = tmp_path / "lb.conf"
    assert main([*balancer(tmp_path, *replicas), "-o", str(output)]) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_replicas_and_an_upstream_port_are_one_or_the_other(tmp_path, capsys):
    assert main([*native(tmp_path), "--replica", "127.0.0.2:5000"]) == 2
    assert "one or the other" in capsys.readouterr().err
    assert main(balancer(tmp_path)) == 2
    assert "--upstream-port" in capsys.readouterr().err


def test_prometheus_discovers_replicas_from_a_targets_file(tmp_path, capsys):
    targets_file = tmp_path / "targets.json"
    assert main(["targets", "127.0.0.2:5000", "127.0.0.3:5000", "-o", str(targets_file)]) == 0
    assert json.loads(targets_file.read_text()) == [{"targets": ["127.0.0.2:5000", "127.0.0.3:5000"], "labels": {}}]
    assert main(["prometheus", "--api-targets-file", str(targets_file), "--prometheus-target", "127.0.0.1:9090"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "static_configs" not in jobs["flask-api"]
    assert jobs["flask-api"]["file_sd_configs"] == [{"files": [str(targets_file.resolve())], "refresh_interval": "30s"}]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:9090"]}]
    assert main(["targets", "127.0.0.2:5000", "$(id):1"]) == 2
    assert "replica" in capsys.readouterr().err
