"""Meta blueprint: /healthz, /readyz, /v1/model, /metrics and /openapi.json."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, g, jsonify

from iscore.redact import public_value
from service.context import require_model, services
from service.openapi import openapi_document

bp = Blueprint("meta", __name__)
# No "command": a training command line can carry a database URL with its password.
MANIFEST_KEYS = ("version", "created_at", "libraries", "data", "target", "model_config", "features",
                 "metrics", "sha256", "model_bytes")


@bp.get("/healthz")
def healthz() -> Any:
    """The process is alive (and which version it serves, if any)."""
    model = services().holder.get()
    return jsonify({"status": "ok", "model_version": model.version if model else None})


@bp.get("/readyz")
def readyz() -> Any:
    """200 while a verified model serves (degraded: a fallback), 503 when none does."""
    s = services()
    r = s.holder.readiness()
    st = r.status
    last = None if st is None else {"ok": st.ok, "version": st.version, "error": s.public(st.error),
                                    "at": datetime.fromtimestamp(st.at, timezone.utc).isoformat()}
    body: dict[str, Any] = {"status": r.state, "model_version": r.model.version if r.model else None}
    if r.fallback is not None:
        # Serving, but not what CURRENT names: ready for traffic, and says so to operators.
        body.update({"current": r.fallback.current, "reason": s.public(r.fallback.error)})
    body["last_reload"] = last
    if r.model is None:
        body.setdefault("reason", s.public(st.error) if st else "no model loaded")
        return jsonify(body), 503
    g.model_version = r.model.version
    return jsonify(body)


@bp.get("/v1/model")
def model_info() -> Any:
    """The served model's manifest, without paths or credentials."""
    s = services()
    model = require_model()
    m = model.manifest
    return jsonify({"model_version": model.version, "red_threshold": s.settings.red_threshold,
                    "manifest": public_value({k: m.get(k) for k in MANIFEST_KEYS if k in m}, s.registry_names)})


@bp.get("/metrics")
def metrics_route() -> Response:
    """Prometheus metrics of every worker."""
    return Response(services().metrics.render(), mimetype="text/plain; version=0.0.4")


@bp.get("/openapi.json")
def openapi_route() -> Any:
    """The OpenAPI document, with this app's limits."""
    return jsonify(openapi_document(services().settings))
