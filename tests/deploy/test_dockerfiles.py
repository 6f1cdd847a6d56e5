"""The Dockerfiles, .dockerignore, the API container's entrypoint and its gunicorn config.

The Dockerfile checks read the instructions: building the images needs a Docker engine, which this
machine does not run. The entrypoint is run for real, with a stub gunicorn, and gunicorn.conf.py is
executed as gunicorn executes it (runpy) and its values and hooks inspected.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import runpy
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from app.api.http import EXTENSION
from app.settings import SettingsError
from tests.deploy.helpers import (
    API_ENTRYPOINT,
    DOCKERFILES,
    GUNICORN_CONF,
    ROOT,
    assert_ok,
    copy_sources,
    dockerfile_instructions,
    dockerignore_patterns,
    run,
    stub,
)


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_base_image_pinned_and_overridable(kind):
    """Every stage starts from one base, pinned by a full version tag in a build ARG (a mirror or a digest can
    replace it with --build-arg PYTHON_IMAGE=...)."""
    text = DOCKERFILES[kind].read_text(encoding="utf-8")
    (default,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", default), default
    assert text.index("ARG PYTHON_IMAGE=") < text.index("FROM "), "the ARG must come before the first FROM"
    froms = [args.split()[0] for keyword, args in dockerfile_instructions(DOCKERFILES[kind]) if keyword == "FROM"]
    assert froms and set(froms) == {"${PYTHON_IMAGE}"}, froms
    assert len(froms) >= 2, "multi-stage: the build's tools and leftovers stay out of the runtime image"


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_healthcheck(kind):
    """The image says when it is healthy, on the port it exposes, without curl (slim images have none)."""
    instructions = dockerfile_instructions(DOCKERFILES[kind])
    (check,) = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
    (port,) = [args for keyword, args in instructions if keyword == "EXPOSE"]
    assert "--interval=" in check and "--timeout=" in check and "--retries=" in check, check
    program = json.loads(check[check.index("CMD") + 3 :].strip())
    assert program[:2] == ["python", "-c"] and f"http://127.0.0.1:{port}/" in program[2], program


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
    after = {k for k, _ in instructions[last_user + 1 :]}
    assert after <= {"EXPOSE", "CMD", "ENTRYPOINT", "HEALTHCHECK", "LABEL", "STOPSIGNAL"}, after


REQUIREMENTS = {"api": "requirements-api.txt", "streamlit": "requirements-ui.txt"}


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_copies_requirements_before_app(kind):
    """Each image installs its own requirements file, before any of the app's code is copied (layer caching)."""
    instructions = dockerfile_instructions(DOCKERFILES[kind])
    copies = [(i, copy_sources(args)) for i, (k, args) in enumerate(instructions) if k in ("COPY", "ADD")]
    req = [i for i, srcs in copies if REQUIREMENTS[kind] in srcs]
    app = [i for i, srcs in copies if any(s.split("/")[0] in ("app", ".") for s in srcs)]
    pip = [i for i, (k, args) in enumerate(instructions) if k == "RUN" and "pip install" in args]
    assert req and app and pip, (req, app, pip)
    assert req[0] < pip[0] < app[0], f"COPY {REQUIREMENTS[kind]}, RUN pip install, then COPY app/ (layer caching)"
    assert f"-r {REQUIREMENTS[kind]}" in instructions[pip[0]][1]
    others = {"requirements.txt", *REQUIREMENTS.values()} - {REQUIREMENTS[kind]}
    assert not others & {s for _, srcs in copies for s in srcs}, "an image installs its own requirements only"


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_has_no_secrets(kind):
    text = DOCKERFILES[kind].read_text(encoding="utf-8")
    assert not re.search(r"ADMIN_TOKEN\s*[=\s]\s*\S", text), "no ADMIN_TOKEN value in an image"
    for keyword, args in dockerfile_instructions(DOCKERFILES[kind]):
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"(TOKEN|SECRET|PASSWORD|API_KEY)\w*\s*=", args, re.I), args


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_copy_sources_exist_and_are_not_dockerignored(kind):
    ignored = dockerignore_patterns(negations=False)
    for keyword, args in dockerfile_instructions(DOCKERFILES[kind]):
        if keyword not in ("COPY", "ADD"):
            continue
        if "--from=" in args:
            continue  # copied from an earlier stage, not from the build context
        for src in copy_sources(args):
            path = src.rstrip("/")
            assert (ROOT / path).exists(), f"{DOCKERFILES[kind].name}: COPY source {src} does not exist"
            parts = Path(path).parts
            prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
            for pattern in ignored:
                hit = [p for p in prefixes if fnmatch.fnmatchcase(p, pattern)]
                assert not hit, f"COPY {src} is excluded by .dockerignore pattern {pattern!r}"


def test_dockerignore_keeps_local_state_out():
    patterns = set(dockerignore_patterns())
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
    for needed in (
        "API_HOST=0.0.0.0",
        "API_PORT=5000",
        "MODELS_DIR=/app/app/models",
        "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc",
    ):
        assert needed in envs, needed
    cmd = [args for k, args in instructions if k == "CMD"][-1]
    assert json.loads(cmd) == ["bash", "/app/docker/api-entrypoint.sh"]


def _entrypoint(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """A copy of the entrypoint that cds to ``tmp_path`` (not the image's /app), a PATH with stubs, and their log.

    The stub gunicorn prints its pid, working directory and arguments, then what is left in
    PROMETHEUS_MULTIPROC_DIR; the stub rm logs its arguments before running the real rm.
    """
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "calls.log"
    stub(bin_dir, "gunicorn", 'printf "%s\\n" "$$" "$PWD" "$@"\nls -A "$PROMETHEUS_MULTIPROC_DIR"\n')
    stub(bin_dir, "rm", f'printf "rm %s\\n" "$*" >> {calls}\nexec /bin/rm "$@"\n')
    script = tmp_path / "entrypoint.sh"
    text = API_ENTRYPOINT.read_text(encoding="utf-8")
    assert "cd /app\n" in text, "the entrypoint starts from the image's WORKDIR"
    script.write_text(text.replace("cd /app\n", f"cd {tmp_path}\n"), encoding="utf-8")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return script, env, calls


def test_api_entrypoint_wipes_multiproc_dir_then_execs_gunicorn(tmp_path):
    """gunicorn replaces the script (exec: it is PID 1 in the container) and starts on an empty directory."""
    script, env, calls = _entrypoint(tmp_path)
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    (multiproc / "gauge_livesum_99.db").write_text("stale", encoding="utf-8")
    process = subprocess.Popen(
        ["bash", str(script)],
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == str(process.pid), "gunicorn must be exec'd, not run as a child of the script"
    assert lines[1:] == [str(tmp_path), "-c", "docker/gunicorn.conf.py", "app.flask_app:create_app()"]
    assert calls.read_text(encoding="utf-8").splitlines() == [f"rm -rf {multiproc}"]

    # Unset, the script stops before any rm -rf could run on an empty path.
    calls.unlink()
    result = run(["bash", str(script)], env={k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"})
    assert result.returncode != 0 and "PROMETHEUS_MULTIPROC_DIR must be set" in result.stderr, result.stderr
    assert not calls.exists(), "rm ran although PROMETHEUS_MULTIPROC_DIR was unset"
    assert result.stdout == "", "gunicorn started although PROMETHEUS_MULTIPROC_DIR was unset"


def test_api_entrypoint_behaviour(tmp_path):
    """Run the entrypoint with a stub gunicorn: the old metric files are gone, a missing directory is made."""
    script, env, _ = _entrypoint(tmp_path)
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    (multiproc / "counter_123.db").write_text("stale", encoding="utf-8")
    result = run(["bash", str(script)], env={**env, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)})
    assert_ok(result, "entrypoint")
    assert result.stdout.splitlines()[1:] == [
        str(tmp_path),
        "-c",
        "docker/gunicorn.conf.py",
        "app.flask_app:create_app()",
    ]
    assert multiproc.is_dir() and not any(multiproc.iterdir())

    fresh = tmp_path / "not-yet" / "multiproc"
    result = run(["bash", str(script)], env={**env, "PROMETHEUS_MULTIPROC_DIR": str(fresh)})
    assert_ok(result, "entrypoint (directory missing)")
    assert fresh.is_dir() and not any(fresh.iterdir())


def test_streamlit_dockerfile_command():
    instructions = dockerfile_instructions(DOCKERFILES["streamlit"])
    assert ("EXPOSE", "8501") in instructions
    cmd = json.loads([args for k, args in instructions if k == "CMD"][-1])
    assert cmd == [
        "streamlit",
        "run",
        "app/streamlit_app.py",
        "--server.port",
        "8501",
        "--server.address",
        "0.0.0.0",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]


def load_gunicorn_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """docker/gunicorn.conf.py run as gunicorn runs it (a Python file executed once), in this environment."""
    for name in ("API_HOST", "API_PORT", "API_WORKERS", "API_THREADS", "API_ACCESS_LOG", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_config_values_and_hooks(monkeypatch, tmp_path):
    config = load_gunicorn_config(monkeypatch)
    assert (config["bind"], config["workers"], config["worker_class"]) == ("127.0.0.1:5000", 2, "gthread")
    assert config["preload_app"] is False, "each worker must build its own app (threads, SQLite after fork)"
    assert (config["accesslog"], config["errorlog"], config["loglevel"]) == (None, "-", "info")
    # Sized for what the nginx front door hands over (complete requests): threads for handlers that wait.
    assert config["threads"] == 4
    # One listening socket per worker: nginx's pooled connections spread over the workers.
    assert config["reuse_port"] is True
    # nginx closes an idle pooled connection before gunicorn would, so a POST is never written to a closing one.
    template = (ROOT / "docker" / "nginx" / "frontdoor.conf.template").read_text(encoding="utf-8")
    upstream_idle = re.search(r"upstream api \{.*?keepalive_timeout (\d+)s;", template, re.S)
    assert upstream_idle and config["keepalive"] > int(upstream_idle.group(1)), config["keepalive"]
    config = load_gunicorn_config(monkeypatch, API_ACCESS_LOG="-", LOG_LEVEL="warning", API_THREADS="8")
    assert (config["accesslog"], config["loglevel"], config["threads"]) == ("-", "warning", 8)

    # child_exit lets prometheus_client drop a dead worker's live gauges, and only that worker's.
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    for name in ("gauge_livesum_101.db", "gauge_livesum_202.db", "counter_101.db"):
        (multiproc / name).write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(multiproc))
    config["child_exit"](None, SimpleNamespace(pid=101))
    assert sorted(p.name for p in multiproc.iterdir()) == ["counter_101.db", "gauge_livesum_202.db"]

    # worker_exit stops the worker's service (its prediction log is flushed); a worker without an app is fine.
    stopped: list[bool] = []
    app = Flask("probe")
    app.extensions[EXTENSION] = SimpleNamespace(stop=lambda: stopped.append(True))
    config["worker_exit"](None, SimpleNamespace(wsgi=app))
    config["worker_exit"](None, SimpleNamespace())
    assert stopped == [True]


def test_gunicorn_config_refuses_invalid_settings(monkeypatch):
    """A bad variable stops gunicorn while it reads its config, before any worker starts."""
    with pytest.raises(SettingsError, match=re.escape("API_WORKERS='0'")):
        load_gunicorn_config(monkeypatch, API_WORKERS="0")
