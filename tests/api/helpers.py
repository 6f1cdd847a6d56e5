"""Helpers of the API tests: OpenAPI schema checks and the requests served so far."""

from __future__ import annotations

from typing import Any

import jsonschema
from prometheus_client.parser import text_string_to_metric_families

from app.api.openapi import openapi_document
from tests.helpers import counter


def check_schema(response: Any, path: str, method: str = "get") -> None:
    """Validate a response body against the OpenAPI document's schema for its path, method and status."""
    doc = openapi_document()
    responses = doc["paths"][path][method]["responses"]
    schema = responses[str(response.status_code)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(response.get_json())


def served() -> float:
    """Requests served by any version so far."""
    return sum(counter("model_version_requests_total", version=v) for v in ("v1", "v2"))


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample of a /metrics body, None when it is not there."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None
