#!/usr/bin/env bash
# Container entrypoint for the prediction API (docker/Dockerfile.api).
# prometheus_client's multiprocess mode keeps one file per worker pid in
# PROMETHEUS_MULTIPROC_DIR; files left over from a previous container run would
# be summed into the new counters, so the directory is emptied here, before
# gunicorn (and any Python) starts.
set -euo pipefail

reset_multiproc_dir() {
    : "${PROMETHEUS_MULTIPROC_DIR:?PROMETHEUS_MULTIPROC_DIR must be set}"
    rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
}

main() {
    cd /app
    reset_multiproc_dir
    exec gunicorn -c docker/gunicorn.conf.py 'app.flask_app:create_app()'
}

main "$@"
