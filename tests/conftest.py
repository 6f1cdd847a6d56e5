"""Shared fixtures: a trained model set, an app with a temp store, and real gunicorn servers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from app.settings import REPO_DIR, Settings
from app.train_model import load_iris_dataset, train

VENV_BIN = Path(sys.executable).parent


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


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory) -> Path:
    """One Iris model set for the whole run (tests copy it before changing anything)."""
    models_dir = tmp_path_factory.mktemp("trained") / "models"
    train(load_iris_dataset(), models_dir, log=lambda *_: None)
    return models_dir


@pytest.fixture
def models_dir(trained_models, tmp_path) -> Path:
    """A private copy of the trained model set."""
    target = tmp_path / "models"
    shutil.copytree(trained_models, target)
    return target


@pytest.fixture
def settings(models_dir, tmp_path) -> Settings:
    """Settings for an in-process app: temp models and database, admin enabled."""
    return Settings.from_env(
        {},
        models_dir=models_dir,
        database_url=f"sqlite:///{tmp_path / 'state.db'}",
        admin_token="test-token",
        log_flush_seconds=0.05,
        state_poll_seconds=0.1,
    )


@pytest.fixture
def app(settings):
    """The Flask app built by the factory; its threads and store are closed afterwards."""
    from app.flask_app import create_app, service_of

    application = create_app(settings)
    yield application
    service_of(application).close()


@pytest.fixture
def client(app):
    """A Flask test client."""
    return app.test_client()


ADMIN = {"Authorization": "Bearer test-token"}


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


def start_api(tmp_path: Path, models_dir: Path, *, workers: int = 2, extra_env: dict | None = None,
              database: Path | None = None, name: str = "api") -> ApiServer:
    """Start gunicorn with docker/gunicorn.conf.py, as run_demo.sh does, and wait for /health."""
    port = free_port()
    multiproc = tmp_path / f"{name}-multiproc"
    shutil.rmtree(multiproc, ignore_errors=True)
    multiproc.mkdir(parents=True)
    database = database or tmp_path / "state.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_") or not k.endswith("_WEIGHT")}
    env.update({
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_WORKERS": str(workers),
        "MODELS_DIR": str(models_dir),
        "DATABASE_URL": f"sqlite:///{database}",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "ADMIN_TOKEN": "test-token",
        "LOG_LEVEL": "warning",
    })
    env.update(extra_env or {})
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "docker/gunicorn.conf.py", "app.flask_app:create_app()"],
            cwd=REPO_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT,
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


@pytest.fixture
def api_server_factory(tmp_path, trained_models):
    """Start real gunicorn servers in a test; all are stopped at teardown."""
    servers: list[ApiServer] = []

    def factory(models_dir: Path | None = None, **kwargs) -> ApiServer:
        if models_dir is None:
            models_dir = tmp_path / "models"
            if not models_dir.exists():
                shutil.copytree(trained_models, models_dir)
        server = start_api(tmp_path, models_dir, **kwargs)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def live_api(tmp_path_factory, trained_models):
    """A 2-worker gunicorn API shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("live-api")
    models_dir = tmp / "models"
    shutil.copytree(trained_models, models_dir)
    server = start_api(tmp, models_dir)
    yield server
    server.stop()
