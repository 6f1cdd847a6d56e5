"""./run_demo.sh native mode: a fresh start trains, serves (gunicorn on loopback behind the nginx front door),
reports status and stops cleanly; stale pid files are not trusted; a start that fails part-way leaves nothing
running."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from app.settings import REPO_DIR
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.integration

SERVICES = ("api", "frontdoor", "ui", "prometheus")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """run_demo.sh's environment: native mode, free ports, state under tmp_path."""
    return {
        **os.environ,
        "API_PORT": str(free_port()),
        "API_UPSTREAM_PORT": str(free_port()),
        "UI_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
        "RUN_MODE": "native",
        "RUN_DIR": str(tmp_path / "run"),
        "MODELS_DIR": str(tmp_path / "models"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "API_WORKERS": "2",
        "BIND_HOST": "127.0.0.1",
        **extra,
    }


def _run_demo(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["./run_demo.sh", *args], cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _processes_with_env(name: str, value: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose environment has NAME=VALUE."""
    wanted = f"{name}={value}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if wanted not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone, or not ours to read
            continue
        if cmdline:  # zombies have none
            found.append((int(proc.name), cmdline))
    return found


def _run_dir_nobody_can_reach() -> Path:
    """A RUN_DIR outside pytest's tmp_path, which is private to its owner: nginx's workers run as nobody when
    the tests run as root, and buffer bodies under RUN_DIR when they can reach it."""
    directory = Path(tempfile.mkdtemp(prefix="run-demo-test-", dir="/tmp"))
    directory.chmod(0o755)
    return directory


def _listeners(port: int) -> set[str]:
    """The local addresses something listens on at ``port`` (ss)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True)
    return {line.split()[3].rsplit(":", 1)[0] for line in out.stdout.splitlines() if line.strip()}


def _children(pid: int) -> list[tuple[int, str, str]]:
    out = subprocess.run(["ps", "-o", "pid=,user=,args=", "--ppid", str(pid)], capture_output=True, text=True)
    return [(int(p), user, args) for p, user, args in (line.split(None, 2) for line in out.stdout.splitlines())]


def test_run_demo_start_status_stop(tmp_path):
    run_root = _run_dir_nobody_can_reach()
    env = _env(tmp_path, RUN_DIR=str(run_root / "run"))  # MODELS_DIR is empty: the script must train
    ports = {name: int(env[name]) for name in ("API_PORT", "API_UPSTREAM_PORT", "UI_PORT", "PROMETHEUS_PORT")}
    nginx_pids: list[int] = []

    def script(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = _run_demo(env, *args)
        if check:
            assert result.returncode == 0, f"run_demo.sh {args}:\n{result.stdout}\n{result.stderr}"
        return result

    try:
        started = script()
        assert "training" in started.stdout and "Training complete!" in started.stdout
        for name in ("API_PORT", "UI_PORT", "PROMETHEUS_PORT"):
            assert f"http://127.0.0.1:{ports[name]}" in started.stdout
        assert "starting the front door (nginx)" in started.stdout and "frontdoor is up" in started.stdout
        # The seed's example on the API port, answered through nginx by gunicorn.
        api = f"http://127.0.0.1:{ports['API_PORT']}"
        r = requests.post(f"{api}/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}, timeout=5)
        assert r.status_code == 200 and r.json()["prediction"] == 0
        assert r.headers["Server"] == "nginx" and r.headers["X-Served-By"] and r.headers["X-Request-ID"]
        assert "prediction_requests_total" in requests.get(f"{api}/metrics", timeout=5).text
        assert requests.get(f"http://127.0.0.1:{ports['UI_PORT']}/_stcore/health", timeout=5).ok
        # gunicorn listens on loopback only, on its own port; nginx on BIND_HOST:API_PORT.
        assert _listeners(ports["API_UPSTREAM_PORT"]) == {"127.0.0.1"}
        assert _listeners(ports["API_PORT"]) == {"127.0.0.1"}
        upstream = f"http://127.0.0.1:{ports['API_UPSTREAM_PORT']}"
        assert requests.get(f"{upstream}/health", timeout=5).headers.get("Server") != "nginx"
        # nginx's master is the pid run_demo.sh recorded; its workers do not run as root.
        master = int((Path(env["RUN_DIR"]) / "frontdoor.pid").read_text())
        workers = [c for c in _children(master) if "worker process" in c[2]]
        assert workers and all(user != "root" for _, user, _ in workers), workers
        nginx_pids = [master, *(pid for pid, _, _ in workers)]

        def scraped() -> set[str]:
            targets = requests.get(f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}/api/v1/targets", timeout=5).json()
            return {t["scrapeUrl"] for t in targets["data"]["activeTargets"]}

        # Prometheus scrapes gunicorn itself (every worker's counters are in any worker's /metrics).
        wait_until(lambda: f"{upstream}/metrics" in scraped(), timeout=30, message="Prometheus scraping the API")
        # No lifecycle API: nobody who reaches the port can shut Prometheus down.
        prometheus = f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"
        assert requests.post(f"{prometheus}/-/quit", timeout=5).status_code == 403
        assert requests.get(f"{prometheus}/-/ready", timeout=5).ok
        status = script("status")
        assert status.stdout.count("healthy at") == 4
        assert re.search(rf"frontdoor +running \(pid {master}\), healthy at {api}/health", status.stdout)
        assert re.search(rf"api +running \(pid \d+\), healthy at {upstream}/health", status.stdout)
        again = script(check=False)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        stopped = script("stop", check=False)
        shutil.rmtree(run_root, ignore_errors=True)
    assert stopped.returncode == 0 and "stopped frontdoor" in stopped.stdout
    status = script("status", check=False)
    assert status.returncode != 0 and status.stdout.count("stopped") == 4
    for port in ("API_PORT", "API_UPSTREAM_PORT"):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{ports[port]}/health", timeout=2)
    assert not [pid for pid in nginx_pids if Path(f"/proc/{pid}").exists()], "nginx's master and workers are gone"


def test_run_demo_ignores_a_stale_pid_file_whose_pid_was_reused(tmp_path):
    """Pid files naming a process that is not our service: status says stopped, stop leaves it alone."""
    env = _env(tmp_path)
    run_dir = Path(env["RUN_DIR"])
    run_dir.mkdir()
    # An unrelated process in its own session (as our services are), in the repository directory:
    # only its command line tells it apart. "kill -TERM -- -PID" would kill it.
    stranger = subprocess.Popen(["sleep", "60"], cwd=REPO_DIR, start_new_session=True)
    try:
        for name in SERVICES:
            (run_dir / f"{name}.pid").write_text(f"{stranger.pid}\n")

        status = _run_demo(env, "status", timeout=60)
        assert status.returncode != 0, status.stdout
        assert status.stdout.count("stopped") == 4, status.stdout
        assert "running" not in status.stdout, status.stdout
        assert not any((run_dir / f"{name}.pid").exists() for name in SERVICES), "stale pid files are removed"

        for name in SERVICES:  # the same stale files again, for stop
            (run_dir / f"{name}.pid").write_text(f"{stranger.pid}\n")
        stopped = _run_demo(env, "stop", timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "stopped api" not in stopped.stdout, stopped.stdout
        assert stranger.poll() is None, "run_demo.sh stop killed a process that is not one of its services"
        assert not any((run_dir / f"{name}.pid").exists() for name in SERVICES)
    finally:
        stranger.kill()
        stranger.wait(10)


def test_run_demo_failed_start_stops_what_it_started(tmp_path, models_dir):
    """Prometheus dies at start: run_demo.sh fails, naming it, and the API, the front door and the UI are stopped.

    The fake prometheus records its arguments: run_demo.sh must start it on the config it wrote and
    without --web.enable-lifecycle, which would let anyone who reaches the port POST /-/quit.
    """
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "prometheus"
    argv_log = tmp_path / "prometheus-argv"
    fake.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {argv_log}\necho 'fake prometheus: refusing to start' >&2\nexit 1\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)
    env = _env(tmp_path, MODELS_DIR=str(models_dir), PATH=f"{fake_bin}:{os.environ['PATH']}")
    run_dir = Path(env["RUN_DIR"])
    ports = [int(env["API_PORT"]), int(env["API_UPSTREAM_PORT"]), int(env["UI_PORT"])]

    def ours() -> list[tuple[int, str]]:
        return [
            (pid, cmd)
            for pid, cmd in _processes_with_env("RUN_DIR", str(run_dir))
            if "gunicorn" in cmd or "streamlit" in cmd or "nginx" in cmd
        ]

    temp_dirs_before = set(Path("/tmp").glob("mlops-frontdoor.*"))
    try:
        result = _run_demo(env)
        assert result.returncode != 0, result.stdout + result.stderr
        assert "prometheus" in result.stderr.lower(), result.stderr
        assert "starting the API" in result.stdout and "api is up" in result.stdout, result.stdout
        assert "frontdoor is up" in result.stdout, result.stdout
        argv = argv_log.read_text(encoding="utf-8").splitlines()
        assert f"--config.file={run_dir / 'prometheus.yml'}" in argv, argv
        assert f"--web.listen-address=127.0.0.1:{env['PROMETHEUS_PORT']}" in argv, argv
        assert not [a for a in argv if a.startswith("--web.enable-lifecycle")], argv
        wait_until(
            lambda: not any(_listening(port) for port in ports), timeout=30, message="the API and UI ports to be closed"
        )
        wait_until(lambda: not ours(), timeout=30, message=f"no gunicorn/nginx/streamlit left from {run_dir}")
        assert not (run_dir / "mode").exists(), "the stopped stack leaves no mode file"
        # RUN_DIR is under pytest's private tmp_path: as root, nginx's body buffers went to a directory of
        # their own under /tmp (its workers run as nobody), which the stop removed.
        assert set(Path("/tmp").glob("mlops-frontdoor.*")) == temp_dirs_before
        assert not any((run_dir / f"{name}.pid").exists() for name in SERVICES)
    finally:
        _run_demo(env, "stop", timeout=120)
        for pid, _ in ours():  # last resort, so a failure here leaves nothing behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
