"""Fixtures: a trained model set, settings with a temp store, the service, the app, real gunicorn servers."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.api import create_app, service_of
from app.serving.service import Service
from app.settings import Settings
from app.training.datasets import load_iris_dataset
from app.training.trainer import train
from tests.helpers import MEASURED, ApiServer, PostgresServer, start_api, throwaway_postgres


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
        admin_token="test-admin-token-0123456789",
        log_flush_seconds=0.05,
        state_poll_seconds=0.1,
    )


@pytest.fixture
def service(settings) -> Iterator[Service]:
    """The serving core alone, started, without HTTP; stopped at teardown."""
    core = Service(settings)
    core.start()
    yield core
    core.stop()


@pytest.fixture
def app(settings) -> Iterator[Flask]:
    """The Flask app built by the factory; its service is stopped afterwards."""
    application = create_app(settings)
    yield application
    service_of(application).stop()


@pytest.fixture
def client(app) -> FlaskClient:
    """A Flask test client."""
    return app.test_client()


@pytest.fixture
def make_app(settings) -> Iterator[Callable[..., Flask]]:
    """Build apps with some settings changed (``make_app(max_batch=5)``); all are stopped at teardown."""
    built: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        application = create_app(settings.with_overrides(**overrides))
        built.append(application)
        return application

    yield build
    for application in built:
        service_of(application).stop()


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


_INTEGRATION_DIRS = ("integration", "deploy", "containers")
_CONTAINER_TEST_TIMEOUT = 2400  # seconds


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration, tests/deploy and tests/containers starts real servers or tools: mark it
    integration; tests/containers also ``containers`` (a Docker engine, the images built, the stack up)."""
    for item in items:
        folder = Path(item.path).parent.name
        if folder in _INTEGRATION_DIRS:
            item.add_marker(pytest.mark.integration)
        if folder == "containers":
            # The first test of the package also builds the stand-in bases and the images: minutes when cold.
            item.add_marker(pytest.mark.containers)
            item.add_marker(pytest.mark.timeout(_CONTAINER_TEST_TIMEOUT))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures tests measured on the way (build times, image sizes, a deploy's outage), for the record."""
    if MEASURED:
        terminalreporter.section("figures measured by the tests")
        for name, value in MEASURED.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the run; tests take fresh databases from it."""
    with throwaway_postgres() as server:
        yield server
