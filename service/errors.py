"""One JSON error shape for every failure: {"error", "message", "details"}."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("iscore.errors")
# On every reply: the app's (service/observability.py) and gunicorn's own error pages (service/workers.py).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class ApiError(Exception):
    """An error the client can act on; rendered as the shared JSON shape."""

    def __init__(self, status: int, error: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(status: int, error: str, message: str, details: Any = None) -> tuple[Response, int]:
    """The shared error body with its status."""
    return jsonify({"error": error, "message": message, "details": details}), status


def register_error_handlers(app: Flask) -> None:
    """Route every exception (ours, werkzeug's, unexpected) to the one JSON shape."""

    @app.errorhandler(ApiError)
    def _api(e: ApiError) -> tuple[Response, int]:
        resp, status = error_response(e.status, e.error, e.message, e.details)
        resp.headers.update(e.headers)
        return resp, status

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> tuple[Response, int]:
        code = e.code or 500
        name = (e.name or "error").lower().replace(" ", "_")
        messages = {
            404: "no such route; see /openapi.json",
            405: "method not allowed on this route; see /openapi.json",
            413: f"request body over {current_app.config.get('MAX_CONTENT_LENGTH')} bytes; "
                 "split the batch (the limit is ISCORE_MAX_BODY_BYTES)",
        }
        resp, status = error_response(code, name, messages.get(code, e.description or name))
        if code == 405 and e.get_response().headers.get("Allow"):
            resp.headers["Allow"] = e.get_response().headers["Allow"]
        return resp, status

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> tuple[Response, int]:
        # Never show a traceback to a client; the log keeps it for us.
        log.exception("unhandled error")
        return error_response(500, "internal_error", "unexpected server error; it has been logged")
