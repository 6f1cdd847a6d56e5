"""The API's entry point, where the seeds put it. The app is built by ``app.api.create_app``.

gunicorn -c docker/gunicorn.conf.py 'app.flask_app:create_app()'
gunicorn -c docker/gunicorn.conf.py app.flask_app:app      # the same, as a module attribute
"""

from __future__ import annotations

from typing import Any

from app.api import create_app, service_of

__all__ = ["create_app", "service_of"]


def __getattr__(name: str) -> Any:
    # ``app.flask_app:app`` builds the app on first access, not at import: importing this module
    # must not load models or start threads.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
