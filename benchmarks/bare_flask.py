"""The framework floor: a bare Flask app whose POST /predict returns a constant small JSON body.

Served by the same gunicorn config as the API, so the throughput gap to the real service is
exactly our work per request (parsing, routing, inference, logging, metrics)::

    gunicorn -c docker/gunicorn.conf.py 'benchmarks.bare_flask:create_app()'
"""

from __future__ import annotations

from flask import Flask, Response

BODY = b'{"prediction": 0, "class_name": "setosa", "model_version": "v1"}'


def create_app() -> Flask:
    """A Flask app with one POST /predict route answering a constant JSON body."""
    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> Response:
        return Response(BODY, mimetype="application/json")

    return app
