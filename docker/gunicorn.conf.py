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
# The API sits behind the nginx front door (docker/nginx/frontdoor.conf.template), which reads every
# request completely before it sends it on, and reads every response at once: a gunicorn thread only
# ever waits for CPU, never for a client. So threads are for the handlers that wait on something of
# their own (a SQLite lock, a report), not for client I/O; see API_THREADS in app/settings.py for the
# sizing and the measurements behind it. gthread keeps nginx's pooled connections open between requests
# without holding a thread.
worker_class = "gthread"
threads = settings.api_threads
# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads new connections over them.
# With one shared socket, whichever worker's accept loop wins takes the connection, and nginx's pool of
# kept-alive upstream connections ended up mostly on one worker (measured: 400 vs 1 CPU ticks over a
# 5 s run), capping throughput at one core.
reuse_port = True
# Longer than nginx's upstream keepalive_timeout (60 s): nginx, not gunicorn, closes an idle pooled
# connection, so a request is never written to a connection gunicorn is closing (nginx does not retry
# a POST on another connection).
keepalive = 75
timeout = 30
graceful_timeout = 20
preload_app = False  # each worker builds its own app: threads and SQLite connections after fork
accesslog = settings.api_access_log
errorlog = "-"
loglevel = settings.log_level
# The master creates and migrates the database once (on_starting); its workers only open it, so a
# worker respawned after the file was deleted never creates a second, empty one.
raw_env = ["STORE_CREATE=false"]


def on_starting(server):
    """Create the state store (0600) and apply its migrations, once, before any worker starts."""
    from app.store import StoreUnavailable, open_store

    if settings.store_create:
        try:
            open_store(settings.database_url, busy_timeout=settings.store_busy_timeout, create=True).close()
        except StoreUnavailable as exc:
            server.log.error("state store not prepared: %s (workers serve and report it degraded)", exc)


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
