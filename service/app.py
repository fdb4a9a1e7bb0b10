"""The i-Score Flask app factory: builds the shared objects and wires hooks and blueprints; nothing more."""

from __future__ import annotations

import logging

from flask import Flask

from iscore.settings import Settings
from iscore.triage import load_language_model
from service import admin, feedback, headlines, meta, pages, scoring, thin
from service.context import Services, registry_names, request_limits
from service.errors import register_error_handlers
from service.feedback_store import FeedbackStore
from service.holder import ModelHolder
from service.limits import RateLimits
from service.observability import Metrics, configure_logging, install_hooks


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; loads the CURRENT model (a failure leaves /readyz at 503, not a crash)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    # "//" in a path is a 404 like any unknown path, not a redirect built from the Host header (cache poisoning).
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # keep reply fields in a readable order
    metrics = Metrics()
    holder = ModelHolder(settings.model_dir, on_reload=metrics.on_reload, on_uncompiled=metrics.on_uncompiled,
                         compiled=bool(settings.compiled_scorer), c_reader=bool(settings.c_reader))
    # CURRENT, or the registry's fallback when CURRENT is broken; nothing at all leaves /readyz at 503.
    # Polling for new versions runs in the background (gunicorn_conf starts it in each worker).
    holder.refresh()
    load_language_model()  # 0.5 s once per process; under gunicorn in the master, shared by every worker
    register_error_handlers(app)
    logging.getLogger("iscore.app").info("app created", extra={"fields": {"settings": settings.public()}})
    replies = install_hooks(app, metrics, holder)
    # After the hooks, so a request refused by a rate limit still has its request id and timing.
    rate_limits = RateLimits(app, settings)
    store = FeedbackStore(settings.database_url, connect_timeout=settings.database_connect_timeout_seconds,
                          statement_timeout=settings.database_statement_timeout_seconds)
    app.extensions["iscore"] = Services(settings=settings, holder=holder, metrics=metrics, feedback=store,
                                        rate_limits=rate_limits, limits=request_limits(settings),
                                        registry_names=registry_names(settings.model_dir))
    for blueprint in (scoring.bp, meta.bp, admin.bp, feedback.bp, headlines.bp):
        app.register_blueprint(blueprint)
    pages.install(app, settings)  # the sidebar, editor's desk and model page (issue #17)
    # Last, once every hook is in place: ordinary POST /v1/score requests answered in front of Flask.
    thin.install(app, replies)
    return app
