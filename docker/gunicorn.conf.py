"""gunicorn settings for the API, shared by run_demo.sh (native) and the container image.

    gunicorn -c docker/gunicorn.conf.py 'app.flask_app:create_app()'

The project must be installed (./install.sh, or pip install . in the image): nothing here edits sys.path.

PROMETHEUS_MULTIPROC_DIR must be set and emptied by the launching script before gunicorn
starts; never from Python (prometheus_client multiprocess docs).
"""

import gc
import os

from prometheus_client import multiprocess

from app.settings import Settings

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
    """Stop the worker's service: its prediction log is flushed before it goes (clean shutdown loses nothing)."""
    from app.api import service_of

    app = getattr(worker, "wsgi", None)
    if app is not None:
        service_of(app).stop()


def child_exit(server, worker):
    """Let prometheus_client drop the dead worker's live gauges (master side)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
