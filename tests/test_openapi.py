"""The served OpenAPI document is valid and describes exactly the app's routes."""

from __future__ import annotations

from openapi_spec_validator import validate


def test_openapi_validates(client):
    doc = client.get("/openapi.json").get_json()
    validate(doc)


def test_openapi_paths_match_routes(client):
    doc = client.get("/openapi.json").get_json()
    app = client.application
    routes = {
        (rule.rule, m.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for m in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert documented == routes


def test_openapi_limits_follow_settings(client, settings):
    doc = client.get("/openapi.json").get_json()
    items = doc["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["headlines"]
    assert items["maxItems"] == settings.max_headlines
