"""The OpenAPI entries of the pages (issue #17): HTML pages, their form posts, the sidebar's JSON feed and seeding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from iscore.settings import Settings

HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, **HTML}


def _html_errors(*codes: int) -> dict[str, Any]:
    return {str(c): _html(f"an HTML error page ({c})") for c in codes}


def page_paths(settings: Settings, *, text: dict[str, Any], source: dict[str, Any], timestamp: dict[str, Any],
               errors: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Paths of the sidebar, the editor's desk and the model page, in the document's own terms."""
    limit = {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}}
    window = {"name": "window_minutes", "in": "query", "required": False,
              "schema": {"type": "integer", "minimum": 1, "maximum": 10080,
                         "default": settings.sidebar_window_minutes}}
    story = {"type": "object", "required": ["rank", "story_id", "headline", "i_score", "tier", "coverage", "sources",
                                            "members", "first_seen", "updated"], "properties": {
        "rank": {"type": "integer", "minimum": 1}, "story_id": {"type": ["string", "integer"]},
        "headline": {"type": "string"}, "i_score": {"type": "number", "minimum": 0, "maximum": 100},
        "tier": {"type": "string", "enum": ["red", "blue"]}, "coverage": {"type": "integer", "minimum": 0},
        "sources": {"type": "array", "items": {"type": "string"}}, "members": {"type": "array"},
        "first_seen": {"type": "string"}, "updated": {"type": "string"}, "url": {"type": ["string", "null"]},
        "override": {"type": "object", "description": "present when an editor pinned or boosted the story"}}}
    form_errors = {**_html_errors(400, 401, 403, 413, 422, 503), **errors(429)}
    redirect = {"303": _html("done; see the desk")}

    def form(summary: str, fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
        return {"post": {"summary": summary, "requestBody": {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": {
                "type": "object", "required": ["csrf", *required],
                "properties": {"csrf": {"type": "string"}, **fields}}}}},
            "responses": {**redirect, **form_errors}}}

    return {
        "/sidebar": {"get": {
            "summary": "The sidebar page: the live top stories (HTML, embeddable; polls /v1/sidebar.json)",
            "parameters": [limit],
            "responses": {"200": _html("the page"), **_html_errors(422, 503), **errors(429)}}},
        "/v1/sidebar.json": {"get": {
            "summary": "The sidebar's stories in the /v1/top shape, editors' overrides applied; ETag, CORS for "
                       "ISCORE_CORS_ORIGINS",
            "parameters": [window, limit, {"name": "If-None-Match", "in": "header", "required": False,
                                           "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "OK", "headers": {"ETag": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": {
                            "type": "object", "required": ["model_version", "window_minutes", "stories"],
                            "properties": {"model_version": {"type": "string"},
                                           "window_minutes": {"type": "integer"},
                                           "stories": {"type": "array", "items": story}}}}}},
                "304": {"description": "unchanged since the ETag sent in If-None-Match"},
                **errors(422, 429, 503)}}},
        "/v1/admin/headlines": {"post": {
            "summary": "Add headlines to the pages' default story provider (until the story store serves /v1/top)",
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["headlines"],
                "properties": {"headlines": {"type": "array", "minItems": 1, "maxItems": settings.max_headlines,
                                             "items": {"type": "object", "additionalProperties": False,
                                                       "required": ["text"], "properties": {
                                                           "text": text,
                                                           "id": {"type": ["string", "null"], "minLength": 1,
                                                                  "maxLength": 200, "pattern": "^[^\\x00]*$"},
                                                           "source": source,
                                                           "url": {"type": ["string", "null"],
                                                                   "pattern": "^https?://[^\\x00-\\x20\\x7f]+$",
                                                                   "maxLength": 2000},
                                                           "published_at": timestamp}}}}}}}},
            "responses": {"200": {"description": "stored", "content": {"application/json": {"schema": {
                "type": "object", "required": ["stored"], "properties": {"stored": {"type": "integer"}}}}}},
                **errors(400, 401, 403, 408, 413, 415, 422, 429, 503)}}},
        "/editor": {"get": {
            "summary": "The editor's desk (HTML): sign-in form, or the window's stories with actions and the audit "
                       "list",
            "parameters": [{"name": "failed", "in": "query", "required": False, "schema": {"type": "string"}},
                           {"name": "done", "in": "query", "required": False, "schema": {"type": "string"}}],
            "responses": {"200": _html("the desk or the sign-in form"), **_html_errors(403, 503), **errors(429)}}},
        "/editor/login": form("Sign in with a name and the admin token (sets an HttpOnly, SameSite=Strict "
                              "session cookie)", {"who": {"type": "string"}, "token": {"type": "string"}},
                              ["who", "token"]),
        "/editor/logout": form("Sign out", {}, []),
        "/editor/action": form("Pin, hide, boost or clear a story for some minutes", {
            "action": {"type": "string", "enum": ["pin", "hide", "boost", "clear"]},
            "story_id": {"type": "string"}, "minutes": {"type": "number"}, "boost": {"type": "number"},
            "headline": {"type": "string"}}, ["action", "story_id"]),
        "/editor/feedback": form("Thumbs up (100) or down (0) on a headline, stored as feedback", {
            "vote": {"type": "string", "enum": ["up", "down"]}, "headline": {"type": "string"},
            "source": {"type": "string"}}, ["vote", "headline"]),
        "/model": {"get": {
            "summary": "The served model for people (HTML): version, data, metrics, report plots, history",
            "responses": {"200": _html("the page"), **_html_errors(503), **errors(429)}}},
    }
