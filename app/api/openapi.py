"""The OpenAPI 3.1 description of every endpoint (served at /openapi.json, checked by the tests)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

Schema = dict[str, Any]
"""A JSON object of the document (a schema, an operation, a response)."""

NUMBER_OR_NULL: Schema = {"type": ["number", "null"]}
ERROR: Schema = {"$ref": "#/components/schemas/Error"}


def _ref(name: str) -> Schema:
    """A reference to one of the component schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


def _json_response(description: str, schema: Schema) -> Schema:
    """A response with a JSON body of this schema."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _json_body(schema_name: str) -> Schema:
    """A required JSON request body of the named component schema."""
    return {"required": True, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _errors(*codes: int) -> Schema:
    """The {"error": ...} responses for these status codes."""
    text = {
        400: "Invalid input",
        401: "Missing or wrong admin token",
        403: "Admin endpoints disabled",
        404: "Not found",
        409: "Conflicts with the state it would change",
        413: "Body too large",
        415: "Body is not application/json",
        429: "Too many failed admin attempts from this address (see Retry-After)",
        503: "Unavailable",
    }
    return {str(c): _json_response(text[c], ERROR) for c in codes}


ROW: Schema = {
    "oneOf": [
        {"type": "array", "items": {"type": "number"}, "minItems": 1},
        {"type": "object", "additionalProperties": {"type": "number"}},
    ]
}

TENSOR_DATA: Schema = {"type": "array", "description": "Row-major values, flat or nested"}
V2_PARAMETERS: Schema = {"type": "object"}

SCHEMAS: dict[str, Schema] = {
    "V2ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V2Tensor": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "parameters": V2_PARAMETERS,
            "data": TENSOR_DATA,
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2Tensor"}},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2Tensor"}},
            "parameters": V2_PARAMETERS,
        },
    },
    "V2InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "description": "One FP32/FP64/INT32/INT64 tensor [N, n_features], or one [N] tensor per feature "
        "named after it; parameters.user_id for sticky routing, parameters.binary_data_output for binary "
        "outputs. With Inference-Header-Content-Length, binary tensors follow the JSON.",
        "properties": {
            "id": {"type": "string"},
            "parameters": V2_PARAMETERS,
            "inputs": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/V2Tensor"}},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"enum": ["predict", "predict_proba", "prediction_id", "feedback_token"]},
                        "parameters": V2_PARAMETERS,
                    },
                },
            },
        },
    },
    "V2InferResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2Tensor"}},
        },
    },
    "V2Ready": {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}, "name": {"type": "string"}, "version": {"type": "string"}},
    },
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "PredictRequest": {
        "type": "object",
        "properties": {
            "features": ROW,
            "instances": {"type": "array", "items": ROW, "minItems": 1},
            "user_id": {"type": ["string", "integer"]},
        },
        "additionalProperties": False,
    },
    "Prediction": {
        "type": "object",
        "required": [
            "prediction",
            "class_name",
            "probabilities",
            "model_version",
            "prediction_id",
            "timestamp",
            "latency_ms",
        ],
        "properties": {
            "prediction": {"type": "integer"},
            "class_name": {"type": "string"},
            "probabilities": {"type": "array", "items": {"type": "number"}},
            "model_version": {"type": "string"},
            "prediction_id": {"type": "string", "format": "uuid"},
            "feedback_token": {"type": "string", "description": "Send it with the label to /feedback"},
            "timestamp": {"type": "string", "format": "date-time"},
            "latency_ms": {"type": "number"},
        },
    },
    "BatchPrediction": {
        "type": "object",
        "required": [
            "predictions",
            "class_names",
            "probabilities",
            "prediction_ids",
            "model_version",
            "timestamp",
            "latency_ms",
        ],
        "properties": {
            "predictions": {"type": "array", "items": {"type": "integer"}},
            "class_names": {"type": "array", "items": {"type": "string"}},
            "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "prediction_ids": {"type": "array", "items": {"type": "string"}},
            "feedback_tokens": {"type": "array", "items": {"type": "string"}},
            "model_version": {"type": "string"},
            "timestamp": {"type": "string"},
            "latency_ms": {"type": "number"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "timestamp", "models_loaded", "models"],
        "properties": {
            "status": {"enum": ["healthy", "degraded", "unhealthy"]},
            "timestamp": {"type": "string"},
            "models_loaded": {"type": "boolean"},
            "backend": {"enum": ["fast", "sklearn"]},
            "models": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["sha256", "accuracy", "n_estimators", "batch_backend"],
                    "properties": {
                        "sha256": {"type": "string"},
                        "accuracy": NUMBER_OR_NULL,
                        "n_estimators": {"type": ["integer", "null"]},
                        "batch_backend": {"enum": ["tl2cgen", "numpy", "sklearn"]},
                    },
                },
            },
            "errors": {"type": "object", "additionalProperties": {"type": "string"}},
            "store": {
                "type": "object",
                "required": ["status", "unwritten_rows"],
                "properties": {
                    "status": {"enum": ["ok", "unavailable"]},
                    "unwritten_rows": {"type": "integer", "minimum": 0},
                    "error": {"type": ["string", "null"]},
                    "since": {"type": ["string", "null"]},
                },
            },
        },
    },
    "Config": {
        "type": "object",
        "required": ["total_weight", "weights", "experiment"],
        "properties": {
            "total_weight": {"type": "integer"},
            "weights": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
            "experiment": {
                "type": "object",
                "required": ["id", "started_at", "source"],
                "properties": {
                    "id": {"type": "integer"},
                    "started_at": {"type": "string"},
                    "source": {"type": "string"},
                },
            },
            "sticky": {"type": "object"},
            "shadow": {"type": "array", "items": {"type": "string"}},
            "policy": {"type": "object", "required": ["name"], "properties": {"name": {"enum": ["fixed", "thompson"]}}},
        },
        "patternProperties": {"^model_.+_weight$": {"type": "integer"}},
    },
    "ConfigUpdate": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "weights": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
            "shadow": {"type": "array", "items": {"type": "string"}, "maxItems": 5, "uniqueItems": True},
            "policy": {"enum": ["fixed", "thompson"]},
            "min_share": {"type": "number", "minimum": 0, "maximum": 0.5},
        },
    },
    "RolloutPlan": {
        "type": "object",
        "required": ["candidate", "baseline", "steps"],
        "additionalProperties": False,
        "properties": {
            "candidate": {"type": "string"},
            "baseline": {"type": "string"},
            "steps": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 100}, "minItems": 1},
            "min_labels": {"type": "integer", "minimum": 1},
            "margin": {"type": "number", "minimum": 0, "maximum": 1},
            "max_error_rate": {"type": "number", "minimum": 0, "maximum": 1},
            "max_p99_ms": {"type": "number", "exclusiveMinimum": 0},
            "alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
            "max_step_minutes": {"type": ["number", "null"], "minimum": 0.1},
        },
    },
    "Rollout": {
        "type": "object",
        "required": ["id", "state", "step", "weights", "history", "candidate", "baseline", "steps", "plan"],
        "properties": {
            "id": {"type": "integer"},
            "state": {"enum": ["running", "promoted", "rolled_back", "aborted"]},
            "candidate": {"type": "string"},
            "baseline": {"type": "string"},
            "step": {"type": "integer", "minimum": 0},
            "steps": {"type": "array", "items": {"type": "integer"}},
            "share": {"type": "integer"},
            "weights": {"type": "object", "additionalProperties": {"type": "integer"}},
            "experiment_id": {"type": "integer"},
            "plan": {"$ref": "#/components/schemas/RolloutPlan"},
            "started_at": {"type": "string"},
            "updated_at": {"type": "string"},
            "history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["at", "step", "weights", "decision", "reason"],
                    "properties": {
                        "at": {"type": "string"},
                        "step": {"type": "integer"},
                        "weights": {"type": "object"},
                        "decision": {"enum": ["start", "advance", "promote", "rollback", "abort"]},
                        "reason": {"type": "string"},
                        "evidence": {"type": ["object", "null"]},
                        "experiment_id": {"type": "integer"},
                    },
                },
            },
            "evidence": {"type": "object"},
            "next": {"type": "object", "properties": {"decision": {"type": "string"}, "reason": {"type": "string"}}},
        },
    },
    "Manifest": {
        "type": "object",
        "required": ["feature_names", "class_names", "versions", "features"],
        "properties": {
            "feature_names": {"type": "array", "items": {"type": "string"}},
            "class_names": {"type": "array", "items": {"type": "string"}},
            "features": {"type": "object"},
            "versions": {"type": "object", "additionalProperties": {"type": "object", "required": ["file", "sha256"]}},
            "loaded": {"type": "array", "items": {"type": "string"}},
            "failed": {"type": "object"},
        },
    },
    "ReloadResult": {
        "type": "object",
        "required": ["status", "generation", "models", "reloaded", "failed", "kept_previous"],
        "properties": {
            "status": {"enum": ["healthy", "degraded", "unhealthy"]},
            "generation": {"type": "integer"},
            "models": {"type": "object", "additionalProperties": {"type": "string"}},
            "reloaded": {"type": "array", "items": {"type": "string"}},
            "failed": {"type": "object", "additionalProperties": {"type": "string"}},
            "kept_previous": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Drift": {
        "type": "object",
        "required": [
            "drift_score",
            "threshold",
            "drift_detected",
            "status",
            "window_size",
            "samples",
            "features",
            "timestamp",
        ],
        "properties": {
            "drift_score": {"type": "number", "minimum": 0, "maximum": 1},
            "threshold": {"type": "number"},
            "drift_detected": {"type": "boolean"},
            "status": {"enum": ["OK", "WARNING", "INSUFFICIENT_DATA"]},
            "window_size": {"type": "integer"},
            "samples": {"type": "integer"},
            "timestamp": {"type": "string"},
            "features": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["test", "statistic", "p_value", "psi", "mean_shift_sd", "drifted"],
                    "properties": {
                        "test": {"type": "string"},
                        "statistic": {"type": "number"},
                        "p_value": {"type": "number"},
                        "p_value_adjusted": {"type": "number"},
                        "psi": {"type": "number"},
                        "mean_shift_sd": {"type": "number"},
                        "drifted": {"type": "boolean"},
                    },
                },
            },
        },
    },
    "FeedbackRequest": {
        "oneOf": [
            {"$ref": "#/components/schemas/FeedbackItem"},
            {
                "type": "object",
                "required": ["feedback"],
                "properties": {"feedback": {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackItem"}}},
            },
        ]
    },
    "FeedbackItem": {
        "type": "object",
        "required": ["prediction_id", "label"],
        "properties": {
            "prediction_id": {"type": "string"},
            "label": {"type": ["integer", "string"]},
            "feedback_token": {"type": "string", "description": "From the prediction's answer; not needed by admins"},
        },
    },
    "FeedbackQueued": {
        "type": "object",
        "required": ["prediction_id", "label", "status"],
        "properties": {
            "prediction_id": {"type": "string"},
            "label": {"type": "integer"},
            "status": {"const": "queued"},
        },
    },
    "FeedbackRejected": {
        "type": "object",
        "required": ["prediction_id", "error"],
        "properties": {"prediction_id": {"type": "string"}, "error": {"type": "string"}},
    },
    "FeedbackResult": {
        "type": "object",
        "required": ["prediction_id", "model_version", "prediction", "label", "correct"],
        "properties": {
            "prediction_id": {"type": "string"},
            "model_version": {"type": "string"},
            "prediction": {"type": "integer"},
            "label": {"type": "integer"},
            "correct": {"type": "boolean"},
            "corrected": {"type": "boolean"},
        },
    },
    "FeedbackBatchResult": {
        "type": "object",
        "required": ["results", "not_found", "accepted", "queued", "rejected"],
        "properties": {
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackResult"}},
            "not_found": {"type": "array", "items": {"type": "string"}},
            "accepted": {"type": "integer"},
            "queued": {"type": "array", "items": {"type": "string"}},
            "rejected": {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackRejected"}},
        },
    },
    "Variant": {
        "type": "object",
        "required": [
            "weight",
            "expected_share",
            "requests",
            "observed_share",
            "labeled",
            "correct",
            "accuracy",
            "accuracy_ci95",
            "latency_p50_ms",
            "latency_p95_ms",
        ],
        "properties": {
            "weight": {"type": "integer"},
            "expected_share": {"type": "number"},
            "requests": {"type": "integer"},
            "observed_share": NUMBER_OR_NULL,
            "labeled": {"type": "integer"},
            "correct": {"type": "integer"},
            "accuracy": NUMBER_OR_NULL,
            "accuracy_ci95": {"type": ["array", "null"], "items": {"type": "number"}},
            "latency_p50_ms": NUMBER_OR_NULL,
            "latency_p95_ms": NUMBER_OR_NULL,
        },
    },
    "Comparison": {
        "type": "object",
        "required": ["baseline", "challenger", "accuracy_diff", "p_value", "significant", "method"],
        "properties": {
            "baseline": {"type": "string"},
            "challenger": {"type": "string"},
            "accuracy_diff": NUMBER_OR_NULL,
            "p_value": NUMBER_OR_NULL,
            "p_value_adjusted": NUMBER_OR_NULL,
            "significant": {"type": "boolean"},
            "method": {"type": ["string", "null"]},
            "samples_needed_per_variant": {"type": ["integer", "null"]},
            "additional_samples_needed": {"type": ["integer", "null"]},
            "winner": {"type": ["string", "null"]},
        },
    },
    "ABReport": {
        "type": "object",
        "required": [
            "experiment",
            "since",
            "baseline",
            "variants",
            "comparison",
            "comparisons",
            "srm",
            "recommendation",
        ],
        "properties": {
            "experiment": {"type": "object", "required": ["id", "started_at", "weights"]},
            "since": {"type": "string"},
            "since_clamped": {"type": "boolean"},
            "generated_at": {"type": "string"},
            "baseline": {"type": ["string", "null"]},
            "alpha": {"type": "number"},
            "variants": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Variant"}},
            "comparison": {"oneOf": [{"$ref": "#/components/schemas/Comparison"}, {"type": "null"}]},
            "comparisons": {"type": "array", "items": {"$ref": "#/components/schemas/Comparison"}},
            "srm": {
                "type": "object",
                "required": ["p_value", "mismatch", "applicable"],
                "properties": {
                    "p_value": NUMBER_OR_NULL,
                    "mismatch": {"type": "boolean"},
                    "applicable": {"type": "boolean"},
                    "note": {"type": "string"},
                },
            },
            "allocation": {
                "type": ["array", "null"],
                "description": "Under the Thompson policy: each of its periods with the shares it configured and "
                "served (each version's share over time); null under fixed weights",
                "items": {"type": "object", "required": ["experiment_id", "started_at", "weights", "configured_share"]},
            },
            "shadow": {
                "type": "object",
                "description": "Each shadow version on the rows it scored: agreement with what was served, and "
                "accuracy against the served versions' on the same labelled rows (McNemar's exact test)",
                "additionalProperties": {
                    "type": "object",
                    "required": ["requests", "agreement", "labeled", "accuracy", "served_accuracy", "p_value"],
                    "properties": {
                        "requests": {"type": "integer"},
                        "agreement": NUMBER_OR_NULL,
                        "labeled": {"type": "integer"},
                        "accuracy": NUMBER_OR_NULL,
                        "served_accuracy": NUMBER_OR_NULL,
                        "accuracy_diff": NUMBER_OR_NULL,
                        "p_value": {"type": "number"},
                    },
                },
            },
            "recommendation": {"type": "string"},
        },
    },
    "Period": {
        "type": "object",
        "required": ["id", "started_at", "ended_at", "weights", "shares", "source", "shadow", "policy"],
        "properties": {
            "id": {"type": "integer"},
            "started_at": {"type": "string", "format": "date-time"},
            "ended_at": {"type": ["string", "null"], "description": "null for the period in force"},
            "weights": {"type": "object", "additionalProperties": {"type": "integer"}},
            "shares": {"type": "object", "additionalProperties": {"type": "number"}},
            "source": {"type": "string"},
            "shadow": {"type": "array", "items": {"type": "string"}},
            "policy": {"type": ["object", "null"]},
        },
    },
    "TimelinePoint": {
        "type": "object",
        "description": "One version at one (period ∩ hour) slice: the slice's own requests and share of the routed "
        "requests; labels, correct labels, accuracy and intervals counted from since to the slice's end (at)",
        "required": ["at", "experiment_id", "requests", "labeled", "correct", "share", "accuracy", "ci95", "cs"],
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "experiment_id": {"type": "integer"},
            "requests": {"type": "integer", "minimum": 0},
            "labeled": {"type": "integer", "minimum": 0},
            "correct": {"type": "integer", "minimum": 0},
            "share": NUMBER_OR_NULL,
            "accuracy": NUMBER_OR_NULL,
            "ci95": {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            "cs": {
                "type": ["array", "null"],
                "items": {"type": "number"},
                "minItems": 2,
                "maxItems": 2,
                "description": "Always-valid 95% confidence sequence",
            },
        },
    },
    "Timeline": {
        "type": "object",
        "required": ["generated_at", "since", "alpha", "periods", "versions", "shadow"],
        "properties": {
            "generated_at": {"type": "string", "format": "date-time"},
            "since": {"type": "string", "format": "date-time"},
            "alpha": {"type": "number"},
            "periods": {"type": "array", "items": {"$ref": "#/components/schemas/Period"}},
            "versions": {
                "type": "object",
                "description": "Per version, at most 2,000 points (the newest), oldest first",
                "additionalProperties": {"type": "array", "items": {"$ref": "#/components/schemas/TimelinePoint"}},
            },
            "shadow": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"$ref": "#/components/schemas/TimelinePoint"}},
            },
        },
    },
    "DriftHistory": {
        "type": "object",
        "required": ["threshold", "window_size", "windows", "timestamp"],
        "properties": {
            "threshold": {"type": "number"},
            "window_size": {"type": "integer"},
            "timestamp": {"type": "string"},
            "windows": {
                "type": "array",
                "description": "Oldest first; windows never share a row",
                "items": {
                    "type": "object",
                    "required": ["start", "end", "rows", "drift_score", "drift_detected", "status", "features"],
                    "properties": {
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                        "rows": {"type": "integer", "minimum": 1},
                        "drift_score": {"type": "number", "minimum": 0, "maximum": 1},
                        "drift_detected": {"type": "boolean"},
                        "status": {"enum": ["OK", "WARNING"]},
                        "features": {"$ref": "#/components/schemas/Drift/properties/features"},
                    },
                },
            },
        },
    },
}

ADMIN: list[dict[str, list[str]]] = [{"bearerAuth": []}]


@lru_cache(maxsize=1)
def openapi_document() -> Schema:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MLOps model-serving API",
            "version": "1.0.0",
            "description": "A/B-routed scikit-learn models with metrics, drift detection and feedback. "
            "POST and PUT bodies must be application/json (else 415; V2 infer also takes application/octet-stream "
            "or no Content-Type); with ALLOWED_HOSTS set, a request "
            "for another Host gets 400.",
        },
        "paths": {
            "/predict": {"post": _predict()},
            "/health": {"get": _health()},
            "/config": {"get": _get_config(), "put": _put_config()},
            "/models": {"get": _models()},
            "/models/reload": {"post": _reload_models()},
            "/drift": {"get": _drift()},
            "/drift/history": {"get": _drift_history()},
            "/feedback": {"post": _feedback()},
            "/ab/report": {"get": _ab_report()},
            "/rollouts": {"post": _start_rollout()},
            "/rollouts/current": {"get": _current_rollout(), "delete": _abort_rollout()},
            "/ab/timeline": {"get": _ab_timeline()},
            "/metrics": {"get": _metrics()},
            "/openapi.json": {"get": _openapi()},
            "/": {"get": _index()},
            **_v2_paths(),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


def _predict() -> Schema:
    """POST /predict."""
    return {
        "summary": "Predict one row (features) or a batch (instances); sticky with user_id or X-User-ID",
        "parameters": [{"name": "X-User-ID", "in": "header", "required": False, "schema": {"type": "string"}}],
        "requestBody": _json_body("PredictRequest"),
        "responses": {
            "200": _json_response("The prediction", {"oneOf": [_ref("Prediction"), _ref("BatchPrediction")]}),
            **_errors(400, 413, 415, 503),
        },
    }


def _health() -> Schema:
    """GET /health."""
    return {
        "summary": "Liveness and loaded models",
        "responses": {
            "200": _json_response("Serving", _ref("Health")),
            "503": _json_response("No model loaded", _ref("Health")),
        },
    }


def _get_config() -> Schema:
    """GET /config."""
    return {
        "summary": "Current A/B weights and experiment period",
        "responses": {"200": _json_response("Weights", _ref("Config"))},
    }


def _put_config() -> Schema:
    """PUT /config (admin)."""
    return {
        "summary": "Change the weights, the shadow versions or the routing policy (admin); starts a new period",
        "security": ADMIN,
        "requestBody": _json_body("ConfigUpdate"),
        "responses": {
            "200": _json_response("New configuration", _ref("Config")),
            **_errors(400, 401, 403, 409, 415, 429, 503),
        },
    }


def _models() -> Schema:
    """GET /models."""
    return {
        "summary": "The model manifest",
        "responses": {"200": _json_response("Manifest", _ref("Manifest")), **_errors(503)},
    }


def _reload_models() -> Schema:
    """POST /models/reload (admin)."""
    return {
        "summary": "Reload models from MODELS_DIR in every worker (admin)",
        "security": ADMIN,
        "responses": {
            "200": _json_response("Reload result", _ref("ReloadResult")),
            "503": _json_response("Nothing loaded", _ref("ReloadResult")),
            **_errors(401, 403, 429),
        },
    }


def _drift() -> Schema:
    """GET /drift."""
    return {
        "summary": "Drift of the live window against the training data",
        "responses": {"200": _json_response("Drift report", _ref("Drift")), **_errors(503)},
    }


def _drift_history() -> Schema:
    """GET /drift/history."""
    points = {
        "name": "points",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    }
    return {
        "summary": "Drift of successive windows going back through the prediction log",
        "parameters": [points],
        "responses": {"200": _json_response("Drift windows, oldest first", _ref("DriftHistory")), **_errors(400, 503)},
    }


def _feedback() -> Schema:
    """POST /feedback."""
    return {
        "summary": "Record the true label of a prediction (or a batch of them)",
        "requestBody": _json_body("FeedbackRequest"),
        "responses": {
            "200": _json_response("Recorded", {"oneOf": [_ref("FeedbackResult"), _ref("FeedbackBatchResult")]}),
            "202": _json_response("Queued: applied when the prediction's row is stored", _ref("FeedbackQueued")),
            "403": _json_response("No or wrong feedback_token", _ref("FeedbackRejected")),
            "404": _json_response("No such prediction", _ref("FeedbackRejected")),
            "409": _json_response("Labelled already; relabelling needs the admin token", _ref("FeedbackRejected")),
            **_errors(400, 401, 415, 503),
        },
    }


def _ab_report() -> Schema:
    """GET /ab/report."""
    return {
        "summary": "Which version is better, and how sure we are",
        "parameters": [{"name": "since", "in": "query", "required": False, "schema": {"type": "string"}}],
        "responses": {"200": _json_response("A/B report", _ref("ABReport")), **_errors(400, 503)},
    }


def _start_rollout() -> Schema:
    """POST /rollouts (admin)."""
    return {
        "summary": "Start a canary rollout that promotes or rolls back by itself (admin)",
        "security": ADMIN,
        "requestBody": _json_body("RolloutPlan"),
        "responses": {
            "201": _json_response("Started", _ref("Rollout")),
            **_errors(400, 401, 403, 404, 409, 415, 429, 503),
        },
    }


def _current_rollout() -> Schema:
    """GET /rollouts/current."""
    return {
        "summary": "The latest rollout: state, step, weights, decisions and the live evidence of its step",
        "responses": {"200": _json_response("The rollout", _ref("Rollout")), **_errors(404, 503)},
    }


def _abort_rollout() -> Schema:
    """DELETE /rollouts/current (admin)."""
    return {
        "summary": "Abort the running rollout; the baseline serves all traffic again (admin)",
        "security": ADMIN,
        "responses": {"200": _json_response("Aborted", _ref("Rollout")), **_errors(401, 403, 409, 429, 503)},
    }


def _ab_timeline() -> Schema:
    """GET /ab/timeline."""
    return {
        "summary": "Each version's accuracy and share over time, with the experiment periods",
        "parameters": [{"name": "since", "in": "query", "required": False, "schema": {"type": "string"}}],
        "responses": {"200": _json_response("Timeline", _ref("Timeline")), **_errors(400, 503)},
    }


def _metrics() -> Schema:
    """GET /metrics (Prometheus text, not JSON)."""
    return {
        "summary": "Prometheus metrics",
        "responses": {
            "200": {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    }


def _openapi() -> Schema:
    """GET /openapi.json."""
    return {
        "summary": "This document",
        "responses": {"200": _json_response("OpenAPI document", {"type": "object"})},
    }


def _index() -> Schema:
    """GET /."""
    return {"summary": "Endpoint index", "responses": {"200": _json_response("Index", {"type": "object"})}}


def _v2_paths() -> dict[str, Schema]:
    """The Open Inference Protocol (V2) REST endpoints."""
    model = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    server = {
        "summary": "V2 server metadata",
        "responses": {"200": _json_response("Name, version, extensions", _ref("V2ServerMetadata"))},
    }
    ready: Schema = {
        "200": _json_response("Ready", _ref("V2Ready")),
        "503": _json_response("Not ready", _ref("V2Ready")),
    }
    infer = {
        "summary": "V2 inference: JSON tensors, or the binary tensor data extension "
        "(application/octet-stream or no Content-Type, with Inference-Header-Content-Length)",
        "parameters": [{"name": "X-User-ID", "in": "header", "required": False, "schema": {"type": "string"}}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("V2InferRequest")}, "application/octet-stream": {}},
        },
        "responses": {
            "200": {
                "description": "Output tensors (JSON, or JSON and binary tensors as application/octet-stream)",
                "content": {"application/json": {"schema": _ref("V2InferResponse")}, "application/octet-stream": {}},
            },
            **_errors(400, 404, 413, 415, 503),
        },
    }
    metadata = {
        "summary": "V2 model metadata: inputs, outputs and versions",
        "responses": {"200": _json_response("The model", _ref("V2ModelMetadata")), **_errors(404)},
    }
    return {
        "/v2": {"get": server},
        "/v2/": {"get": server},
        "/v2/health/live": {"get": {"summary": "V2 liveness", "responses": {"200": ready["200"]}}},
        "/v2/health/ready": {"get": {"summary": "V2 readiness (as /health's 200 or 503)", "responses": ready}},
        "/v2/models/{name}": {"get": {**metadata, "parameters": [model]}},
        "/v2/models/{name}/versions/{version}": {"get": {**metadata, "parameters": [model, version]}},
        "/v2/models/{name}/ready": {
            "get": {"summary": "V2 model readiness", "parameters": [model], "responses": {**ready, **_errors(404)}}
        },
        "/v2/models/{name}/versions/{version}/ready": {
            "get": {
                "summary": "V2 version readiness",
                "parameters": [model, version],
                "responses": {**ready, **_errors(404)},
            }
        },
        "/v2/models/{name}/infer": {"post": {**infer, "parameters": [*infer["parameters"], model]}},
        "/v2/models/{name}/versions/{version}/infer": {
            "post": {**infer, "parameters": [*infer["parameters"], model, version]}
        },
    }
