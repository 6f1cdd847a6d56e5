"""gunicorn settings for the API, shared by run_demo.sh (native) and the container image.

    gunicorn -c docker/gunicorn.conf.py 'app.flask_app:create_app()'

PROMETHEUS_MULTIPROC_DIR must be set and emptied by the launching script before gunicorn
starts; never from Python (prometheus_client multiprocess docs).
"""

import gc
import os
import sys
from pathlib import Path

from prometheus_client import multiprocess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for app.settings

from app.settings import Settings  # noqa: E402 - after the path is set

settings = Settings.from_env()  # invalid settings stop gunicorn here, before any worker starts

bind = f"{settings.api_host}:{settings.api_port}"
workers = settings.api_workers
# gthread keeps client connections alive, which matters for throughput behind a load balancer.
worker_class = "gthread"
threads = settings.api_threads
keepalive = 5
timeout = 30
graceful_timeout = 20
preload_app = False  # each worker builds its own app: threads and SQLite connections after fork
accesslog = settings.api_access_log
errorlog = "-"
loglevel = settings.log_level


def post_worker_init(worker):
    """Freeze what start-up allocated (models, libraries): full collections then skip it."""
    gc.collect()
    gc.freeze()


def worker_exit(server, worker):
    """Flush the worker's prediction log before it goes (clean shutdown loses nothing)."""
    app = getattr(worker, "wsgi", None)
    service = getattr(app, "extensions", {}).get("mlops") if app is not None else None
    if service is not None:
        service.close()


def child_exit(server, worker):
    """Let prometheus_client drop the dead worker's live gauges (master side)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
