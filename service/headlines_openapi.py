"""The OpenAPI paths of POST /v1/headlines and GET /v1/top (merged into service/openapi.py's document)."""

from __future__ import annotations

from typing import Any

from iscore.settings import Settings
from service.headlines import MAX_FILTER_CHARS, MAX_TOP_LIMIT
from service.ingest_schema import MAX_ID_CHARS, MAX_SECTION_CHARS, MAX_SOURCE_CHARS, MAX_URL_CHARS


def headline_paths(settings: Settings) -> dict[str, Any]:
    """The two paths, with this app's limits."""
    from service.openapi import TIME_DESCRIPTION, _errors  # here: service.openapi imports this module at its top
    from service.schema import HEADLINE_TEXT_PATTERN, NO_NUL_PATTERN

    def ok(schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"description": "OK", "content": {"application/json": {"schema": schema}}}
        if headers:
            out["headers"] = headers
        return out

    short = {"type": "string", "minLength": 1, "pattern": NO_NUL_PATTERN}
    item = {
        "type": "object", "additionalProperties": False, "required": ["text", "source", "published_at"],
        "anyOf": [{"required": ["id"]}, {"required": ["url"]}],
        "properties": {
            "id": {"type": ["string", "integer"], "maxLength": MAX_ID_CHARS, "pattern": NO_NUL_PATTERN,
                   "description": "the client's id; with the client, it makes a repeat a duplicate"},
            "text": {"type": "string", "minLength": 1, "maxLength": settings.max_headline_chars,
                     "pattern": HEADLINE_TEXT_PATTERN},
            "source": {**short, "maxLength": MAX_SOURCE_CHARS, "description": "the outlet: name, domain or slug"},
            "published_at": {"type": "string", "format": "date-time",
                             "description": TIME_DESCRIPTION + "; later than now counts as now; older than "
                             f"{settings.window_retention_hours:g} h (ISCORE_WINDOW_RETENTION_HOURS) is refused"},
            "url": {"type": "string", "format": "uri", "maxLength": MAX_URL_CHARS, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
                    "description": "http(s); when given it identifies the headline for everyone"},
            "section": {**short, "maxLength": MAX_SECTION_CHARS},
        },
    }
    verdict = {"type": "object", "required": ["index", "id", "status"], "properties": {
        "index": {"type": "integer", "minimum": 0}, "id": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["new", "duplicate", "rejected"]},
        "i_score": {"type": "number"},
        "problems": {"type": "array", "items": {"type": "object", "required": ["field", "problem"]}}}}
    story = {"type": "object", "required": ["rank", "story_id", "headline", "i_score", "tier", "coverage", "sources",
                                            "members", "first_seen", "updated", "why"], "properties": {
        "rank": {"type": "integer", "minimum": 1}, "story_id": {"type": "string"}, "headline": {"type": "string"},
        "i_score": {"type": "number", "minimum": 0, "maximum": 100,
                    "description": "the story score: members' i-Scores, coverage, velocity, freshness (README)"},
        "tier": {"type": "string", "enum": ["red", "blue"]},
        "coverage": {"type": "integer", "minimum": 1, "description": "distinct sources carrying the story"},
        "sources": {"type": "array", "items": {"type": "string"}},
        "members": {"type": "array", "items": {"type": ["string", "null"]}, "description": "member ids (or URLs)"},
        "first_seen": {"type": "string", "format": "date-time"}, "updated": {"type": "string", "format": "date-time"},
        "why": {"type": "string", "description": 'e.g. "carried by 7 outlets in 40 minutes"'}}}
    cache = {"ETag": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}}}
    filter_param = {"in": "query", "required": False, "schema": {"type": "string", "maxLength": MAX_FILTER_CHARS}}
    max_minutes = settings.story_window_hours * 60
    return {
        "/v1/headlines": {"post": {
            "summary": "Ingest headlines into the window store (API key; idempotent by url, else client and id)",
            "description": "Partial acceptance: each item is new, duplicate or rejected (with its problems, by "
                           "index); the good ones are stored and committed before the 200 (which also comes when "
                           "every item is rejected). 422 only for a body that is not a non-empty items list within "
                           "the limits. 503: the headline store or the model is unavailable (nothing stored; retry).",
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["items"], "properties": {
                    "items": {"type": "array", "minItems": 1, "maxItems": settings.max_headlines,
                              # Any value is judged per item (partial acceptance), so the request schema takes
                              # any item; the shape an item needs to be stored is x-headline-item.
                              "items": {"description": "an item to store, shaped as x-headline-item; any other "
                                                       "value is rejected by index with its problems"},
                              "x-headline-item": item}}}}}},
            "responses": {"200": ok({"type": "object", "required": ["model_version", "accepted", "new", "duplicates",
                                                                    "rejected", "items"], "properties": {
                "model_version": {"type": "string"}, "accepted": {"type": "integer"}, "new": {"type": "integer"},
                "duplicates": {"type": "integer"}, "rejected": {"type": "integer"},
                "items": {"type": "array", "items": verdict}}}),
                **_errors(400, 401, 408, 413, 415, 422, 429, 503)},
        }},
        "/v1/top": {"get": {
            "summary": "The top stories of the last window_minutes, from every worker's shared store",
            "parameters": [
                {"name": "window_minutes", "in": "query", "required": False,
                 "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": max_minutes, "default": 60}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_LIMIT,
                            "default": min(settings.default_limit, MAX_TOP_LIMIT)}},
                {**filter_param, "name": "source", "description": "only these outlets (comma-separated)"},
                {**filter_param, "name": "section", "description": "only these sections (comma-separated)"},
                {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": ok({"type": "object", "required": ["window_minutes", "as_of", "stories"], "properties": {
                    "window_minutes": {"type": "number"}, "as_of": {"type": "string", "format": "date-time"},
                    "stories": {"type": "array", "items": story}}}, cache),
                "304": {"description": "not modified since the ETag sent in If-None-Match", "headers": cache},
                **_errors(422, 429, 503)},
        }},
    }
