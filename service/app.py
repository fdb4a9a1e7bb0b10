"""The i-Score Flask app factory. Views parse, call the pure core and serialise; nothing more."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timezone
from typing import Any

from flask import Flask, Response, g, jsonify, request

from iscore import feedback
from iscore.redact import public_text, public_value
from iscore.registry import ArtifactError, LoadedModel
from iscore.scoring import explain, rank_order, score, tier
from iscore.settings import Settings
from service.body import read_body
from service.errors import ApiError, register_error_handlers
from service.feedback_store import FeedbackStore
from service.holder import ModelHolder
from service.limits import RateLimits
from service.observability import Metrics, configure_logging, install_hooks
from service.openapi import openapi_document
from service.schema import (
    Headline,
    Limits,
    canonical_json,
    in_window,
    parse_feedback,
    parse_flag,
    parse_idempotency_key,
    parse_json_body,
    parse_rank,
    parse_score,
    require_json,
)



def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; loads the CURRENT model (a failure leaves /readyz at 503, not a crash)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # keep reply fields in a readable order
    metrics = Metrics()
    holder = ModelHolder(settings.model_dir, on_reload=metrics.on_reload)
    app.extensions["iscore"] = {"settings": settings, "holder": holder, "metrics": metrics}
    limits = Limits(settings.max_headlines, settings.max_headline_chars, settings.default_limit,
                    max_request_chars=settings.max_request_chars,
                    max_explain_headlines=settings.max_explain_headlines)
    # Registry errors name the model directory; clients learn what is wrong, not where files live.
    registry_names = [(str(settings.model_dir.resolve()), "the model registry"),
                      (str(settings.model_dir), "the model registry")]

    def public(reason: str | None) -> str | None:
        return None if reason is None else public_text(reason, registry_names)

    # CURRENT, or the registry's fallback when CURRENT is broken; nothing at all leaves /readyz at 503.
    # Polling for new versions runs in the background (gunicorn_conf starts it in each worker).
    holder.refresh()
    register_error_handlers(app)
    logging.getLogger("iscore.app").info("app created", extra={"fields": {"settings": settings.public()}})

    install_hooks(app, metrics, holder)
    # After the hooks, so a request refused by a rate limit still has its request id and timing.
    rate = RateLimits(app, settings)
    app.extensions["iscore"]["rate_limits"] = rate

    def require_model() -> LoadedModel:
        model = holder.get()
        if model is None:
            reason = holder.status.error if holder.status else "no model loaded"
            raise ApiError(503, "model_unavailable", "no verified model is loaded; see /readyz",
                           {"reason": public(reason)})
        g.model_version = model.version
        return model

    def json_body() -> Any:
        content_type = request.headers.get("Content-Type")
        require_json(content_type)  # before reading a body that would be refused anyway
        raw = read_body(request.environ, settings.max_body_bytes, settings.body_timeout_seconds)
        return parse_json_body(raw, content_type)

    def scored(model: LoadedModel, heads: list[Headline], with_explain: bool) -> list[dict[str, Any]]:
        records = [h.record() for h in heads]
        values = score(model.pipeline, records)
        metrics.headlines.inc(len(heads))
        g.n_headlines = len(heads)
        items = [
            {"id": h.id, "text": h.text, "i_score": round(float(v), 1), "tier": tier(round(float(v), 1), settings.red_threshold)}
            for h, v in zip(heads, values)
        ]
        if with_explain:
            for item, ex in zip(items, explain(model.pipeline, records, settings.explain_top)):
                item["explain"] = ex
        return items

    @app.post("/v1/score")
    def score_route() -> Any:
        with_explain = parse_flag(request.args.get("explain"), "explain")
        heads = parse_score(json_body(), limits, with_explain)
        model = require_model()
        rate.charge_headlines([h.text for h in heads], with_explain)
        return jsonify({"model_version": model.version, "scores": scored(model, heads, with_explain)})

    @app.post("/v1/rank")
    def rank_route() -> Any:
        with_explain = parse_flag(request.args.get("explain"), "explain")
        req = parse_rank(json_body(), limits, with_explain)
        model = require_model()
        rate.charge_headlines([h.text for h in req.headlines], with_explain)
        heads = req.headlines
        now = req.now or datetime.now(timezone.utc)
        if req.window_minutes is not None:
            heads = [h for h in heads if in_window(h, now, req.window_minutes)]
        items = scored(model, heads, with_explain) if heads else []
        order = rank_order([it["i_score"] for it in items], [it["id"] for it in items])[: req.limit]
        ranked = [{"rank": r + 1, **items[i]} for r, i in enumerate(order)]
        return jsonify({"model_version": model.version, "ranked": ranked,
                        "considered": len(heads), "excluded_by_window": len(req.headlines) - len(heads)})

    @app.get("/healthz")
    def healthz() -> Any:
        model = holder.get()
        return jsonify({"status": "ok", "model_version": model.version if model else None})

    @app.get("/readyz")
    def readyz() -> Any:
        r = holder.readiness()
        st = r.status
        last = None if st is None else {"ok": st.ok, "version": st.version, "error": public(st.error),
                                        "at": datetime.fromtimestamp(st.at, timezone.utc).isoformat()}
        body: dict[str, Any] = {"status": r.state, "model_version": r.model.version if r.model else None}
        if r.fallback is not None:
            # Serving, but not what CURRENT names: ready for traffic, and says so to operators.
            body.update({"current": r.fallback.current, "reason": public(r.fallback.error)})
        body["last_reload"] = last
        if r.model is None:
            body.setdefault("reason", public(st.error) if st else "no model loaded")
            return jsonify(body), 503
        g.model_version = r.model.version
        return jsonify(body)

    @app.get("/v1/model")
    def model_info() -> Any:
        model = require_model()
        m = model.manifest
        # No "command": a training command line can carry a database URL with its password.
        keys = ("version", "created_at", "libraries", "data", "target", "model_config", "features",
                "metrics", "sha256", "model_bytes")
        return jsonify({"model_version": model.version, "red_threshold": settings.red_threshold,
                        "manifest": public_value({k: m.get(k) for k in keys if k in m}, registry_names)})

    @app.get("/metrics")
    def metrics_route() -> Response:
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.get("/openapi.json")
    def openapi_route() -> Any:
        return jsonify(openapi_document(settings))

    def require_admin() -> None:
        if not settings.admin_token:
            raise ApiError(403, "admin_disabled", "admin routes are off: set ISCORE_ADMIN_TOKEN to enable them")
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <ISCORE_ADMIN_TOKEN>'")
        if not hmac.compare_digest(token.strip().encode(), settings.admin_token.encode()):
            raise ApiError(401, "unauthorized", "wrong token")

    @app.post("/v1/admin/reload")
    def reload_route() -> Any:
        require_admin()
        before = holder.get()
        try:
            model = holder.reload()
        except ArtifactError as e:
            serving = holder.get()
            raise ApiError(409, "reload_failed", "the version CURRENT names was refused; the last good model serves",
                           {"reason": public(str(e)), "serving": serving.version if serving else None}) from None
        g.model_version = model.version
        return jsonify({"model_version": model.version, "previous_version": before.version if before else None})

    store = FeedbackStore(settings.database_url, connect_timeout=settings.database_connect_timeout_seconds,
                          statement_timeout=settings.database_statement_timeout_seconds)
    app.extensions["iscore"]["feedback"] = store

    @app.post("/v1/feedback")
    def feedback_route() -> Any:
        require_admin()
        key = parse_idempotency_key(request.headers.get("Idempotency-Key"))
        body = json_body()
        batch = parse_feedback(body, limits)
        if key is None:
            return jsonify(store.call(lambda engine: feedback.store(engine, batch)))
        fingerprint = hashlib.sha256(canonical_json(body)).hexdigest()
        try:
            counts, replayed = store.call(lambda engine: feedback.store_once(engine, batch, key, fingerprint))
        except feedback.IdempotencyConflict:
            raise ApiError(409, "idempotency_key_reused",
                           "this Idempotency-Key was already used for a different batch; send a new key with a new "
                           "batch", {"header": "Idempotency-Key"}) from None
        resp = jsonify(counts)
        resp.headers["Idempotent-Replayed"] = "true" if replayed else "false"
        return resp

    @app.get("/v1/feedback/stats")
    def feedback_stats_route() -> Any:
        require_admin()
        return jsonify(store.call(feedback.stats))

    return app

