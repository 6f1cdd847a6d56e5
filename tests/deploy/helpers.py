"""Helpers of the deployment-file tests: paths, running the external tools, parsing Dockerfiles and HCL.

The external tools (docker-compose, promtool, shellcheck, terraform) must be installed: a missing
tool fails the test with a message, it is never skipped.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2 import SerializationOptions

from app.settings import REPO_DIR

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
GUNICORN_CONF = DOCKER / "gunicorn.conf.py"

# The README's test command; the Jenkinsfile must run the same thing.
README_TEST_COMMAND = ".venv/bin/python -m pytest"

ALERTS = (
    "ModelDriftDetected",
    "HighPredictionErrorRate",
    "HighPredictionLatencyP95",
    "PredictionApiDown",
    "ABSplitMismatch",
    "RolloutRolledBack",
    "StateStoreUnavailable",
)

# Environment variables that docker-compose.yml interpolates; removed so the
# checks see the file's own defaults whatever the caller's shell exports.
COMPOSE_INTERPOLATED = (
    "ADMIN_TOKEN",
    "API_PORT",
    "UI_PORT",
    "PROMETHEUS_PORT",
    "API_WORKERS",
    "BIND_HOST",
    "IMAGE_TAG",
    "MODEL_V1_WEIGHT",
    "MODEL_V2_WEIGHT",
    "COMPOSE_PROJECT_NAME",
)

# What the packages are called where a required tool is missing.
INSTALL_HINTS = {
    "promtool": "Debian: apt-get install prometheus",
    "docker-compose": "Debian: apt-get install docker-compose",
    "shellcheck": "Debian: apt-get install shellcheck",
    "terraform": "HashiCorp's terraform binary, with the hashicorp/aws provider in TF_PLUGIN_DIR",
}


def require_tool(name: str) -> str:
    """The path of an external tool; fails the test (never skips it) when the tool is missing."""
    path = shutil.which(name)
    if path is None:
        hint = INSTALL_HINTS.get(name, f"Debian: apt-get install {name}")
        pytest.fail(f"required tool {name!r} is not on PATH; install it ({hint})", pytrace=False)
    return path


def run(
    cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command without stdin, capturing its output; never raises on a non-zero exit."""
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


def assert_ok(result: subprocess.CompletedProcess[str], what: str) -> None:
    """Fail with the command's whole output unless it exited 0."""
    assert result.returncode == 0, (
        f"{what} failed (exit {result.returncode}):\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def stub(bin_dir: Path, name: str, body: str) -> Path:
    """An executable bash script ``bin_dir/name`` (put ``bin_dir`` first on PATH to stand in for a command)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free 127.0.0.1 port from a thread; yields the base URL, shuts down after."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


# --------------------------------------------------------------------------
# docker-compose


def compose_env(**extra: str) -> dict[str, str]:
    """The caller's environment without the variables compose interpolates, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_INTERPOLATED}
    env.update(extra)
    return env


def compose_config(**extra: str) -> dict[str, Any]:
    """The configuration `docker-compose config` resolves (interpolated, paths made absolute)."""
    tool = require_tool("docker-compose")
    result = run([tool, "-f", str(COMPOSE_FILE), "config"], env=compose_env(**extra))
    assert_ok(result, f"docker-compose config {extra}")
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def environment_dict(environment: list[str] | dict[str, Any]) -> dict[str, str]:
    """A service's environment as {name: value}, from the list or the mapping form."""
    if isinstance(environment, dict):
        return {k: "" if v is None else str(v) for k, v in environment.items()}
    return dict(entry.split("=", 1) for entry in environment)


def resolved_ports(ports: list[Any]) -> list[tuple[str, str, int]]:
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


def volume_mounts(volumes: list[Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of a service's volumes from `docker-compose config`, either syntax."""
    mounts = []
    for entry in volumes:
        if isinstance(entry, dict):
            mounts.append((str(entry["source"]), str(entry["target"]), bool(entry.get("read_only", False))))
        else:
            source, target, *mode = str(entry).split(":")
            mounts.append((source, target, mode == ["ro"]))
    return mounts


# --------------------------------------------------------------------------
# Dockerfiles


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
    """The source paths of a COPY/ADD instruction (flags and the destination left out)."""
    words = [w for w in shlex.split(args) if not w.startswith("--")]
    return words[:-1]


def dockerignore_patterns(*, negations: bool = True) -> list[str]:
    """The patterns of .dockerignore, trailing slashes removed (``!`` exceptions left out if not ``negations``)."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or (line.startswith("!") and not negations):
            continue
        patterns.append(line.rstrip("/"))
    return patterns


# --------------------------------------------------------------------------
# Terraform


def hcl(path: Path) -> dict[str, Any]:
    options = SerializationOptions(with_comments=False, strip_string_quotes=True, explicit_blocks=False)
    parsed: dict[str, Any] = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=options)
    return parsed


def blocks(parsed: dict[str, Any], kind: str) -> dict[str, Any]:
    """Merge python-hcl2's list of one-key dicts into {name: body}."""
    merged: dict[str, Any] = {}
    for entry in parsed.get(kind, []):
        merged.update(entry)
    return merged


def single(value: Any) -> Any:
    """A nested block comes back as a list of one dict."""
    if isinstance(value, list):
        assert len(value) == 1, value
        return value[0]
    return value


def terraform_variables() -> dict[str, Any]:
    return blocks(hcl(TERRAFORM / "variables.tf"), "variable")


def terraform_resources() -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for entry in hcl(TERRAFORM / "main.tf").get("resource", []):
        for rtype, named in entry.items():
            resources.setdefault(rtype, {}).update(named)
    return resources


# --------------------------------------------------------------------------
# shell scripts


def shell_scripts() -> list[Path]:
    """Every *.sh in the repository root, docker/, deploy/ and terraform/ (not .venv)."""
    found: set[Path] = set()
    for folder in (ROOT, DOCKER, ROOT / "deploy", TERRAFORM):
        found.update(p for p in folder.glob("*.sh") if p.is_file())
    return sorted(p for p in found if ".venv" not in p.parts)
