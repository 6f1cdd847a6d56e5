"""Helpers shared by the tests: free ports, polling, real gunicorn, PostgreSQL and nginx servers, Prometheus scrapes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
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


ADMIN = {"Authorization": "Bearer test-admin-token-0123456789"}

MEASURED: dict[str, object] = {}
"""Figures a test measured on the way (name -> value), printed in the run's summary (tests/conftest.py)."""


def stop_process(process: subprocess.Popen, sig: int, timeout: float) -> int:
    """Send ``sig`` to a server we started and wait for it; SIGKILL it if it will not go. Its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode


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
        return stop_process(self.process, sig, timeout)

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
    host: str = "127.0.0.1",
    database_url: str | None = None,
) -> ApiServer:
    """Start gunicorn with docker/gunicorn.conf.py, as run_demo.sh does, and wait for /health.

    ``host`` may be any loopback address (127.0.0.2, ...: a host of its own); ``database_url`` another store.
    """
    port = free_port()
    multiproc = tmp_path / f"{name}-multiproc"
    shutil.rmtree(multiproc, ignore_errors=True)
    multiproc.mkdir(parents=True)
    database = database or tmp_path / "state.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_") or not k.endswith("_WEIGHT")}
    env.update(
        {
            "API_HOST": host,
            "API_PORT": str(port),
            "API_WORKERS": str(workers),
            "MODELS_DIR": str(models_dir),
            "DATABASE_URL": database_url or f"sqlite:///{database}",
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
            "ADMIN_TOKEN": "test-admin-token-0123456789",
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
    server = ApiServer(f"http://{host}:{port}", port, process, env, log_path, multiproc, database, models_dir)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}:\n{server.log()}")
        return requests.get(f"{server.url}/health", timeout=2).status_code in (200, 503)

    try:
        wait_until(healthy, timeout=60, interval=0.1, message="gunicorn /health")
        # A forked worker is not a ready one: wait until every worker has answered (it loads the models first).
        until_every_worker(server.url, "/health", workers, lambda _: True, timeout=60, interval=0.02)
    except BaseException:
        server.stop()
        raise
    return server


def until_every_worker(
    url: str,
    path: str,
    workers: int,
    check: Callable[[requests.Response], bool],
    timeout: float,
    interval: float = 0.005,
) -> None:
    """GET ``url + path`` on new connections until each of ``workers`` workers (told apart by X-Served-By) has
    answered a response that passes ``check``."""
    passed: set[str] = set()

    def all_passed() -> bool:
        r = requests.get(f"{url}{path}", timeout=5)
        if check(r):
            passed.add(r.headers["X-Served-By"])
        return len(passed) == workers

    wait_until(all_passed, timeout=timeout, interval=interval, message=f"every worker of {url} on {path}")


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


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster (Debian's binaries) in a temp dir, run as a non-root user, on 127.0.0.1."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    user: str
    log_path: Path

    @property
    def admin_url(self) -> str:
        """The URL of the maintenance database, as the cluster's superuser."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        """The URL of one database of this cluster."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """Stop the server (SIGINT: fast shutdown; SIGKILL: a crash)."""
        stop_process(self.process, sig, timeout)

    def start(self) -> None:
        """Start (again) on the same data directory and port, and wait until it accepts connections."""
        self.process = _spawn_postgres(self.data_dir, self.port, self.user, self.log_path)
        _wait_for_postgres(self)


def _as_user(user: str) -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]


@contextmanager
def throwaway_postgres(prefix: str = "mlops-pg-") -> Iterator[PostgresServer]:
    """A cluster in a fresh temp dir, stopped and removed on exit. The dir is outside pytest's (root-only) temp
    tree, so the unprivileged server can reach it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(folder, 0o755)
    server = start_postgres(folder / "cluster")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def start_postgres(folder: Path) -> PostgresServer:
    """initdb a cluster in ``folder`` (as ``postgres``, or the current user when not root) and start it."""
    import pwd

    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(user)
        except KeyError as exc:
            raise AssertionError(
                "no 'postgres' user: install Debian's postgresql package (./install.sh --dev)"
            ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    data_dir = folder / "pgdata"
    if os.geteuid() == 0:
        shutil.chown(folder, user, user)
        os.chmod(folder, 0o700)
    subprocess.run(
        [*_as_user(user), str(PG_BIN / "initdb"), "-D", str(data_dir), "-U", user, "--auth=trust", "-E", "UTF8",
         "--no-instructions"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = free_port()
    log_path = folder / "postgres.log"
    server = PostgresServer(data_dir, port, _spawn_postgres(data_dir, port, user, log_path), user, log_path)
    _wait_for_postgres(server)
    return server


def _spawn_postgres(data_dir: Path, port: int, user: str, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        if os.geteuid() == 0:
            shutil.chown(log_path, user, user)
        return subprocess.Popen(
            [*_as_user(user), str(PG_BIN / "postgres"), "-D", str(data_dir), "-p", str(port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data_dir}",
             "-c", "fsync=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _wait_for_postgres(server: PostgresServer) -> None:
    import psycopg

    def accepting() -> bool:
        if server.process.poll() is not None:
            raise AssertionError(f"postgres exited: {server.log_path.read_text(errors='replace')[-2000:]}")
        with psycopg.connect(server.admin_url, connect_timeout=2):
            return True

    wait_until(accepting, timeout=60, interval=0.1, message="postgres accepting connections")


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        pytest.fail("nginx is not installed (Debian: apt-get install nginx; ./install.sh does)", pytrace=False)
    return found


@dataclass
class Door:
    """An nginx started from the rendered template."""

    url: str
    port: int
    process: subprocess.Popen
    directory: Path
    config: Path

    def stop(self) -> None:
        stop_process(self.process, signal.SIGTERM, 20)
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.directory.glob("*.log")))


def render_native(directory: Path, listen_port: int, upstream_port: int | None, *extra: str) -> Path:
    """Render the native config with the project's CLI, as run_demo.sh does (``upstream_port`` None: the
    ``--replica`` options in ``extra`` name the upstreams)."""
    config = directory / "nginx" / "frontdoor.conf"
    config.parent.mkdir(parents=True, exist_ok=True)
    (directory / "temp").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "app.cli.configs", "nginx", "--listen-port", str(listen_port)]
    if upstream_port is not None:
        command += ["--upstream-port", str(upstream_port)]
    command += ["--run-dir", str(directory)]
    command += ["--temp-dir", str(directory / "temp"), "--output", str(config), *extra]
    subprocess.run(command, cwd=REPO_DIR, check=True, timeout=60)
    return config


def start_door(upstream_port: int | None, *extra: str, ready: str | None = "/health") -> Door:
    """nginx on a free port in front of 127.0.0.1:upstream_port (or the ``--replica`` options in ``extra``);
    waits until it proxies ``ready``."""
    # Not under pytest's tmp_path: that is private to root, and nginx's workers (nobody, when the tests run
    # as root) must reach the body buffers.
    directory = Path(tempfile.mkdtemp(prefix="frontdoor-test-", dir="/tmp"))
    directory.chmod(0o755)
    port = free_port()
    config = render_native(directory, port, upstream_port, *extra)
    log = open(directory / "nginx.log", "ab")  # noqa: SIM115 - nginx writes to it until stop()
    process = subprocess.Popen([nginx_binary(), "-e", "stderr", "-c", str(config)], stdout=log, stderr=log)
    log.close()
    door = Door(f"http://127.0.0.1:{port}", port, process, directory, config)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited with {process.returncode}:\n{door.log()}")
        if ready is None:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        return requests.get(f"{door.url}{ready}", timeout=2).status_code == 200

    try:
        wait_until(up, timeout=30, message="nginx to proxy")
    except BaseException:
        door.stop()
        raise
    return door


_IRIS_ROWS = [
    [5.1, 3.5, 1.4, 0.2],
    [6.7, 3.0, 5.2, 2.3],
    [5.9, 3.0, 4.2, 1.5],
    [6.3, 2.8, 5.1, 1.5],
    [4.9, 3.1, 1.5, 0.1],
]
_BATCH = 20


class LabellingUsers:
    """Send batches of predictions to the API at ``url`` and label every row, right or wrong by the serving
    version's pattern (``right[version](n)`` for its n-th row), as users' ground truth would."""

    def __init__(self, url: str, right: dict[str, Callable[[int], bool]]) -> None:
        self.url = url
        self.right = right
        self.seen: Counter[str] = Counter()

    def round(self, requests_per_round: int = 10) -> None:
        labels = []
        for r in range(requests_per_round):
            body = {"instances": [_IRIS_ROWS[(r * _BATCH + i) % len(_IRIS_ROWS)] for i in range(_BATCH)]}
            answer = requests.post(f"{self.url}/predict", json=body, timeout=10)
            assert answer.status_code == 200, answer.text
            a = answer.json()
            version = a["model_version"]
            for pid, token, predicted in zip(a["prediction_ids"], a["feedback_tokens"], a["predictions"], strict=True):
                right = self.right[version](self.seen[version])
                self.seen[version] += 1
                labels.append(
                    {
                        "prediction_id": pid,
                        "feedback_token": token,
                        "label": predicted if right else (predicted + 1) % 3,
                    }
                )
        result = requests.post(f"{self.url}/feedback", json={"feedback": labels}, timeout=10)
        assert result.status_code == 200, result.text

    def until(self, check: Callable[[dict], bool], most_rounds: int = 200) -> dict:
        """Feed rounds until ``check`` holds for GET /rollouts/current; that rollout."""
        for _ in range(most_rounds):
            rollout = requests.get(f"{self.url}/rollouts/current", timeout=5).json()
            if check(rollout):
                return rollout
            self.round()
        raise AssertionError(f"rollout never got there after {most_rounds} rounds: {rollout}")
