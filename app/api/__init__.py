"""The HTTP API: the app factory, one blueprint per concern, one error path to JSON.

The blueprints only parse (``app.api.validation``), call one method of the worker's ``Service`` and
shape the answer; everything else lives in the serving core.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from app.api import admin, auth, experiments, meta, monitoring, predict, rollouts, v2
from app.api.errors import register_error_handlers
from app.api.http import EXTENSION, register_request_checks
from app.serving.service import Service
from app.settings import Settings

BLUEPRINTS = (predict.bp, v2.bp, admin.bp, monitoring.bp, experiments.bp, rollouts.bp, meta.bp)


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the API from settings (default: the environment), then ``overrides``, and start its service.

    Whoever builds the app stops the service: gunicorn's ``worker_exit`` hook, or a test's fixture
    (``service_of(app).stop()``).
    """
    settings = settings.with_overrides(**overrides) if settings else Settings.from_env(**overrides)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask("app")
    if settings.proxy_hops:
        # The front door sets X-Forwarded-For: the client address is the one it saw, not the proxy's.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)  # type: ignore[method-assign]
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    service = Service(settings)
    app.extensions[EXTENSION] = service
    register_error_handlers(app)
    register_request_checks(app, settings)  # first: before any blueprint's hooks
    auth.init_app(app, settings)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    served_by = str(os.getpid())

    @app.after_request
    def name_the_worker(response: Response) -> Response:
        # Which worker answered: lets operators (and tests) see how load spreads.
        response.headers["X-Served-By"] = served_by
        return response

    service.start()
    return app


def service_of(app: Flask) -> Service:
    """The Service attached to an app built by create_app."""
    service: Service = app.extensions[EXTENSION]
    return service
