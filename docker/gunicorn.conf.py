"""gunicorn settings for the API, shared by run_demo.sh (native) and the container image.

    gunicorn -c docker/gunicorn.conf.py 'app.flask_app:create_app()'

PROMETHEUS_MULTIPROC_DIR must be set and emptied by the launching script before gunicorn
starts; never from Python (prometheus_client multiprocess docs).
"""

import gc
import os

from prometheus_client import multiprocess

bind = f"{os.environ.get('API_HOST', '127.0.0.1')}:{os.environ.get('API_PORT', '5000')}"
workers = int(os.environ.get("API_WORKERS") or os.cpu_count() or 2)
# gthread keeps client connections alive, which matters for throughput behind a load balancer.
worker_class = "gthread"
threads = int(os.environ.get("API_THREADS", "1"))
keepalive = 5
timeout = 30
graceful_timeout = 20
preload_app = False  # each worker builds its own app: threads and SQLite connections after fork
accesslog = os.environ.get("API_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")


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
