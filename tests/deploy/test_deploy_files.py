"""Static checks of the deployment files (no docker engine, no cloud).

Covers docker-compose.yml, the Dockerfiles and .dockerignore, the Prometheus
config, alert rules and their promtool unit tests, the Jenkinsfile, the
Terraform module, and the shell scripts (shellcheck; get_ip.sh and
test_everything.sh are also run, against stand-ins on 127.0.0.1 only).

The external tools (docker-compose, promtool, shellcheck) must be installed:
a missing tool fails the test with a message, it is never skipped.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import http.server
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import hcl2
import pytest

from app.settings import REPO_DIR
import yaml
from hcl2 import SerializationOptions
from prometheus_client.parser import text_string_to_metric_families

ROOT = REPO_DIR
DOCKER = ROOT / "docker"
TERRAFORM = ROOT / "terraform"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = DOCKER / "prometheus.yml"
ALERT_RULES = DOCKER / "alert_rules.yml"
ALERT_RULES_TEST = DOCKER / "alert_rules_test.yml"
DOCKERFILES = {
    "api": DOCKER / "Dockerfile.api",
    "streamlit": DOCKER / "Dockerfile.streamlit",
}
API_ENTRYPOINT = DOCKER / "api-entrypoint.sh"

# The README's test command; the Jenkinsfile must run the same thing.
README_TEST_COMMAND = ".venv/bin/python -m pytest"

# The exact target lines the native runner rewrites to 127.0.0.1:<port>.
API_TARGET_LINE = "- targets: ['flask-api:5000']"
PROMETHEUS_TARGET_LINE = "- targets: ['localhost:9090']"

ALERTS = (
    "ModelDriftDetected",
    "HighPredictionErrorRate",
    "HighPredictionLatencyP95",
    "PredictionApiDown",
    "ABSplitMismatch",
)

# Environment variables that docker-compose.yml interpolates; removed so the
# checks see the file's own defaults whatever the caller's shell exports.
COMPOSE_INTERPOLATED = ("ADMIN_TOKEN", "API_PORT", "UI_PORT", "PROMETHEUS_PORT", "API_WORKERS", "BIND_HOST")


# --------------------------------------------------------------------------
# helpers


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"required tool {name!r} is not on PATH; install it "
            f"(Debian: apt-get install {'prometheus' if name == 'promtool' else name})",
            pytrace=False,
        )
    return path


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: int = 120):
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode == 0, (
        f"{what} failed (exit {result.returncode}):\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def compose_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_INTERPOLATED}
    env.update(extra)
    return env


def load_yaml(path: Path):
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def shell_scripts() -> list[Path]:
    """Every *.sh in the repository root, docker/ and terraform/ (not .venv)."""
    found: set[Path] = set()
    for folder in (ROOT, DOCKER, TERRAFORM):
        found.update(p for p in folder.glob("*.sh") if p.is_file())
    return sorted(p for p in found if ".venv" not in p.parts)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = path.read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    pairs = []
    for entry in logical:
        keyword, _, args = entry.partition(" ")
        pairs.append((keyword.upper(), args.strip()))
    return pairs


def copy_sources(args: str) -> list[str]:
    words = [w for w in shlex.split(args) if not w.startswith("--")]
    return words[:-1]


def hcl(path: Path) -> dict:
    options = SerializationOptions(with_comments=False, strip_string_quotes=True, explicit_blocks=False)
    return hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=options)


def blocks(parsed: dict, kind: str) -> dict:
    """Merge python-hcl2's list of one-key dicts into {name: body}."""
    merged: dict = {}
    for entry in parsed.get(kind, []):
        merged.update(entry)
    return merged


def single(value):
    """A nested block comes back as a list of one dict."""
    if isinstance(value, list):
        assert len(value) == 1, value
        return value[0]
    return value


def terraform_variables() -> dict:
    return blocks(hcl(TERRAFORM / "variables.tf"), "variable")


def terraform_resources() -> dict:
    resources: dict = {}
    for entry in hcl(TERRAFORM / "main.tf").get("resource", []):
        for rtype, named in entry.items():
            resources.setdefault(rtype, {}).update(named)
    return resources


# --------------------------------------------------------------------------
# docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE_FILE)


def test_compose_config_is_valid_without_admin_token():
    tool = require_tool("docker-compose")
    result = run([tool, "-f", str(COMPOSE_FILE), "config", "-q"], env=compose_env())
    assert_ok(result, "docker-compose config -q (ADMIN_TOKEN unset)")
    assert "WARNING" not in result.stderr, result.stderr


def test_compose_admin_token_comes_from_environment_only():
    tool = require_tool("docker-compose")
    unset = run([tool, "-f", str(COMPOSE_FILE), "config"], env=compose_env())
    assert_ok(unset, "docker-compose config")
    env = yaml.safe_load(unset.stdout)["services"]["flask-api"]["environment"]
    assert env["ADMIN_TOKEN"] == "", "ADMIN_TOKEN must be empty (admin disabled) when unset"

    given = run([tool, "-f", str(COMPOSE_FILE), "config"], env=compose_env(ADMIN_TOKEN="s3cret-from-env"))
    assert_ok(given, "docker-compose config with ADMIN_TOKEN")
    env = yaml.safe_load(given.stdout)["services"]["flask-api"]["environment"]
    assert env["ADMIN_TOKEN"] == "s3cret-from-env"


def test_compose_services_names_and_ports(compose):
    services = compose["services"]
    expected = {
        "flask-api": ("mlops-flask-api", 5000),
        "streamlit-ui": ("mlops-streamlit-ui", 8501),
        "prometheus": ("mlops-prometheus", 9090),
    }
    assert set(services) == set(expected)
    for name, (container, port) in expected.items():
        service = services[name]
        assert service["container_name"] == container
        published = [str(p) for p in service["ports"]]
        assert published == [f"${{BIND_HOST:-127.0.0.1}}:${{{_port_var(name)}:-{port}}}:{port}"], (name, published)


def test_compose_publishes_every_port_on_bind_host_defaulting_to_loopback(compose):
    """No published port may default to 0.0.0.0: the stack has no login of its own."""
    for name, service in compose["services"].items():
        for entry in service.get("ports", []):
            assert isinstance(entry, str), f"{name}: use the short 'host_ip:port:port' form ({entry!r})"
            assert entry.startswith("${BIND_HOST:-127.0.0.1}:"), f"{name} publishes {entry!r} beyond BIND_HOST"

    tool = require_tool("docker-compose")
    expected = {"flask-api": ("5000", 5000), "streamlit-ui": ("8501", 8501), "prometheus": ("9090", 9090)}
    for extra, host_ip in (({}, "127.0.0.1"), ({"BIND_HOST": "0.0.0.0", "API_PORT": "6000"}, "0.0.0.0")):
        result = run([tool, "-f", str(COMPOSE_FILE), "config"], env=compose_env(**extra))
        assert_ok(result, f"docker-compose config {extra}")
        services = yaml.safe_load(result.stdout)["services"]
        for name, (host_port, target) in expected.items():
            if name == "flask-api" and "API_PORT" in extra:
                host_port = extra["API_PORT"]
            assert _resolved_ports(services[name]["ports"]) == [(host_ip, host_port, target)], (name, extra)


def _resolved_ports(ports: list) -> list[tuple[str, str, int]]:
    """(host_ip, published, target) from `docker-compose config`, v1 (strings) or v2 (mappings)."""
    resolved = []
    for entry in ports:
        if isinstance(entry, dict):
            resolved.append((entry.get("host_ip", ""), str(entry["published"]), int(entry["target"])))
        else:
            spec = str(entry).split("/", 1)[0]
            host_ip, published, target = spec.rsplit(":", 2) if spec.count(":") >= 2 else ("", *spec.split(":"))
            resolved.append((host_ip, published, int(target)))
    return resolved


def _port_var(service: str) -> str:
    return {"flask-api": "API_PORT", "streamlit-ui": "UI_PORT", "prometheus": "PROMETHEUS_PORT"}[service]


def test_compose_api_environment(compose):
    env = compose["services"]["flask-api"]["environment"]
    assert isinstance(env, list), "flask-api environment must be the list form (users edit the weights)"
    for entry in (
        "MODEL_V1_WEIGHT=50",
        "MODEL_V2_WEIGHT=50",
        "ADMIN_TOKEN=${ADMIN_TOKEN:-}",
        "DATABASE_URL=sqlite:////data/mlops.db",
        "MODELS_DIR=/app/app/models",
        "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc",
        "API_HOST=0.0.0.0",
        "API_PORT=5000",
    ):
        assert entry in env, f"flask-api environment lacks {entry!r}"
    assert any(re.fullmatch(r"API_WORKERS=(\$\{API_WORKERS:-2\}|2)", e) for e in env), env
    # /data must be a named volume, so the SQLite database survives recreation.
    volumes = compose["services"]["flask-api"]["volumes"]
    data = [v for v in volumes if str(v).split(":")[1:2] == ["/data"]]
    assert data, volumes
    assert str(data[0]).split(":")[0] in compose.get("volumes", {}), "the /data volume must be a named volume"


def test_compose_api_environment_names_are_read_by_the_app(compose):
    """Every variable compose (or the image) sets for the API is one the app or gunicorn reads."""
    from app.settings import Settings

    known = {name.upper() for name in Settings.model_fields} | {"PROMETHEUS_MULTIPROC_DIR"}
    names = [entry.split("=", 1)[0] for entry in compose["services"]["flask-api"]["environment"]]
    names += [
        pair.split("=", 1)[0]
        for keyword, args in dockerfile_instructions(DOCKERFILES["api"]) if keyword == "ENV"
        for pair in shlex.split(args)
    ]
    image_only = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK", "HOME"}
    unknown = [n for n in names if n not in known | image_only and not re.fullmatch(r"MODEL_[A-Z0-9_]+_WEIGHT", n)]
    assert not unknown, f"variables the API does not read: {unknown}"

    # gunicorn.conf.py turns them into its bind address and worker count.
    probe = (
        "import runpy; c = runpy.run_path('docker/gunicorn.conf.py'); "
        "print(c['bind'], c['workers'], c['threads'])"
    )
    env = {**os.environ, "API_HOST": "0.0.0.0", "API_PORT": "5123", "API_WORKERS": "3", "API_THREADS": "2"}
    out = run([sys.executable, "-c", probe], env=env)
    assert_ok(out, "gunicorn.conf.py")
    assert out.stdout.split() == ["0.0.0.0:5123", "3", "2"]


def test_compose_ui_and_prometheus_wiring(compose):
    services = compose["services"]
    ui = services["streamlit-ui"]
    assert "API_URL=http://flask-api:5000" in ui["environment"]
    assert ui["depends_on"]["flask-api"]["condition"] == "service_healthy"
    prom_depends = services["prometheus"]["depends_on"]
    assert "flask-api" in prom_depends
    mounts = " ".join(services["prometheus"]["volumes"])
    assert "./docker/prometheus.yml:/etc/prometheus/prometheus.yml" in mounts
    # rule_files is relative to the config file, so the rules sit beside it.
    assert "./docker/alert_rules.yml:/etc/prometheus/alert_rules.yml" in mounts
    image = services["prometheus"]["image"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", image), f"pin the Prometheus image: {image}"


@pytest.mark.parametrize(
    "service, path",
    [("flask-api", "http://127.0.0.1:5000/health"), ("streamlit-ui", "http://127.0.0.1:8501/_stcore/health")],
)
def test_compose_healthchecks(compose, service, path):
    check = compose["services"][service]["healthcheck"]
    test = check["test"]
    assert test[:3] == ["CMD", "python", "-c"], "slim images have no curl: use python -c"
    assert "urllib.request" in test[3] and path in test[3], test
    for key in ("interval", "timeout", "retries"):
        assert key in check, f"{service} healthcheck lacks {key}"
    # The healthcheck must actually be a Python program.
    compile(test[3], f"{service}-healthcheck", "exec")


def test_compose_builds_from_the_dockerfiles(compose):
    services = compose["services"]
    assert services["flask-api"]["build"] == {"context": ".", "dockerfile": "docker/Dockerfile.api"}
    assert services["streamlit-ui"]["build"] == {"context": ".", "dockerfile": "docker/Dockerfile.streamlit"}


# --------------------------------------------------------------------------
# Dockerfiles and .dockerignore


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_base_image_pinned(kind):
    instructions = dockerfile_instructions(DOCKERFILES[kind])
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms == ["python:3.11-slim"], froms


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_runs_as_non_root(kind):
    instructions = dockerfile_instructions(DOCKERFILES[kind])
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "no USER instruction: the container would run as root"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    run_lines = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "--uid 10001" in run_lines, "create the app user with the fixed uid 10001"
    # After the last USER only metadata and the start command: nothing else runs as root.
    last_user = max(i for i, (k, _) in enumerate(instructions) if k == "USER")
    after = {k for k, _ in instructions[last_user + 1:]}
    assert after <= {"EXPOSE", "CMD", "ENTRYPOINT", "HEALTHCHECK", "LABEL", "STOPSIGNAL"}, after


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_copies_requirements_before_app(kind):
    instructions = dockerfile_instructions(DOCKERFILES[kind])
    copies = [(i, copy_sources(args)) for i, (k, args) in enumerate(instructions) if k in ("COPY", "ADD")]
    req = [i for i, srcs in copies if "requirements.txt" in srcs]
    app = [i for i, srcs in copies if any(s.rstrip("/") in ("app", ".") for s in srcs)]
    pip = [i for i, (k, args) in enumerate(instructions) if k == "RUN" and "pip install" in args]
    assert req and app and pip, (req, app, pip)
    assert req[0] < pip[0] < app[0], "COPY requirements.txt, RUN pip install, then COPY app/ (layer caching)"


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_has_no_secrets(kind):
    text = DOCKERFILES[kind].read_text(encoding="utf-8")
    assert not re.search(r"ADMIN_TOKEN\s*[=\s]\s*\S", text), "no ADMIN_TOKEN value in an image"
    for keyword, args in dockerfile_instructions(DOCKERFILES[kind]):
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"(TOKEN|SECRET|PASSWORD|API_KEY)\w*\s*=", args, re.I), args


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_copy_sources_exist_and_are_not_dockerignored(kind):
    ignored = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    for keyword, args in dockerfile_instructions(DOCKERFILES[kind]):
        if keyword not in ("COPY", "ADD"):
            continue
        for src in copy_sources(args):
            path = src.rstrip("/")
            assert (ROOT / path).exists(), f"{DOCKERFILES[kind].name}: COPY source {src} does not exist"
            parts = Path(path).parts
            prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
            for pattern in ignored:
                hit = [p for p in prefixes if fnmatch.fnmatchcase(p, pattern)]
                assert not hit, f"COPY {src} is excluded by .dockerignore pattern {pattern!r}"


def test_dockerignore_keeps_local_state_out():
    patterns = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".git", ".venv", "app/models", ".env", "*.db"):
        assert needed in patterns, f".dockerignore should exclude {needed}"


def test_api_dockerfile_trains_and_starts_through_the_entrypoint():
    instructions = dockerfile_instructions(DOCKERFILES["api"])
    runs = [args for k, args in instructions if k == "RUN"]
    assert any("python -m app.train_model" in r for r in runs), "the API image trains its models at build time"
    copies = [copy_sources(args) for k, args in instructions if k == "COPY"]
    assert any("docker/gunicorn.conf.py" in c for c in copies)
    assert ("EXPOSE", "5000") in instructions
    envs = " ".join(args for k, args in instructions if k == "ENV")
    for needed in ("API_HOST=0.0.0.0", "API_PORT=5000", "MODELS_DIR=/app/app/models",
                   "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc"):
        assert needed in envs, needed
    cmd = [args for k, args in instructions if k == "CMD"][-1]
    assert json.loads(cmd) == ["bash", "/app/docker/api-entrypoint.sh"]


def test_api_entrypoint_wipes_multiproc_dir_then_execs_gunicorn():
    text = API_ENTRYPOINT.read_text(encoding="utf-8")
    wipe = 'rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"'
    start = "exec gunicorn -c docker/gunicorn.conf.py 'app.flask_app:create_app()'"
    assert wipe in text and start in text
    assert text.index(wipe) < text.index(start)
    # An unset variable must stop the script before rm -rf runs on "".
    assert "${PROMETHEUS_MULTIPROC_DIR:?" in text


def test_api_entrypoint_behaviour(tmp_path):
    """Run the entrypoint with a stub gunicorn: the old metric files are gone."""
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    (multiproc / "counter_123.db").write_text("stale", encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gunicorn = bin_dir / "gunicorn"
    gunicorn.write_text(
        '#!/usr/bin/env bash\nprintf "%s\\n" "$PWD" "$@"\nls -A "$PROMETHEUS_MULTIPROC_DIR"\n',
        encoding="utf-8",
    )
    gunicorn.chmod(0o755)
    # The script cds to /app (the image's WORKDIR); run a copy that stays here.
    script = tmp_path / "entrypoint.sh"
    script.write_text(API_ENTRYPOINT.read_text(encoding="utf-8").replace("cd /app", f"cd {tmp_path}"))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    result = run(["bash", str(script)], env=env)
    assert_ok(result, "entrypoint")
    assert result.stdout.splitlines() == [str(tmp_path), "-c", "docker/gunicorn.conf.py", "app.flask_app:create_app()"]
    assert multiproc.is_dir() and not any(multiproc.iterdir())

    env.pop("PROMETHEUS_MULTIPROC_DIR")
    result = run(["bash", str(script)], env=env)
    assert result.returncode != 0 and "PROMETHEUS_MULTIPROC_DIR" in result.stderr


def test_streamlit_dockerfile_command():
    instructions = dockerfile_instructions(DOCKERFILES["streamlit"])
    assert ("EXPOSE", "8501") in instructions
    cmd = json.loads([args for k, args in instructions if k == "CMD"][-1])
    assert cmd == [
        "streamlit", "run", "app/streamlit_app.py",
        "--server.port", "8501",
        "--server.address", "0.0.0.0",
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
    ]


# --------------------------------------------------------------------------
# Prometheus


def test_promtool_check_config():
    tool = require_tool("promtool")
    assert_ok(run([tool, "check", "config", str(PROMETHEUS_CONFIG)]), "promtool check config")


def test_promtool_check_rules():
    tool = require_tool("promtool")
    result = run([tool, "check", "rules", str(ALERT_RULES)])
    assert_ok(result, "promtool check rules")
    assert f"{len(ALERTS)} rules found" in result.stdout, result.stdout


def test_promtool_unit_tests():
    tool = require_tool("promtool")
    assert_ok(run([tool, "test", "rules", str(ALERT_RULES_TEST)]), "promtool test rules")


def test_prometheus_scrape_config():
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["alert_rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"flask-api", "prometheus"}
    api = jobs["flask-api"]
    assert api["scrape_interval"] == "5s"
    assert api.get("metrics_path", "/metrics") == "/metrics"
    assert api["static_configs"] == [{"targets": ["flask-api:5000"]}]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["localhost:9090"]}]


def test_prometheus_target_lines_are_rewritable(tmp_path):
    """Each target sits alone on a line, exactly as the native runner expects,
    and the rewritten copy is still a valid config."""
    lines = [line.strip() for line in PROMETHEUS_CONFIG.read_text(encoding="utf-8").splitlines()]
    assert lines.count(API_TARGET_LINE) == 1, f"expected one line {API_TARGET_LINE!r}"
    assert lines.count(PROMETHEUS_TARGET_LINE) == 1, f"expected one line {PROMETHEUS_TARGET_LINE!r}"

    tool = require_tool("promtool")
    native = (
        PROMETHEUS_CONFIG.read_text(encoding="utf-8")
        .replace("'flask-api:5000'", "'127.0.0.1:15000'")
        .replace("'localhost:9090'", "'127.0.0.1:19090'")
    )
    (tmp_path / "prometheus.yml").write_text(native, encoding="utf-8")
    shutil.copy(ALERT_RULES, tmp_path / "alert_rules.yml")
    assert_ok(run([tool, "check", "config", str(tmp_path / "prometheus.yml")]), "promtool check config (rewritten)")
    config = load_yaml(tmp_path / "prometheus.yml")
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    # Job names survive the rewrite: PredictionApiDown selects job="flask-api".
    assert targets == {"flask-api": ["127.0.0.1:15000"], "prometheus": ["127.0.0.1:19090"]}


@pytest.fixture(scope="module")
def alert_rules() -> dict:
    groups = load_yaml(ALERT_RULES)["groups"]
    assert [g["name"] for g in groups] == ["mlops"]
    return {rule["alert"]: rule for rule in groups[0]["rules"]}


def test_alert_rules_definitions(alert_rules):
    assert tuple(alert_rules) == ALERTS
    expected = {
        "ModelDriftDetected": ("5m", "warning", ["model_drift_detected", "== 1"]),
        "HighPredictionErrorRate": ("5m", "warning",
                                    ["prediction_errors_total", "prediction_requests_total", "> 0.05", "> 0"]),
        "HighPredictionLatencyP95": ("5m", "warning",
                                     ["histogram_quantile(0.95", "prediction_latency_seconds_bucket[5m]", "> 0.1"]),
        "PredictionApiDown": ("1m", "critical", ['up{job="flask-api"} == 0']),
        "ABSplitMismatch": ("15m", "warning",
                            ["model_version_requests_total[30m]", "model_traffic_weight", "> 0.1", ">= 100"]),
    }
    for name, (duration, severity, fragments) in expected.items():
        rule = alert_rules[name]
        assert rule["for"] == duration, name
        assert rule["labels"]["severity"] == severity, name
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), name
        for fragment in fragments:
            assert fragment in rule["expr"], f"{name}: expr lacks {fragment!r}"


def test_alert_rules_use_metrics_the_app_exports(alert_rules, client):
    """Each metric an alert reads is in what a freshly started API's /metrics answers."""
    client.post("/predict", json={"features": [5.1, 3.5, 1.4, 0.2]})
    client.post("/predict", json={"features": "bad"})
    text = client.get("/metrics").get_data(as_text=True)
    exported = {s.name for family in text_string_to_metric_families(text) for s in family.samples} | {"up"}
    promql_words = {"sum", "by", "rate", "increase", "abs", "and", "on", "group_left", "max", "without",
                    "histogram_quantile", "avg_over_time", "le", "version", "job", "pid"}
    for name, rule in alert_rules.items():
        expr = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', " ", rule["expr"])
        used = {w for w in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", expr) if w not in promql_words}
        assert used, name
        assert used <= exported, f"{name} reads metrics the API does not export: {used - exported}"


def test_alert_rules_each_have_firing_and_quiet_unit_tests():
    tests = load_yaml(ALERT_RULES_TEST)
    assert tests["rule_files"] == ["alert_rules.yml"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing >= set(ALERTS), f"no firing test for {set(ALERTS) - firing}"
    assert quiet >= set(ALERTS), f"no non-firing test for {set(ALERTS) - quiet}"


# --------------------------------------------------------------------------
# Terraform


@pytest.mark.parametrize("name", ["main.tf", "variables.tf", "outputs.tf"])
def test_terraform_files_parse(name):
    parsed = hcl(TERRAFORM / name)
    assert parsed, f"{name} parsed to nothing"


def test_terraform_variables():
    variables = terraform_variables()
    assert variables["region"]["default"] == "us-east-1"
    assert variables["instance_type"]["default"] == "t3.medium"
    assert "key_name" in variables
    assert "repo_url" in variables and "default" not in variables["repo_url"]
    for name in ("allowed_cidr", "ssh_cidr"):
        assert "default" not in variables[name], f"{name} must have no default: the user sets their own CIDR"
    assert "0.0.0.0/0" in single(variables["ssh_cidr"]["validation"])["condition"], "ssh_cidr refuses 0.0.0.0/0"


def test_terraform_security_group_ingress():
    sg = single(list(terraform_resources()["aws_security_group"].values()))
    ingress = sg["ingress"]
    by_port = {rule["from_port"]: rule for rule in ingress}
    assert set(by_port) == {22, 5000, 8501, 9090}
    for port, rule in by_port.items():
        assert rule["to_port"] == port and rule["protocol"] == "tcp"
        assert "0.0.0.0/0" not in rule["cidr_blocks"], f"port {port} open to the world"
        expected = "${var.ssh_cidr}" if port == 22 else "${var.allowed_cidr}"
        assert rule["cidr_blocks"] == [expected], (port, rule["cidr_blocks"])
    egress = single(sg["egress"])
    assert egress["protocol"] == "-1" and egress["cidr_blocks"] == ["0.0.0.0/0"]
    # Nothing else in the module may open ingress to 0.0.0.0/0 either.
    main_text = (TERRAFORM / "main.tf").read_text(encoding="utf-8")
    assert main_text.count("0.0.0.0/0") == 1, "0.0.0.0/0 appears only in the egress rule"


def test_terraform_instance_hardening():
    resources = terraform_resources()
    instance = single(list(resources["aws_instance"].values()))
    assert single(instance["metadata_options"])["http_tokens"] == "required", "IMDSv2 must be required"
    root = single(instance["root_block_device"])
    size = root["volume_size"]
    if isinstance(size, str) and size.startswith("${var."):
        size = terraform_variables()[size[len("${var."):-1]]["default"]
    assert size == 20
    assert root["volume_type"] == "gp3" and root["encrypted"] is True
    assert "templatefile(" in instance["user_data"] and "user_data.sh" in instance["user_data"]
    ami = blocks(hcl(TERRAFORM / "main.tf"), "data")["aws_ami"]
    ami_body = single(list(ami.values()))
    names = [f["values"] for f in ami_body["filter"] if f["name"] == "name"]
    assert names and names[0][0].startswith("al2023-ami-"), names
    assert ami_body["most_recent"] is True


def test_terraform_outputs():
    outputs = blocks(hcl(TERRAFORM / "outputs.tf"), "output")
    assert {"public_ip", "api_url", "streamlit_url", "prometheus_url"} <= set(outputs)
    for name, port in (("api_url", 5000), ("streamlit_url", 8501), ("prometheus_url", 9090)):
        assert outputs[name]["value"].endswith(f":{port}"), outputs[name]


def test_terraform_user_data_template():
    text = (TERRAFORM / "user_data.sh").read_text(encoding="utf-8")
    main_text = (TERRAFORM / "main.tf").read_text(encoding="utf-8")
    # Every ${...} in the template is a variable templatefile() passes in;
    # a shell "${VAR}" there would be swallowed by Terraform.
    passed = set(re.findall(r"^\s*(\w+)\s*=\s*var\.\w+\s*$", main_text.split("templatefile(", 1)[1].split("})", 1)[0], re.M))
    used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", text))
    assert used == passed == {"repo_url", "repo_branch"}, (used, passed)
    assert "%{" not in text, "no template directives in user_data.sh"
    assert "dnf install -y docker git" in text
    assert "RUN_MODE=docker" in text and "./run_demo.sh" in text
    assert "$REPO_URL" in text
    # Compose publishes on 127.0.0.1 unless BIND_HOST says otherwise; the instance is reached from
    # allowed_cidr through the security group, so the stack must be started with BIND_HOST=0.0.0.0.
    starts = [line.strip() for line in text.splitlines()
              if "./run_demo.sh" in line and not line.strip().startswith(("#", "log "))]
    assert starts == ["RUN_MODE=docker BIND_HOST=0.0.0.0 bash ./run_demo.sh"], starts


# --------------------------------------------------------------------------
# Jenkinsfile


def test_jenkinsfile_stages_and_commands():
    text = (ROOT / "Jenkinsfile").read_text(encoding="utf-8")
    stages = re.findall(r"stage\('([^']+)'\)", text)
    assert stages == ["Checkout", "Install", "Lint", "Test", "Train", "Build images", "Deploy", "Health check"]
    for needed in (
        "checkout scm",
        "./install.sh --dev",
        "shellcheck",
        README_TEST_COMMAND,
        "--junitxml=reports/junit.xml",
        ".venv/bin/python -m app.train_model",
        "docker-compose build",
        "docker-compose up -d",
        "curl -fsS --max-time 5",
        "junit ",
        "archiveArtifacts",
    ):
        assert needed in text, f"Jenkinsfile lacks {needed!r}"
    post = text[text.index("post {"):]
    assert "always {" in post and "failure {" in post and "junit " in post.split("failure {")[0]


def test_jenkinsfile_admin_token_from_credentials_only():
    text = (ROOT / "Jenkinsfile").read_text(encoding="utf-8")
    assert re.search(r"ADMIN_TOKEN\s*=\s*credentials\('mlops-admin-token'\)", text)
    literal = re.findall(r"ADMIN_TOKEN\s*[=:]\s*(?!credentials\()['\"]?([^\s'\"]+)", text)
    assert not [v for v in literal if not v.startswith("${")], f"literal ADMIN_TOKEN in Jenkinsfile: {literal}"


def test_jenkinsfile_runs_the_readme_test_command():
    readme = ROOT / "README.md"
    if readme.exists():
        assert README_TEST_COMMAND in readme.read_text(encoding="utf-8"), (
            f"README.md no longer shows {README_TEST_COMMAND!r}: keep it and the Jenkinsfile Test stage in step"
        )
    assert README_TEST_COMMAND in (ROOT / "Jenkinsfile").read_text(encoding="utf-8")


# --------------------------------------------------------------------------
# shell scripts


def test_shell_scripts_found():
    names = {p.relative_to(ROOT).as_posix() for p in shell_scripts()}
    assert {"get_ip.sh", "test_everything.sh", "terraform/user_data.sh", "docker/api-entrypoint.sh"} <= names


def test_shellcheck_clean():
    tool = require_tool("shellcheck")
    scripts = [str(p) for p in shell_scripts()]
    assert_ok(run([tool, "--external-sources", *scripts]), "shellcheck " + " ".join(scripts))


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shell_script_conventions(script):
    lines = script.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#!/usr/bin/env bash", f"{script.name}: shebang"
    assert "set -euo pipefail" in lines, f"{script.name}: set -euo pipefail"
    if script.parent == ROOT:
        assert os.access(script, os.X_OK), f"{script.name} is not executable"


# install.sh against a fake apt and a fake Python ---------------------------


def _fake_install_env(tmp_path: Path, *, uid: int, sudo: bool, unavailable: str = "",
                      installed: str = "") -> tuple[dict[str, str], Path]:
    """PATH with fake id/sudo/dpkg-query/apt-get/apt-cache, and a PYTHON whose venvs only log pip.

    Every call of apt-get and pip is appended to the returned log.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    q_log = shlex.quote(str(log))
    real_python = shlex.quote(sys.executable)
    scripts = {
        "id": f'if [[ "$1" == -u ]]; then echo {uid}; else exec /usr/bin/id "$@"; fi\n',
        "sudo": ('[[ "$1" == -n ]] && shift\nexec "$@"\n' if sudo else "exit 1\n"),
        # Installed packages print dpkg's status; the others are unknown.
        "dpkg-query": (f'case " {installed} " in *" ${{!#}} "*) printf "install ok installed" ;; '
                       '*) exit 1 ;; esac\n'),
        "apt-get": (
            f'printf "apt-get %s\\n" "$*" >> {q_log}\n'
            '[[ "$1" == install ]] || exit 0\n'
            'for arg in "$@"; do\n'
            f'  case " {unavailable} " in *" $arg "*)\n'
            '    echo "E: Package \'$arg\' has no installation candidate" >&2; exit 100 ;; esac\n'
            "done\n"
        ),
        "apt-cache": (
            'pkg="${!#}"; echo "$pkg:"; echo "  Installed: (none)"\n'
            f'case " {unavailable} " in *" $pkg "*) echo "  Candidate: (none)" ;; *) echo "  Candidate: 1.0" ;; esac\n'
        ),
        # python3 -m venv [--clear] DIR makes a venv whose python logs "pip ..." instead of installing.
        "fake-python": (
            'if [[ "$1 $2" == "-m venv" ]]; then\n'
            '  shift 2\n'
            f'  if [[ "$1" == --clear ]]; then echo "venv --clear" >> {q_log}; shift; fi\n'
            '  mkdir -p "$1/bin"; echo "home = /fake" > "$1/pyvenv.cfg"\n'
            '  { echo "#!/usr/bin/env bash"\n'
            f'    echo \'if [[ "$1 $2" == "-m pip" ]]; then echo "pip $*" >> {q_log}; exit 0; fi\'\n'
            f'    echo \'exec {real_python} "$@"\'; }} > "$1/bin/python"\n'
            '  chmod +x "$1/bin/python"; exit 0\n'
            "fi\n"
            f'exec {real_python} "$@"\n'
        ),
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/usr/bin/env bash\n" + body, encoding="utf-8")
        path.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": str(bin_dir / "fake-python"),
           "VENV": str(tmp_path / "venv")}
    return env, log


def _apt_installs(log: Path) -> list[list[str]]:
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [[w for w in c.split()[2:] if not w.startswith("-")] for c in calls if c.startswith("apt-get install")]


def test_install_dev_installs_prometheus_even_when_a_dev_package_is_unavailable(tmp_path):
    env, log = _fake_install_env(tmp_path, uid=0, sudo=False, unavailable="chromium")
    result = run([str(ROOT / "install.sh"), "--dev"], env=env)
    assert_ok(result, "install.sh --dev")
    out = result.stdout + result.stderr
    installs = _apt_installs(log)
    # Prometheus alone first; then the dev tools together; apt refused, so one at a time.
    dev = ["chromium", "fonts-noto-color-emoji", "shellcheck", "docker-compose", "wrk"]
    assert installs == [["prometheus"], dev, *[[pkg] for pkg in dev]], installs
    assert "apt-get could not install chromium: no installation candidate" in out, out
    assert re.search(r"not installed: chromium \(", out), out
    for pkg in ("prometheus", "shellcheck", "docker-compose", "wrk"):
        assert f"could not install {pkg}" not in out, out
    assert "needs root" not in out, "the failure is apt's, not a missing root"
    assert "pip -m pip install" in log.read_text(encoding="utf-8") and "requirements-dev.txt" in log.read_text()


def test_install_without_root_names_the_packages_and_the_reason(tmp_path):
    env, log = _fake_install_env(tmp_path, uid=1000, sudo=False, installed="fonts-noto-color-emoji")
    result = run([str(ROOT / "install.sh"), "--dev"], env=env)
    assert_ok(result, "install.sh --dev (no root)")
    out = result.stdout + result.stderr
    assert _apt_installs(log) == [], "without root apt-get install is never tried"
    assert "cannot install prometheus: this needs root or passwordless sudo" in out, out
    assert "cannot install chromium shellcheck docker-compose wrk: this needs root" in out, out

    # With passwordless sudo the same run installs through sudo; a second run finds it all done.
    env, log = _fake_install_env(tmp_path, uid=1000, sudo=True, installed="fonts-noto-color-emoji")
    result = run([str(ROOT / "install.sh")], env=env)
    assert_ok(result, "install.sh (sudo)")
    assert _apt_installs(log) == [["prometheus"]]
    env, log = _fake_install_env(tmp_path, uid=1000, sudo=False, installed="prometheus")
    log.unlink()
    result = run([str(ROOT / "install.sh")], env=env)
    assert_ok(result, "install.sh (second run)")
    assert not log.exists(), "nothing to install: neither apt-get nor pip runs"


def test_install_recreates_a_virtualenv_older_than_python_311(tmp_path):
    env, log = _fake_install_env(tmp_path, uid=0, sudo=False, installed="prometheus")
    venv = Path(env["VENV"])
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/old\nversion = 3.10.13\n", encoding="utf-8")
    old = venv / "bin" / "python"
    old.write_text('#!/usr/bin/env bash\n[[ "$1" == --version ]] && echo "Python 3.10.13"\n'
                   '[[ "$1" == -c ]] && exit 1\nexit 0\n', encoding="utf-8")
    old.chmod(0o755)
    result = run([str(ROOT / "install.sh")], env=env)
    assert_ok(result, "install.sh (old venv)")
    assert "recreating virtualenv" in result.stdout and "Python 3.10.13" in result.stdout, result.stdout
    calls = log.read_text(encoding="utf-8")
    assert "venv --clear" in calls and "-r requirements.txt" in calls, calls
    assert "3.10" not in old.read_text(encoding="utf-8"), "the venv's python is the new one"


# get_ip.sh ---------------------------------------------------------------


def _fake_curl(bin_dir: Path, log: Path, body: str) -> None:
    """A curl that records its arguments and answers like IMDS, offline."""
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "curl"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$*" >> {shlex.quote(str(log))}\n'
        'case "$*" in\n'
        '  *"-X PUT"*latest/api/token*) printf "tok-123" ;;\n'
        f'  *meta-data/public-ipv4*) printf "%s" {shlex.quote(body)} ;;\n'
        "  *) exit 7 ;;\n"
        "esac\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)


def _get_ip_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PUBLIC_IP", "GET_IP_IMDS", "API_PORT", "UI_PORT", "PROMETHEUS_PORT")}
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    env.update(extra)
    return env


def test_get_ip_imdsv2_flow(tmp_path):
    log = tmp_path / "curl.log"
    _fake_curl(tmp_path / "bin", log, "203.0.113.10")
    env = _get_ip_env(tmp_path, GET_IP_IMDS="always")
    result = run([str(ROOT / "get_ip.sh"), "--quiet"], env=env)
    assert_ok(result, "get_ip.sh --quiet")
    assert result.stdout == "203.0.113.10\n"
    calls = log.read_text(encoding="utf-8").splitlines()
    assert len(calls) == 2, calls
    put, get = calls
    assert "-X PUT" in put and "http://169.254.169.254/latest/api/token" in put
    assert "X-aws-ec2-metadata-token-ttl-seconds" in put
    assert "X-aws-ec2-metadata-token: tok-123" in get
    assert "http://169.254.169.254/latest/meta-data/public-ipv4" in get
    assert all("--max-time 2" in call for call in calls), calls

    result = run([str(ROOT / "get_ip.sh")], env={**env, "API_PORT": "6000"})
    assert_ok(result, "get_ip.sh")
    assert result.stdout.splitlines()[0] == "Detected IP Address: 203.0.113.10"
    assert "http://203.0.113.10:6000" in result.stdout
    assert "http://203.0.113.10:8501" in result.stdout
    assert "http://203.0.113.10:9090" in result.stdout


def test_get_ip_falls_back_without_imds(tmp_path):
    log = tmp_path / "curl.log"
    _fake_curl(tmp_path / "bin", log, "not-an-ip")
    result = run([str(ROOT / "get_ip.sh"), "--quiet"], env=_get_ip_env(tmp_path, GET_IP_IMDS="always"))
    assert_ok(result, "get_ip.sh --quiet")
    ipaddress.IPv4Address(result.stdout.strip())  # hostname -I or 127.0.0.1
    assert result.stdout.strip() != "not-an-ip"

    log.unlink()
    result = run([str(ROOT / "get_ip.sh"), "--quiet"], env=_get_ip_env(tmp_path, GET_IP_IMDS="never"))
    assert_ok(result, "get_ip.sh --quiet")
    ipaddress.IPv4Address(result.stdout.strip())
    assert not log.exists(), "GET_IP_IMDS=never must not call the metadata service"

    result = run([str(ROOT / "get_ip.sh"), "-q"], env=_get_ip_env(tmp_path, PUBLIC_IP="198.51.100.4"))
    assert result.stdout == "198.51.100.4\n"


# test_everything.sh against a stand-in stack on 127.0.0.1 -----------------


class _Stack(http.server.BaseHTTPRequestHandler):
    """API under /api, UI under /ui, Prometheus under /prom."""

    broken = False
    counter = 0
    weights = {"v1": 50, "v2": 50}

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def _send(self, code: int, body, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        cls = type(self)
        routes = {
            "/api/health": lambda: (200, {"status": "healthy", "models": {"v1": {}, "v2": {}}}),
            "/api/config": lambda: (200, {"weights": cls.weights, "total_weight": sum(cls.weights.values())}),
            "/api/drift": lambda: (200, {"drift_score": 0.12}),
            "/ui/_stcore/health": lambda: (200, "ok"),
            "/prom/-/ready": lambda: (200, "Prometheus Server is Ready."),
            "/prom/api/v1/targets": lambda: (200, {"status": "success", "data": {"activeTargets": [
                {"labels": {"job": "prometheus"}, "health": "up"},
                {"labels": {"job": "flask-api"}, "health": "down" if cls.broken else "up"},
            ]}}),
        }
        if path == "/api/metrics":
            metrics = "# TYPE prediction_requests_total counter\nprediction_requests_total 61.0\n"
            if not cls.broken:
                metrics += 'model_version_requests_total{version="v1"} 30.0\n'
            self._send(200, metrics, "text/plain; version=0.0.4")
        elif path in routes:
            code, body = routes[path]()
            self._send(code, body, "text/plain" if isinstance(body, str) else "application/json")
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if self.path != "/api/predict":
            self._send(404, {"error": "not found"})
            return
        try:
            features = json.loads(raw)["features"]
            assert len(features) == 4
        except Exception:
            self._send(400, {"error": "features must be a list of 4 numbers"})
            return
        cls = type(self)
        cls.counter += 1
        version = "v1" if cls.broken or cls.weights["v2"] == 0 or cls.counter % 2 else "v2"
        self._send(200, {"prediction": 0, "class_name": "setosa", "model_version": version})


@pytest.fixture
def stand_in_stack():
    handler = type("Handler", (_Stack,), {"broken": False, "counter": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run_test_everything(tmp_path: Path, base: str) -> subprocess.CompletedProcess:
    # A curl wrapper that logs every call, to check each one has --max-time.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    real_curl = require_tool("curl")
    wrapper = bin_dir / "curl"
    wrapper.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$*" >> {shlex.quote(str(tmp_path / "curl.log"))}\n'
        f'exec {shlex.quote(real_curl)} "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("API_PORT", "UI_PORT", "PROMETHEUS_PORT")}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        API_URL=f"{base}/api",
        UI_URL=f"{base}/ui",
        PROMETHEUS_URL=f"{base}/prom",
        PUBLIC_IP="198.51.100.7",
        GET_IP_IMDS="never",
        PROMETHEUS_TARGET_WAIT="0",
        UI_WAIT="0",
        CURL_TIMEOUT="5",
        NO_COLOR="1",
    )
    return run([str(ROOT / "test_everything.sh")], env=env, timeout=240)


def _curl_calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "curl.log").read_text(encoding="utf-8").splitlines()


def test_test_everything_passes_against_a_healthy_stack(tmp_path, stand_in_stack):
    handler, base = stand_in_stack
    result = _run_test_everything(tmp_path, base)
    assert_ok(result, "test_everything.sh")
    out = result.stdout
    assert "[FAIL]" not in out
    for n in range(1, 11):
        assert re.search(rf"^{n}\. ", out, re.M), f"section {n} missing:\n{out}"
    assert "both versions served" in out
    assert re.search(r"average response time [\d.]+ ms", out)
    assert "Detected IP Address: 198.51.100.7" in out
    assert re.search(r"^\d+ passed, 0 failed, 0 warnings$", out, re.M), out
    calls = _curl_calls(tmp_path)
    assert len(calls) >= 60
    assert all("--max-time" in call for call in calls), [c for c in calls if "--max-time" not in c]


def test_test_everything_fails_on_a_broken_stack(tmp_path, stand_in_stack):
    handler, base = stand_in_stack
    handler.broken = True
    result = _run_test_everything(tmp_path, base)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "[FAIL] one version never served" in out
    assert "[FAIL] /metrics lacks model_version_requests_total" in out
    assert "[FAIL] flask-api target not up" in out
    assert "SOME CHECKS FAILED" in out


def test_test_everything_warns_when_a_weight_is_zero(tmp_path, stand_in_stack):
    handler, base = stand_in_stack
    handler.weights = {"v1": 100, "v2": 0}
    result = _run_test_everything(tmp_path, base)
    assert_ok(result, "test_everything.sh (v2 weight 0)")
    assert "[WARN] a weight is 0 (v1=100 v2=0)" in result.stdout
    assert re.search(r"^\d+ passed, 0 failed, 1 warnings$", result.stdout, re.M), result.stdout


def test_test_everything_uses_python_not_jq():
    text = (ROOT / "test_everything.sh").read_text(encoding="utf-8")
    assert not re.search(r"\bjq\b", text)
    assert "python3" in text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
