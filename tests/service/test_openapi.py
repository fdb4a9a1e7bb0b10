"""The served OpenAPI document is valid and describes exactly the app's routes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


def test_new_statuses_and_headers_are_documented(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for route in ("/v1/score", "/v1/rank", "/v1/feedback"):
        responses = paths[route]["post"]["responses"]
        assert {"400", "408", "413", "415", "422", "429"} <= set(responses), route
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
    for path, method in (("/v1/model", "get"), ("/v1/admin/reload", "post"), ("/v1/feedback/stats", "get")):
        assert "429" in paths[path][method]["responses"]
    assert not any("429" in op["responses"] for p in ("/healthz", "/readyz", "/metrics", "/openapi.json")
                   for op in paths[p].values())  # probes and scrapes are never rate limited
    fb = paths["/v1/feedback"]["post"]
    key = next(p for p in fb["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header" and "409" in fb["responses"]
    assert "Idempotent-Replayed" in fb["responses"]["200"]["headers"]


def test_patterns_and_limits_come_from_the_parser(client, settings):
    from service import schema

    doc = client.get("/openapi.json").get_json()
    score = doc["paths"]["/v1/score"]["post"]
    assert score["parameters"][0]["schema"]["pattern"] == schema.FLAG_PATTERN
    item = doc["paths"]["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["items"]["items"]
    assert item["properties"]["label_kind"]["pattern"] == schema.LABEL_KIND_PATTERN
    assert item["properties"]["id"]["maxLength"] == schema.MAX_ID_CHARS
    assert item["properties"]["source"]["maxLength"] == schema.MAX_SOURCE_CHARS
    key = doc["paths"]["/v1/feedback"]["post"]["parameters"][0]
    assert key["schema"]["pattern"] == schema.IDEMPOTENCY_KEY_PATTERN
    assert str(settings.max_explain_headlines) in score["parameters"][0]["description"]


@pytest.mark.parametrize("word", ["true", "TRUE", "tRuE", "1", "0", "yes", "No", "ON", "off", "OFF"])
def test_flag_pattern_accepts_what_the_parser_accepts(word):
    from service.schema import FLAG_PATTERN, parse_flag

    assert re.fullmatch(FLAG_PATTERN, word)
    parse_flag(word, "explain")


@settings(max_examples=300, deadline=None)
@given(word=st.text(max_size=6) | st.sampled_from(["true", "false", "yes", "no", "on", "off", "0", "1"]).map(str.upper))
def test_flag_pattern_and_parser_agree(word):
    from service.errors import ApiError
    from service.schema import FLAG_PATTERN, parse_flag

    try:
        parse_flag(word, "explain")
        accepted = True
    except ApiError:
        accepted = False
    assert accepted == bool(re.fullmatch(FLAG_PATTERN, word))
