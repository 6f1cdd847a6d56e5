"""The index, the OpenAPI document, and the JSON answers for unknown routes and methods."""

from __future__ import annotations

import re

from app.api.openapi import openapi_document


def test_openapi_lists_every_route_and_method(client, app):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    methods: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(rule))  # Flask's <name> is OpenAPI's {name}
            methods.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    assert set(methods) == set(doc["paths"])
    for path, allowed in methods.items():
        assert set(doc["paths"][path]) == allowed, path


def test_index_lists_the_endpoints(client):
    body = client.get("/").get_json()
    assert {"/predict", "/health", "/config", "/metrics", "/ab/report"} <= set(body["endpoints"])
    assert body["docs"] == "/openapi.json"


def test_unknown_route_and_wrong_method_are_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.is_json and "no such endpoint: GET /nope" in r.get_json()["error"]
    r = client.get("/predict")
    assert r.status_code == 405 and "not allowed on /predict" in r.get_json()["error"]
    r = client.delete("/config")
    assert r.status_code == 405 and r.is_json


def test_every_body_and_every_admin_call_documents_its_refusals():
    paths = openapi_document()["paths"]
    operations = [(p, m, op) for p, ops in paths.items() for m, op in ops.items()]
    with_body = {(p, m) for p, m, op in operations if "requestBody" in op}
    assert with_body >= {("/predict", "post"), ("/feedback", "post"), ("/config", "put")}
    for path, method in with_body:
        assert "415" in paths[path][method]["responses"], (path, method)
    for path, method, op in operations:
        if "security" in op:
            assert {"401", "403", "429"} <= set(op["responses"]), (path, method)
