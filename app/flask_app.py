"""The HTTP API: an app factory, thin handlers over ``Service``, and one error path to JSON.

    gunicorn -c docker/gunicorn.conf.py 'app.flask_app:create_app()'
"""

from __future__ import annotations

import atexit
import hmac
import json
import logging
import os
import time
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from app import metrics
from app.errors import ApiError, BadRequest, Forbidden, ModelUnavailable, NotFound, Unauthorized
from app.openapi import openapi_document
from app.service import Service, iso, parse_since, utc_now
from app.settings import Settings
from app.store import StoreUnavailable
from app.validation import parse_json, parse_label, parse_predict, require_object

log = logging.getLogger(__name__)

EXTENSION = "mlops"


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the API from settings (default: the environment, then ``overrides``)."""
    settings = settings.with_overrides(**overrides) if settings else Settings.from_env(**overrides)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    service = Service(settings)
    app.extensions[EXTENSION] = service
    atexit.register(service.close)
    _register_errors(app)
    _register_routes(app, service)
    served_by = str(os.getpid())

    @app.after_request
    def name_the_worker(response: Response) -> Response:
        # Which worker answered: lets operators (and tests) see how load spreads.
        response.headers["X-Served-By"] = served_by
        return response

    return app


def service_of(app: Flask) -> Service:
    """The Service attached to an app built by create_app."""
    return app.extensions[EXTENSION]


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def _json(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(_ENCODER.encode(body), status=status, mimetype="application/json", headers=headers)


def _register_errors(app: Flask) -> None:
    """Every error, ours or werkzeug's, leaves as {"error": ...} with its status; never a traceback."""

    def answer(status: int, body: dict, headers: dict | None = None) -> Response:
        if request.endpoint == "predict" and status >= 400:
            metrics.PREDICTION_ERRORS.labels(str(status)).inc()
        return _json(body, status, headers)

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="mlops"'} if exc.status_code == 401 else None
        return answer(exc.status_code, exc.to_dict(), headers)

    @app.errorhandler(StoreUnavailable)
    def store_error(exc: StoreUnavailable) -> Response:
        log.error("state store unavailable: %s", exc)
        return answer(503, {"error": "state store unavailable, try again shortly"})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        messages = {
            404: f"no such endpoint: {request.method} {request.path}",
            405: f"method {request.method} is not allowed on {request.path}",
            413: f"request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes",
        }
        return answer(exc.code or 500, {"error": messages.get(exc.code or 0, exc.description or exc.name)})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return answer(500, {"error": "internal error; see the server log"})


def _require_admin(service: Service) -> None:
    token = service.settings.admin_token
    if not token:
        raise Forbidden("admin endpoints are disabled: start the API with ADMIN_TOKEN set")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("missing or wrong admin token: send 'Authorization: Bearer <ADMIN_TOKEN>'")


def _body() -> Any:
    try:
        data = request.get_data(cache=False)
    except HTTPException:
        raise
    except Exception:  # noqa: BLE001 - the server's body reader failed (e.g. a malformed chunked body)
        raise BadRequest("could not read the request body") from None
    return parse_json(data)


def _config_body(service: Service) -> dict:
    exp = service.experiment
    body: dict = {f"model_{v}_weight": w for v, w in exp.weights.items()}
    body["total_weight"] = sum(exp.weights.values())
    body["weights"] = dict(exp.weights)
    body["experiment"] = {"id": exp.id, "started_at": iso(exp.started_at), "source": exp.source}
    body["sticky"] = {"body_field": "user_id", "header": "X-User-ID"}
    return body


def _register_routes(app: Flask, service: Service) -> None:
    @app.post("/predict")
    def predict() -> Response:
        started = time.perf_counter()
        metrics.PREDICTION_REQUESTS.inc()
        state = service.state  # one snapshot: validation and prediction see the same models
        if not state.models.versions:
            raise ModelUnavailable("no model is loaded; see GET /health")
        req = parse_predict(_body(), state.models.feature_names, service.settings.max_batch,
                            request.headers.get("X-User-ID"))
        result = service.predict(req, started, state)
        if req.batch:
            body = {
                "predictions": result.classes,
                "class_names": result.class_names,
                "probabilities": result.probabilities,
                "prediction_ids": result.prediction_ids,
                "model_version": result.version,
                "timestamp": result.timestamp,
                "latency_ms": result.latency_ms,
            }
        else:
            body = {
                "prediction": result.classes[0],
                "class_name": result.class_names[0],
                "probabilities": result.probabilities[0],
                "model_version": result.version,
                "prediction_id": result.prediction_ids[0],
                "timestamp": result.timestamp,
                "latency_ms": result.latency_ms,
            }
        return _json(body, headers={"X-Model-Version": result.version})

    @app.get("/health")
    def health() -> Response:
        state = service.state
        models = state.models
        routable = any(state.router.share(v) > 0 for v in models.versions)
        body = {
            "status": models.status if routable else "unhealthy",
            "timestamp": utc_now(),
            "models_loaded": bool(models.versions),
            "backend": service.settings.predict_backend,
            "models": {
                v: {
                    "sha256": lv.sha256,
                    "accuracy": lv.meta.get("accuracy"),
                    "n_estimators": lv.meta.get("params", {}).get("n_estimators"),
                }
                for v, lv in models.versions.items()
            },
        }
        errors = dict(models.failed)
        if models.versions and not routable:
            errors["router"] = f"no loaded version has a weight above 0 (weights {state.experiment.weights})"
        if errors:
            body["errors"] = errors
        return _json(body, 200 if routable else 503)

    @app.get("/config")
    def get_config() -> Response:
        return _json(_config_body(service))

    @app.put("/config")
    def put_config() -> Response:
        _require_admin(service)
        body = require_object(_body())
        if set(body) != {"weights"}:
            raise BadRequest('send {"weights": {"v1": 90, "v2": 10}}')
        service.set_weights(body["weights"])
        return _json(_config_body(service))

    @app.get("/models")
    def models() -> Response:
        models = service.models
        if not models.manifest:
            raise ModelUnavailable("no model manifest is loaded; see GET /health")
        return _json({**models.manifest, "loaded": sorted(models.versions), "failed": models.failed})

    @app.post("/models/reload")
    def reload_models() -> Response:
        _require_admin(service)
        result = service.reload()
        return _json(result, 200 if result["models"] else 503)

    @app.get("/drift")
    def drift() -> Response:
        return _json(service.drift())

    @app.post("/feedback")
    def feedback() -> Response:
        body = require_object(_body())
        class_names = service.models.class_names
        if "feedback" in body:
            items = body["feedback"]
            if set(body) != {"feedback"} or not isinstance(items, list) or not items:
                raise BadRequest('send {"feedback": [{"prediction_id": "...", "label": 2}, ...]}')
            if len(items) > service.settings.max_batch:
                raise BadRequest(f"'feedback' has {len(items)} items; the limit is {service.settings.max_batch}")
            parsed = [_feedback_item(item, class_names, f"feedback[{i}]") for i, item in enumerate(items)]
            results = service.feedback(parsed)
            missing = [pid for (pid, _), r in zip(parsed, results) if r is None]
            return _json({"results": [r for r in results if r is not None], "not_found": missing,
                          "accepted": len(parsed) - len(missing)})
        pid, label = _feedback_item(body, class_names, "body")
        result = service.feedback([(pid, label)])[0]
        if result is None:
            raise NotFound(f"no prediction with id {pid!r}")
        return _json(result)

    @app.get("/ab/report")
    def ab_report() -> Response:
        raw = request.args.get("since")
        try:
            since = parse_since(raw) if raw else None
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return _json(service.ab_report(since))

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        body, content_type = metrics.render(metrics.StateCollector(service.metrics_snapshot))
        return Response(body, content_type=content_type)

    @app.get("/openapi.json")
    def openapi() -> Response:
        return _json(openapi_document())

    @app.get("/")
    def index() -> Response:
        return _json({
            "service": "mlops-pipeline",
            "endpoints": sorted(str(rule) for rule in app.url_map.iter_rules() if rule.endpoint != "static"),
            "docs": "/openapi.json",
        })


def _feedback_item(item: Any, class_names: list[str], where: str) -> tuple[str, int]:
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object with prediction_id and label")
    unknown = set(item) - {"prediction_id", "label"}
    if unknown:
        raise BadRequest(f"{where}: unknown field(s) {', '.join(sorted(map(repr, unknown)))}")
    pid = item.get("prediction_id")
    if not isinstance(pid, str) or not 0 < len(pid) <= 64:
        raise BadRequest(f"{where}: prediction_id must be the id string returned by /predict")
    if "label" not in item:
        raise BadRequest(f"{where}: label is missing")
    return pid, parse_label(item["label"], class_names, f"{where}: label")
