"""docker-compose.yml as `docker-compose config` resolves it (no Docker engine needed), and its healthchecks run.

The API's port is published by the nginx front door; flask-api itself is only on the compose network.
"""

from __future__ import annotations

import http.server
import os
import re
import shlex
import socket
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.cli.configs import COMPOSE_NGINX_CONFIG, compose_frontdoor
from app.settings import Settings
from tests.deploy.helpers import (
    COMPOSE_FILE,
    DOCKERFILES,
    ROOT,
    assert_ok,
    compose_config,
    compose_env,
    dockerfile_instructions,
    environment_dict,
    load_yaml,
    require_tool,
    resolved_ports,
    run,
    serve,
    volume_mounts,
)

SERVICES = {
    # service with a published port: (container name, port inside the network, variable that moves the host port)
    "frontdoor": ("mlops-frontdoor", 5000, "API_PORT"),
    "streamlit-ui": ("mlops-streamlit-ui", 8501, "UI_PORT"),
    "prometheus": ("mlops-prometheus", 9090, "PROMETHEUS_PORT"),
}
# Services only the compose network reaches.
INTERNAL = {"flask-api": ("mlops-flask-api", 5000)}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as written (for what only the source shows, such as the list form)."""
    data: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return data


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The configuration compose resolves with none of its variables set."""
    return compose_config()


def test_compose_config_is_valid_without_admin_token():
    tool = require_tool("docker-compose")
    result = run([tool, "-f", str(COMPOSE_FILE), "config", "-q"], env=compose_env())
    assert_ok(result, "docker-compose config -q (ADMIN_TOKEN unset)")
    assert "WARNING" not in result.stderr, result.stderr


def test_compose_admin_token_comes_from_environment_only():
    unset = environment_dict(compose_config()["services"]["flask-api"]["environment"])
    assert unset["ADMIN_TOKEN"] == "", "ADMIN_TOKEN must be empty (admin disabled) when unset"
    given = environment_dict(compose_config(ADMIN_TOKEN="s3cret-from-env")["services"]["flask-api"]["environment"])
    assert given["ADMIN_TOKEN"] == "s3cret-from-env"


def test_compose_services_names_and_ports(resolved):
    """Four services with fixed container names; each host port follows its variable, the inside port does not;
    the API itself publishes nothing (its port is the front door's)."""
    services = resolved["services"]
    assert set(services) == set(SERVICES) | set(INTERNAL)
    moved = compose_config(API_PORT="15000", UI_PORT="18501", PROMETHEUS_PORT="19090")["services"]
    for name, (container, port, variable) in SERVICES.items():
        assert services[name]["container_name"] == container
        assert resolved_ports(services[name]["ports"]) == [("127.0.0.1", str(port), port)], name
        assert resolved_ports(moved[name]["ports"]) == [("127.0.0.1", f"1{port}", port)], (name, variable)
    for name, (container, port) in INTERNAL.items():
        assert services[name]["container_name"] == container
        assert "ports" not in services[name] and "ports" not in moved[name], f"{name} must not be published"
        assert [str(p) for p in services[name]["expose"]] == [str(port)], name


def test_compose_publishes_every_port_on_bind_host_defaulting_to_loopback(resolved):
    """No published port may default to 0.0.0.0: the stack has no login of its own."""
    for extra, host_ip in (({}, "127.0.0.1"), ({"BIND_HOST": "0.0.0.0"}, "0.0.0.0")):
        services = compose_config(**extra)["services"] if extra else resolved["services"]
        published = [(name, port) for name, service in services.items() for port in service.get("ports", [])]
        assert {name for name, _ in published} == set(SERVICES)
        for name, port in published:
            assert resolved_ports([port])[0][0] == host_ip, (name, port, extra)


def test_compose_api_environment(compose, resolved):
    # Users edit the weights in the file, so the source keeps the one-line-per-variable list form.
    assert isinstance(compose["services"]["flask-api"]["environment"], list), "keep the list form"
    api = resolved["services"]["flask-api"]
    env = environment_dict(api["environment"])
    assert env == {
        "MODEL_V1_WEIGHT": "50",
        "MODEL_V2_WEIGHT": "50",
        "ADMIN_TOKEN": "",
        "DATABASE_URL": "sqlite:////data/mlops.db",
        "MODELS_DIR": "/app/app/models",
        "PROMETHEUS_MULTIPROC_DIR": "/tmp/prometheus-multiproc",
        "API_HOST": "0.0.0.0",
        "API_PORT": "5000",
        "API_WORKERS": "2",
        "PROXY_HOPS": "1",
    }
    workers = environment_dict(compose_config(API_WORKERS="4")["services"]["flask-api"]["environment"])
    assert workers["API_WORKERS"] == "4"
    # The environment is one the app accepts as it stands.
    settings = Settings.from_env(env)
    assert settings.weights_for(["v1", "v2"]) == {"v1": 50, "v2": 50} and not settings.admin_enabled
    # /data must be a named volume, so the SQLite database survives recreation.
    data = [source for source, target, _ in volume_mounts(api["volumes"]) if target == "/data"]
    assert data == ["mlops-data"], api["volumes"]
    assert "mlops-data" in resolved["volumes"], "the /data volume must be a named volume"


def test_compose_api_environment_names_are_read_by_the_app(resolved):
    """Every variable compose (or the image) sets for the API is one the app or gunicorn reads."""
    known = {name.upper() for name in Settings.model_fields} | {"PROMETHEUS_MULTIPROC_DIR"}
    names = list(environment_dict(resolved["services"]["flask-api"]["environment"]))
    names += [
        pair.split("=", 1)[0]
        for keyword, args in dockerfile_instructions(DOCKERFILES["api"])
        if keyword == "ENV"
        for pair in shlex.split(args)
    ]
    image_only = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK"}
    image_only |= {"HOME", "PATH"}
    unknown = [n for n in names if n not in known | image_only and not re.fullmatch(r"MODEL_[A-Z0-9_]+_WEIGHT", n)]
    assert not unknown, f"variables the API does not read: {unknown}"

    # gunicorn.conf.py turns them into its bind address and worker count.
    probe = "import runpy; c = runpy.run_path('docker/gunicorn.conf.py'); print(c['bind'], c['workers'], c['threads'])"
    env = {**os.environ, "API_HOST": "0.0.0.0", "API_PORT": "5123", "API_WORKERS": "3", "API_THREADS": "2"}
    out = run([sys.executable, "-c", probe], env=env)
    assert_ok(out, "gunicorn.conf.py")
    assert out.stdout.split() == ["0.0.0.0:5123", "3", "2"]


def test_compose_ui_and_prometheus_wiring(resolved):
    services = resolved["services"]
    ui = services["streamlit-ui"]
    assert environment_dict(ui["environment"])["API_URL"] == "http://flask-api:5000"
    assert ui["depends_on"]["flask-api"]["condition"] == "service_healthy"
    assert "flask-api" in services["prometheus"]["depends_on"]
    volumes = volume_mounts(services["prometheus"]["volumes"])
    mounts = {target: (source, read_only) for source, target, read_only in volumes}
    config_path = "/etc/prometheus/prometheus.yml"
    assert mounts[config_path] == (str(ROOT / "docker" / "prometheus.yml"), True)
    # rule_files is relative to the config file: every rule file must be mounted beside it, from a file that exists.
    for rule_file in load_yaml(ROOT / "docker" / "prometheus.yml")["rule_files"]:
        source, read_only = mounts[f"/etc/prometheus/{rule_file}"]
        assert os.path.isfile(source) and read_only, (rule_file, source)
    # The command reads the mounted config.
    assert f"--config.file={config_path}" in services["prometheus"]["command"]
    image = services["prometheus"]["image"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", image), f"pin the Prometheus image: {image}"


class _Health(http.server.BaseHTTPRequestHandler):
    """Answers GET on one path with a chosen status."""

    path_ok = "/"
    status = 200

    def log_message(self, *args):
        pass

    def do_GET(self):
        code = type(self).status if self.path == type(self).path_ok else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def health_server() -> Iterator[tuple[type[_Health], int]]:
    handler = type("Handler", (_Health,), {})
    with serve(handler) as url:
        yield handler, urlsplit(url).port


def test_compose_frontdoor(resolved):
    """nginx, pinned, runs the config rendered from the one template, unprivileged, in front of a healthy flask-api."""
    door = resolved["services"]["frontdoor"]
    # >= 1.27.3: the config's "server flask-api:5000 resolve" follows a recreated flask-api container.
    match = re.fullmatch(r"nginx:(\d+)\.(\d+)\.(\d+)-alpine", door["image"])
    assert match and tuple(map(int, match.groups())) >= (1, 27, 3), f"pin nginx >= 1.27.3: {door['image']}"
    mounts = {target: (source, read_only) for source, target, read_only in volume_mounts(door["volumes"])}
    assert mounts == {"/etc/nginx/frontdoor.conf": (str(COMPOSE_NGINX_CONFIG), True)}
    assert door["entrypoint"] == ["nginx", "-e", "stderr", "-c", "/etc/nginx/frontdoor.conf"]
    assert COMPOSE_NGINX_CONFIG.read_text(encoding="utf-8") == compose_frontdoor().render(), (
        "docker/nginx/frontdoor.compose.conf is stale: python -m app.cli.configs nginx --compose "
        "-o docker/nginx/frontdoor.compose.conf"
    )
    assert str(door["user"]).split(":")[0] not in ("", "0", "root"), door.get("user")
    assert door["read_only"] is True and door["tmpfs"] == ["/tmp"], "the config writes only under /tmp"
    assert door["depends_on"]["flask-api"]["condition"] == "service_healthy"
    assert door["healthcheck"]["test"] == ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:5000/health"]
    # The UI and Prometheus still call the API on the compose network, not through the front door.
    assert environment_dict(resolved["services"]["streamlit-ui"]["environment"])["API_URL"] == "http://flask-api:5000"


def test_compose_frontdoor_healthcheck_runs(resolved, health_server):
    """The front door's healthcheck (wget, as in the nginx image) against a stand-in: 0 when healthy, not when 503."""
    test = resolved["services"]["frontdoor"]["healthcheck"]["test"]
    handler, port = health_server
    handler.path_ok = "/health"
    command = [require_tool("wget"), *test[2:-1], test[-1].replace(":5000/", f":{port}/")]
    assert_ok(run(command, timeout=30), "frontdoor healthcheck against a healthy stand-in")
    handler.status = 503
    assert run(command, timeout=30).returncode != 0


@pytest.mark.parametrize(
    ("service", "url"),
    [("flask-api", "http://127.0.0.1:5000/health"), ("streamlit-ui", "http://127.0.0.1:8501/_stcore/health")],
)
def test_compose_healthchecks(resolved, health_server, service, url):
    """The healthcheck program, run against a stand-in on a free port: 0 when healthy, non-zero otherwise."""
    check = resolved["services"][service]["healthcheck"]
    for key in ("interval", "timeout", "retries"):
        assert key in check, f"{service} healthcheck lacks {key}"
    test = check["test"]
    assert test[:3] == ["CMD", "python", "-c"], "slim images have no curl: use python -c"
    program = test[3]
    assert url in program, program
    handler, port = health_server
    handler.path_ok = urlsplit(url).path
    local = program.replace(url, f"http://127.0.0.1:{port}{handler.path_ok}")

    healthy = run([sys.executable, "-c", local], timeout=30)
    assert_ok(healthy, f"{service} healthcheck against a healthy stand-in")
    handler.status = 503
    unhealthy = run([sys.executable, "-c", local], timeout=30)
    assert unhealthy.returncode != 0 and "503" in unhealthy.stderr, unhealthy.stderr


def test_compose_healthcheck_fails_when_nothing_listens(resolved):
    """A closed port is unhealthy too: the program must not swallow the connection error."""
    program = resolved["services"]["flask-api"]["healthcheck"]["test"][3]
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound but never listening: connections are refused
        closed = held.getsockname()[1]
        result = run([sys.executable, "-c", program.replace(":5000/", f":{closed}/")], timeout=30)
    assert result.returncode != 0 and "Connection refused" in result.stderr, result.stderr


def test_compose_builds_from_the_dockerfiles(resolved):
    services = resolved["services"]
    for service, kind in (("flask-api", "api"), ("streamlit-ui", "streamlit")):
        build = services[service]["build"]
        assert build["context"] == str(ROOT), build
        assert (ROOT / build["context"] / build["dockerfile"]) == DOCKERFILES[kind]


def test_compose_images_are_tagged_by_build(resolved):
    """The project's images carry IMAGE_TAG (default dev), never a bare or implicit latest."""
    tagged = compose_config(IMAGE_TAG="41-0123456789ab")["services"]
    for service, image in (("flask-api", "mlops-flask-api"), ("streamlit-ui", "mlops-streamlit-ui")):
        assert resolved["services"][service]["image"] == f"{image}:dev"
        assert tagged[service]["image"] == f"{image}:41-0123456789ab"
    for name, service in resolved["services"].items():
        assert ":" in service["image"] and not service["image"].endswith(":latest"), (name, service["image"])


def test_compose_weights_come_from_the_environment():
    env = environment_dict(
        compose_config(MODEL_V1_WEIGHT="90", MODEL_V2_WEIGHT="10")["services"]["flask-api"]["environment"]
    )
    assert (env["MODEL_V1_WEIGHT"], env["MODEL_V2_WEIGHT"]) == ("90", "10")


def test_compose_every_container_has_a_read_only_root(resolved):
    """State only on the named volumes, scratch space in tmpfs; the API's /tmp allows exec (compiled forests)."""
    for name, service in resolved["services"].items():
        assert service.get("read_only") is True, f"{name} must run on a read-only root file system"
        assert service.get("tmpfs"), f"{name}: give it a tmpfs where it must write"
    assert "/tmp:exec,mode=1777" in resolved["services"]["flask-api"]["tmpfs"]


def test_env_example_lists_every_variable_compose_reads():
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    read = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)(?::?-[^}]*)?\}", text))
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^#? ?([A-Z_][A-Z0-9_]*)=", example, re.M))
    assert read <= listed, f".env.example lacks {sorted(read - listed)}"
    assert listed - read == {"COMPOSE_PROJECT_NAME"}, sorted(listed - read)
    assert re.search(r"^ADMIN_TOKEN=$", example, re.M), "no secret value in the example"
    # The example is a valid .env as it stands: compose resolves with it.
    defaults = compose_config(**dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", example, re.M)))
    assert defaults["services"]["flask-api"]["image"] == "mlops-flask-api:dev"
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in ignored
