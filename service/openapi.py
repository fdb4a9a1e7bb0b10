"""The OpenAPI 3 document served at /openapi.json (limits filled in from settings)."""

from __future__ import annotations

import sys
from typing import Any

from iscore.scoring import EXPLAIN_KINDS, REPLY_FLAGS
from iscore.settings import BLEND_NAMES, Settings
from service.headlines_openapi import headline_paths
from service.limits import EXPLAIN_FACTOR, UNIT_CHARS
from service.pages_openapi import page_paths
from service.schema import (
    FLAG_FALSE,
    FLAG_PATTERN,
    FLAG_TRUE,
    HEADLINE_TEXT_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    LABEL_KIND_PATTERN,
    MAX_ID_CHARS,
    MAX_SOURCE_CHARS,
    MAX_WINDOW_MINUTES,
    NO_NUL_PATTERN,
)

ERROR_MEANINGS = {
    400: "malformed JSON, body framing or header",
    401: "missing or wrong bearer token",
    403: "admin routes are off (no ISCORE_ADMIN_TOKEN)",
    408: "the request body did not arrive within ISCORE_BODY_TIMEOUT_SECONDS; the connection is closed",
    409: "refused (reload: the new version; feedback: Idempotency-Key reused with another body; score and rank: "
         "the served model lacks the requested blend)",
    413: "body over ISCORE_MAX_BODY_BYTES (the message gives the limit in bytes)",
    415: "not JSON",
    422: "invalid fields or query parameters, each listed; or a per-request limit (headlines, characters, explain)",
    429: "rate limit of this client spent (ISCORE_RATE_LIMIT, ISCORE_RATE_LIMIT_HEADLINES)",
    503: "no model loaded / feedback database unavailable (nothing stored; retry)",
}
RETRY_AFTER = {"Retry-After": {"required": True, "description": "seconds to wait before retrying",
                               "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"}}}
# The words parse_flag takes, each true one beside its false one: true/false/1/0/yes/no/on/off.
FLAG_WORDS = "/".join(word for pair in zip(FLAG_TRUE, FLAG_FALSE) for word in pair)
# A time is ISO-8601 (format date-time) or RFC 2822 as feeds write it; both are accepted.
TIME_DESCRIPTION = ("ISO-8601 (2026-11-24T18:05:00Z; a time without zone is UTC) "
                    "or RFC 2822 (Tue, 24 Nov 2026 18:05:00 GMT)")


def _error_ref(code: int) -> dict[str, Any]:
    out: dict[str, Any] = {"description": ERROR_MEANINGS.get(code, "error"),
                           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if code == 429:
        out["headers"] = RETRY_AFTER
    return out


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _error_ref(c) for c in codes}


def openapi_document(settings: Settings) -> dict[str, Any]:
    """Build the document; every path here is a route of the app (a test checks both ways)."""
    # One schema per kind of field, shared by every body that has it (as the parser shares its checks).
    text = {"type": "string", "minLength": 1, "maxLength": settings.max_headline_chars, "pattern": HEADLINE_TEXT_PATTERN}
    item_id = {"type": ["string", "integer", "null"], "maxLength": MAX_ID_CHARS, "pattern": NO_NUL_PATTERN}
    source = {"type": ["string", "null"], "maxLength": MAX_SOURCE_CHARS, "pattern": NO_NUL_PATTERN}
    timestamp = {"type": ["string", "null"], "format": "date-time", "description": TIME_DESCRIPTION}
    headline = {
        "oneOf": [
            text,
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["text"],
                "properties": {
                    "text": text,
                    "id": {**item_id, "description": "echoed back; defaults to the item's index"},
                    "published_at": timestamp,
                    "source": source,
                },
            },
        ]
    }
    headlines = {"type": "array", "minItems": 1, "maxItems": settings.max_headlines, "items": headline,
                 "description": f"at most {settings.max_request_chars} characters of text in all "
                                "(ISCORE_MAX_REQUEST_CHARS); strings must not hold NUL or lone surrogates"}
    explain_param = {"name": "explain", "in": "query", "required": False,
                     "schema": {"type": "string", "pattern": FLAG_PATTERN},
                     "description": f"{FLAG_WORDS} in any case: add, per headline, the words, phrases, "
                                    "headline signals and source that pushed its score up or down most "
                                    f"(at most {settings.max_explain_headlines} headlines, "
                                    "ISCORE_MAX_EXPLAIN_HEADLINES)"}
    blend_param = {"name": "blend", "in": "query", "required": False,
                   "schema": {"type": "string", "enum": list(BLEND_NAMES)},
                   "description": "the popularity/importance dial: 'editorial' (engagement plus the hard-news desk "
                                  "head) or 'engagement' (that head alone), each on its own 0-100 scale; default "
                                  f"ISCORE_BLEND ({settings.blend}). 409 when the served model lacks that blend "
                                  "(a model trained without a desk head has only 'engagement')"}
    blend_reply = {"type": "string", "enum": list(BLEND_NAMES), "description": "the blend these scores use"}
    explain_terms = {"type": "array", "items": {
        "type": "object", "required": ["feature", "kind", "contribution"], "properties": {
            "feature": {"type": "string", "description": 'a word ("kills"), a phrase ("kills at"), a headline '
                                                         'signal ("question mark", "length: 9 words") or '
                                                         '"source: KEY"'},
            "kind": {"type": "string", "enum": list(EXPLAIN_KINDS)},
            "contribution": {"type": "number"}}}}
    scored_item = {
        "type": "object",
        "required": ["id", "text", "i_score", "tier", "flags"],
        "properties": {
            "id": {"type": "string"}, "text": {"type": "string"},
            "i_score": {"type": "number", "minimum": 0, "maximum": 100},
            "tier": {"type": "string", "enum": ["red", "blue"]},
            "flags": {"type": "array", "uniqueItems": True, "items": {"type": "string", "enum": list(REPLY_FLAGS)},
                      "description": "why this score may deserve less trust: the input is not a headline the "
                                     "model can judge well (its score is pulled toward the median headline's), "
                                     "or its source has no weight in this model"},
            "explain": {"type": "object", "required": ["up", "down"], "properties": {
                "up": explain_terms, "down": explain_terms},
                "description": "only with explain=true: the terms of the model's raw (uncalibrated) prediction "
                               "that raised it most (up, positive) and lowered it most (down, negative), "
                               "largest first, ISCORE_EXPLAIN_TOP each way; all terms and the model's "
                               "intercept add up to the raw prediction. A word's entry holds its own weight "
                               "and its share of the word-vector part; empty lists when the model is not linear"},
        },
    }
    bad_input = _errors(400, 408, 413, 415, 422, 429, 503)
    scoring_errors = {**bad_input, **_errors(409)}
    admin_errors = _errors(401, 403, 429)
    security = [{"bearer": []}]

    def json_ok(schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}

    paths: dict[str, Any] = {
        "/v1/score": {"post": {
            "summary": "Score headlines (0-100) in request order",
            "parameters": [explain_param, blend_param],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["headlines"],
                "properties": {"headlines": headlines}}}}},
            "responses": {"200": json_ok({"type": "object", "required": ["model_version", "blend", "scores"],
                                          "properties": {
                "model_version": {"type": "string"}, "blend": blend_reply, "scores": {"type": "array", "items": scored_item}}}),
                **scoring_errors},
        }},
        "/v1/rank": {"post": {
            "summary": "Rank headlines, highest i-Score first (ties by id, then input order)",
            "parameters": [explain_param, blend_param],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["headlines"],
                "properties": {
                    "headlines": headlines,
                    "limit": {"type": "integer", "minimum": 1, "maximum": settings.max_headlines,
                              "default": settings.default_limit},
                    "window_minutes": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_WINDOW_MINUTES,
                                       "description": "keep only headlines published this many minutes before now"},
                    "now": timestamp,
                    "group_stories": {"type": "boolean", "default": False,
                                      "description": "also return `stories`: these headlines clustered into ranked stories"},
                }}}}},
            "responses": {"200": json_ok({"type": "object", "required": ["model_version", "blend", "ranked"],
                                          "properties": {
                "model_version": {"type": "string"}, "blend": blend_reply,
                "ranked": {"type": "array", "items": {"allOf": [scored_item, {"type": "object", "properties": {
                    "rank": {"type": "integer", "minimum": 1}}}]}},
                "considered": {"type": "integer"}, "excluded_by_window": {"type": "integer"}}}),
                **scoring_errors},
        }},
        "/healthz": {"get": {"summary": "Process is alive", "responses": {"200": json_ok({"type": "object"})}}},
        "/readyz": {"get": {"summary": "200 only when a verified model is loaded",
                            "responses": {"200": json_ok({"type": "object"}), "503": json_ok({"type": "object"})}}},
        "/v1/model": {"get": {"summary": "Manifest of the served model",
                              "responses": {"200": json_ok({"type": "object"}), **_errors(429, 503)}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": json_ok({"type": "object"})}}},
        "/v1/admin/reload": {"post": {
            "summary": "Load the version named by the registry's CURRENT pointer",
            "security": security,
            "responses": {"200": json_ok({"type": "object"}), **admin_errors, **_errors(409)},
        }},
        "/v1/feedback": {"post": {
            "summary": "Store observed labels for headlines (idempotent per item; per batch with Idempotency-Key)",
            "security": security,
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                            "description": "a repeat with the same key and body returns the first reply without "
                                           "writing (Idempotent-Replayed: true); the same key with another body is 409"}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["items"], "additionalProperties": False,
                "properties": {"items": {"type": "array", "minItems": 1, "maxItems": settings.max_headlines, "items": {
                    "type": "object", "required": ["text", "label"], "additionalProperties": False,
                    # label_kind 'score' (also the default) means a 0-100 rating
                    "if": {"properties": {"label_kind": {"const": "score"}}},
                    "then": {"properties": {"label": {"maximum": 100}}},
                    "properties": {
                        "id": item_id,
                        "text": text,
                        "label": {"type": "number", "minimum": 0, "maximum": sys.float_info.max,
                                  "description": "0-100 for label_kind 'score'; a count (>= 0) otherwise"},
                        "label_kind": {"type": "string", "pattern": LABEL_KIND_PATTERN, "default": "score"},
                        "published_at": timestamp,
                        "source": source,
                        "observed_at": timestamp,
                    }}}}}}}},
            "responses": {"200": {**json_ok({"type": "object"}), "headers": {"Idempotent-Replayed": {
                "description": "with an Idempotency-Key: true when this is the stored reply of an earlier request",
                "schema": {"type": "string", "enum": ["true", "false"]}}}},
                **admin_errors, **bad_input, **_errors(409)},
        }},
        "/v1/feedback/stats": {"get": {
            "summary": "Feedback counts by day and label kind", "security": security,
            "responses": {"200": json_ok({"type": "object"}), **admin_errors, **_errors(503)},
        }},
    }
    paths.update(page_paths(settings, errors=_errors))  # issue #17
    paths.update(headline_paths(settings))  # POST /v1/headlines, GET /v1/top (#16)
    return {
        "openapi": "3.1.0",
        "info": {"title": "i-Score", "version": "1",
                 "description": "Headline importance scores (0-100) with red/blue tiers. "
                                f"red at or above {settings.red_threshold}. Rate limits per client (admin token, "
                                f"else address): {settings.rate_limit or 'none'} requests over all /v1 routes and "
                                f"{settings.rate_limit_headlines or 'no'} headline units (one per started "
                                f"{UNIT_CHARS} characters of a headline, x{EXPLAIN_FACTOR} with explain); 429 with "
                                "Retry-After beyond."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error", "message", "details"], "properties": {
                "error": {"type": "string"}, "message": {"type": "string"}, "details": {"description": "what to fix (field problems, limits) or null"}}}},
        },
    }
