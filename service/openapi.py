"""The OpenAPI 3 document served at /openapi.json (limits filled in from settings)."""

from __future__ import annotations

from typing import Any

from iscore.settings import Settings
from service.schema import MAX_WINDOW_MINUTES, TEXT_PATTERN


def _error_ref() -> dict[str, Any]:
    return {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _error_ref() for c in codes}


def openapi_document(settings: Settings) -> dict[str, Any]:
    """Build the document; every path here is a route of the app (a test checks both ways)."""
    headline = {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": settings.max_headline_chars, "pattern": TEXT_PATTERN},
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["text"],
                "properties": {
                    "text": {"type": "string", "minLength": 1, "maxLength": settings.max_headline_chars,
                             "pattern": TEXT_PATTERN},
                    "id": {"type": ["string", "integer", "null"], "maxLength": 200,
                           "description": "echoed back; defaults to the item's index"},
                    "published_at": {"type": ["string", "null"], "format": "date-time",
                                     "description": "ISO-8601; a time without zone is taken as UTC"},
                    "source": {"type": ["string", "null"], "maxLength": 200},
                },
            },
        ]
    }
    headlines = {"type": "array", "minItems": 1, "maxItems": settings.max_headlines, "items": headline}
    explain_param = {"name": "explain", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no", "on", "off"]},
                     "description": "add the features that pushed each score up or down most"}
    scored_item = {
        "type": "object",
        "required": ["id", "text", "i_score", "tier"],
        "properties": {
            "id": {"type": "string"}, "text": {"type": "string"},
            "i_score": {"type": "number", "minimum": 0, "maximum": 100},
            "tier": {"type": "string", "enum": ["red", "blue"]},
            "explain": {"type": "object"},
        },
    }
    bad_input = _errors(400, 413, 415, 422, 503)
    admin_errors = _errors(401, 403)
    security = [{"bearer": []}]

    def json_ok(schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}

    paths: dict[str, Any] = {
        "/v1/score": {"post": {
            "summary": "Score headlines (0-100) in request order",
            "parameters": [explain_param],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["headlines"],
                "properties": {"headlines": headlines}}}}},
            "responses": {"200": json_ok({"type": "object", "required": ["model_version", "scores"], "properties": {
                "model_version": {"type": "string"}, "scores": {"type": "array", "items": scored_item}}}),
                **bad_input},
        }},
        "/v1/rank": {"post": {
            "summary": "Rank headlines, highest i-Score first (ties by id, then input order)",
            "parameters": [explain_param],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["headlines"],
                "properties": {
                    "headlines": headlines,
                    "limit": {"type": "integer", "minimum": 1, "maximum": settings.max_headlines,
                              "default": settings.default_limit},
                    "window_minutes": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_WINDOW_MINUTES,
                                       "description": "keep only headlines published this many minutes before now"},
                    "now": {"type": ["string", "null"], "format": "date-time"},
                }}}}},
            "responses": {"200": json_ok({"type": "object", "required": ["model_version", "ranked"], "properties": {
                "model_version": {"type": "string"},
                "ranked": {"type": "array", "items": {"allOf": [scored_item, {"type": "object", "properties": {
                    "rank": {"type": "integer", "minimum": 1}}}]}},
                "considered": {"type": "integer"}, "excluded_by_window": {"type": "integer"}}}),
                **bad_input},
        }},
        "/healthz": {"get": {"summary": "Process is alive", "responses": {"200": json_ok({"type": "object"})}}},
        "/readyz": {"get": {"summary": "200 only when a verified model is loaded",
                            "responses": {"200": json_ok({"type": "object"}), "503": json_ok({"type": "object"})}}},
        "/v1/model": {"get": {"summary": "Manifest of the served model",
                              "responses": {"200": json_ok({"type": "object"}), **_errors(503)}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": json_ok({"type": "object"})}}},
        "/v1/admin/reload": {"post": {
            "summary": "Load the version named by the registry's CURRENT pointer",
            "security": security,
            "responses": {"200": json_ok({"type": "object"}), **admin_errors, **_errors(409)},
        }},
        "/v1/feedback": {"post": {
            "summary": "Store observed labels for headlines (idempotent)",
            "security": security,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["items"], "additionalProperties": False,
                "properties": {"items": {"type": "array", "minItems": 1, "maxItems": settings.max_headlines, "items": {
                    "type": "object", "required": ["text", "label"], "additionalProperties": False,
                    # label_kind 'score' (also the default) means a 0-100 rating
                    "if": {"properties": {"label_kind": {"const": "score"}}},
                    "then": {"properties": {"label": {"maximum": 100}}},
                    "properties": {
                        "id": {"type": ["string", "integer", "null"], "maxLength": 200},
                        "text": {"type": "string", "minLength": 1, "maxLength": settings.max_headline_chars,
                                 "pattern": TEXT_PATTERN},
                        "label": {"type": "number", "minimum": 0,
                                  "description": "0-100 for label_kind 'score'; a count (>= 0) otherwise"},
                        "label_kind": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$", "default": "score"},
                        "published_at": {"type": ["string", "null"], "format": "date-time"},
                        "source": {"type": ["string", "null"], "maxLength": 200},
                        "observed_at": {"type": ["string", "null"], "format": "date-time"},
                    }}}}}}}},
            "responses": {"200": json_ok({"type": "object"}), **admin_errors, **bad_input},
        }},
        "/v1/feedback/stats": {"get": {
            "summary": "Feedback counts by day and label kind", "security": security,
            "responses": {"200": json_ok({"type": "object"}), **admin_errors},
        }},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "i-Score", "version": "1",
                 "description": "Headline importance scores (0-100) with red/blue tiers. "
                                f"red at or above {settings.red_threshold}."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error", "message", "details"], "properties": {
                "error": {"type": "string"}, "message": {"type": "string"}, "details": {"description": "what to fix (field problems, limits) or null"}}}},
        },
    }
