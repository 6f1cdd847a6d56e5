"""Helpers shared by the tests: free ports, polling, real gunicorn servers, Prometheus scrapes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from app.settings import REPO_DIR

VENV_BIN = Path(sys.executable).parent
SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.5, 3.0, 5.2, 2.0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float = 30.0, interval: float = 0.05, message: str = "condition"):
    """Poll ``check`` until it returns a truthy value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last error: {last_error})")


ADMIN = {"Authorization": "Bearer test-token"}


def counter(name: str, **labels: str) -> float:
    """A sample of this process's default registry (in-process apps and services count there), 0 when absent."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class ApiServer:
    """A real gunicorn API running in a subprocess on 127.0.0.1."""

    url: str
    port: int
    process: subprocess.Popen
    env: dict
    log_path: Path
    multiproc_dir: Path
    database: Path
    models_dir: Path
    admin_headers: dict = field(default_factory=lambda: dict(ADMIN))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Stop gunicorn (gracefully by default) and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log(self) -> str:
        """What gunicorn and the app wrote."""
        return self.log_path.read_text(errors="replace")


def start_api(
    tmp_path: Path,
    models_dir: Path,
    *,
    workers: int = 2,
    extra_env: dict | None = None,
    database: Path | None = None,
    name: str = "api",
) -> ApiServer:
    """Start gunicorn with docker/gunicorn.conf.py, as run_demo.sh does, and wait for /health."""
    port = free_port()
    multiproc = tmp_path / f"{name}-multiproc"
    shutil.rmtree(multiproc, ignore_errors=True)
    multiproc.mkdir(parents=True)
    database = database or tmp_path / "state.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_") or not k.endswith("_WEIGHT")}
    env.update(
        {
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "API_WORKERS": str(workers),
            "MODELS_DIR": str(models_dir),
            "DATABASE_URL": f"sqlite:///{database}",
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
            "ADMIN_TOKEN": "test-token",
            "LOG_LEVEL": "warning",
        }
    )
    env.update(extra_env or {})
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "docker/gunicorn.conf.py", "app.flask_app:create_app()"],
            cwd=REPO_DIR,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = ApiServer(f"http://127.0.0.1:{port}", port, process, env, log_path, multiproc, database, models_dir)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}:\n{server.log()}")
        return requests.get(f"{server.url}/health", timeout=2).status_code in (200, 503)

    try:
        wait_until(healthy, timeout=60, interval=0.1, message="gunicorn /health")
        wait_until(lambda: len(worker_pids(server)) == workers, timeout=30, message="all workers booted")
    except BaseException:
        server.stop()
        raise
    return server


def worker_pids(server: ApiServer) -> set[int]:
    """The pids of the gunicorn master's worker processes."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(server.process.pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def scrape(url: str) -> dict[tuple, float]:
    """All samples of /metrics as {(name, sorted labels): value}."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict, name: str, **match) -> float:
    return sum(
        v for (n, labels), v in samples.items() if n == name and all(dict(labels).get(k) == w for k, w in match.items())
    )


def post_many(url: str, bodies: list, threads: int = 8) -> list[requests.Response]:
    """POST each body to /predict on a fresh connection, several at a time (spreads over workers)."""

    def one(body):
        return requests.post(
            f"{url}/predict",
            data=json.dumps(body) if not isinstance(body, bytes) else body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, bodies))
