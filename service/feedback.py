"""Feedback blueprint: /v1/feedback (store observed labels) and /v1/feedback/stats."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, jsonify, request

from iscore import feedback
from service.admin import require_admin
from service.context import json_body, services
from service.errors import ApiError
from service.schema import canonical_json, parse_feedback, parse_idempotency_key

bp = Blueprint("feedback", __name__)


@bp.post("/v1/feedback")
def feedback_route() -> Any:
    """Store a batch of labels; with an Idempotency-Key a repeat returns the first reply."""
    require_admin()
    s = services()
    key = parse_idempotency_key(request.headers.get("Idempotency-Key"))
    body = json_body()
    batch = parse_feedback(body, s.limits)
    if key is None:
        return jsonify(s.feedback.call(lambda engine: feedback.store(engine, batch)))
    fingerprint = hashlib.sha256(canonical_json(body)).hexdigest()
    try:
        counts, replayed = s.feedback.call(lambda engine: feedback.store_once(engine, batch, key, fingerprint))
    except feedback.IdempotencyConflict:
        raise ApiError(409, "idempotency_key_reused",
                       "this Idempotency-Key was already used for a different batch; send a new key with a new "
                       "batch", {"header": "Idempotency-Key"}) from None
    resp = jsonify(counts)
    resp.headers["Idempotent-Replayed"] = "true" if replayed else "false"
    return resp


@bp.get("/v1/feedback/stats")
def feedback_stats_route() -> Any:
    """Feedback counts by day and label kind."""
    require_admin()
    return jsonify(services().feedback.call(feedback.stats))
