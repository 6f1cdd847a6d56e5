"""The container stack for real: an engine, the base images, the project's images, the stack up.

Everything here is package-scoped: the engine (started here when none answers) and the stack exist while
the tests in tests/containers run, and are gone before the rest of the suite goes on. Figures measured on
the way (build times, image sizes, the deploy exercise) are printed in the run's summary.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from app.settings import REPO_DIR
from tests.containers.engine import Engine, docker, docker_engine, ensure_base_image, pinned_base_images
from tests.helpers import MEASURED, free_port

ADMIN_TOKEN = "container-test-admin-token-0123456789"
PROJECT = "mlops-test"  # its own named volumes, never a user's "mlops" ones
IMAGE_TAG = "test"
IMAGES = ("mlops-flask-api", "mlops-streamlit-ui")


@dataclass
class Stack:
    """Where the running container stack answers, and how to drive its scripts."""

    env: dict[str, str]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['API_PORT']}"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.env['UI_PORT']}"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.env['PROMETHEUS_PORT']}"

    def script(self, *command: str, timeout: float = 900, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run a repository script (``./run_demo.sh``, ``deploy/pipeline.sh``...) in the stack's environment."""
        return subprocess.run(
            [str(REPO_DIR / command[0]), *command[1:]],
            cwd=REPO_DIR,
            env={**self.env, **extra},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def must(self, *command: str, timeout: float = 900, **extra: str) -> subprocess.CompletedProcess[str]:
        result = self.script(*command, timeout=timeout, **extra)
        assert result.returncode == 0, (
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
        return result

    def project_containers(self) -> list[str]:
        """Every container of the compose project, running or not."""
        out = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "--format", "{{.Names}}")
        return sorted(out.stdout.split())


@pytest.fixture(scope="package")
def engine() -> Iterator[Engine]:
    """An engine that answers, DOCKER_HOST set for the tests' commands while the package runs."""
    saved = os.environ.get("DOCKER_HOST")
    with docker_engine() as started:
        os.environ["DOCKER_HOST"] = started.host
        try:
            yield started
        finally:
            if saved is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = saved


@pytest.fixture(scope="package")
def base_images(engine: Engine) -> dict[str, str]:
    """Every pinned public image present: {name: "present" | "pulled" | "stand-in"}."""
    started = time.monotonic()
    how = {name: ensure_base_image(name, engine) for name in pinned_base_images()}
    MEASURED["base images"] = how
    MEASURED["base images ready (s)"] = round(time.monotonic() - started, 1)
    return how


@pytest.fixture(scope="package")
def stack_env(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment the stack's scripts run in: free loopback ports, an admin token, its own project."""
    run_dir = tmp_path_factory.mktemp("container-run")
    env = {
        **os.environ,
        "DOCKER_HOST": engine.host,
        "RUN_MODE": "docker",
        "RUN_DIR": str(run_dir),
        "DEPLOY_STATE_DIR": str(run_dir / "deploy"),
        "COMPOSE_PROJECT_NAME": PROJECT,
        "IMAGE_TAG": IMAGE_TAG,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "BIND_HOST": "127.0.0.1",
        "API_PORT": str(free_port()),
        "UI_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
        "START_TIMEOUT": "240",
        "NO_COLOR": "1",
    }
    for name in ("MODEL_V1_WEIGHT", "MODEL_V2_WEIGHT", "API_WORKERS"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="package")
def built_images(base_images: dict[str, str], stack_env: dict[str, str]) -> dict[str, int]:
    """The project's images built as IMAGE_TAG by the project's own script; their sizes."""
    stack = Stack(stack_env)
    started = time.monotonic()
    stack.must("run_demo.sh", "build", timeout=1800)
    MEASURED["project images build (s)"] = round(time.monotonic() - started, 1)
    sizes = {}
    for image in IMAGES:
        size = int(docker("image", "inspect", "--format", "{{.Size}}", f"{image}:{IMAGE_TAG}").stdout)
        sizes[image] = size
        MEASURED[f"{image} size (MB)"] = round(size / 1e6, 1)
    return sizes


@pytest.fixture(scope="package")
def stack(built_images: dict[str, int], stack_env: dict[str, str]) -> Iterator[Stack]:
    """The whole stack up through ``RUN_MODE=docker ./run_demo.sh``; stopped, its volumes removed, after."""
    running = Stack(stack_env)
    leftovers = running.project_containers()
    if leftovers:  # a run killed before its teardown
        running.must("run_demo.sh", "stop")
    started = time.monotonic()
    running.must("run_demo.sh", timeout=600)
    MEASURED["stack start, images built (s)"] = round(time.monotonic() - started, 1)
    try:
        yield running
    finally:
        running.script("run_demo.sh", "stop")
        volumes = docker("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}")
        for volume in volumes.stdout.split():
            docker("volume", "rm", volume, check=False)
