"""The objects one app shares between its blueprints, reached through one typed accessor."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from flask import current_app, g, request

from iscore.redact import public_text
from iscore.registry import LoadedModel
from iscore.settings import Settings
from service.body import BODY_ERROR, BODY_JSON, read_body
from service.errors import ApiError
from service.feedback_store import FeedbackStore
from service.holder import ModelHolder
from service.limits import RateLimits
from service.observability import Metrics
from service.schema import Limits, parse_json_body, require_json


@dataclass(frozen=True)
class Services:
    """Settings, model holder, metrics, feedback store and limits of one app (built by create_app)."""

    settings: Settings
    holder: ModelHolder
    metrics: Metrics
    feedback: FeedbackStore
    rate_limits: RateLimits
    limits: Limits
    registry_names: tuple[tuple[str, str], ...]

    def __getitem__(self, name: str) -> Any:
        """A field by name: gunicorn_conf.py and tests read ``app.extensions["iscore"]["holder"]``."""
        if name not in _FIELDS:
            raise KeyError(name)
        return getattr(self, name)

    def public(self, reason: str | None) -> str | None:
        """A registry error as clients see it: "the model registry", not the directory's path."""
        return None if reason is None else public_text(reason, self.registry_names)


_FIELDS = frozenset(f.name for f in fields(Services))


def registry_names(model_dir: Path) -> tuple[tuple[str, str], ...]:
    """The spellings of the model directory that replies replace by "the model registry"."""
    # Registry errors name the model directory; clients learn what is wrong, not where files live.
    return ((str(model_dir.resolve()), "the model registry"), (str(model_dir), "the model registry"))


def request_limits(settings: Settings) -> Limits:
    """The per-request limits the parsers apply."""
    return Limits(settings.max_headlines, settings.max_headline_chars, settings.default_limit,
                  max_request_chars=settings.max_request_chars,
                  max_explain_headlines=settings.max_explain_headlines)


def services() -> Services:
    """The current app's Services."""
    return current_app.extensions["iscore"]


def require_model() -> LoadedModel:
    """The served model (recorded for the X-Model-Version header), or a 503 when none is loaded."""
    s = services()
    model = s.holder.get()
    if model is None:
        reason = s.holder.status.error if s.holder.status else "no model loaded"
        raise ApiError(503, "model_unavailable", "no verified model is loaded; see /readyz",
                       {"reason": s.public(reason)})
    g.model_version = model.version
    return model


def json_body() -> Any:
    """The request's JSON body, read within the body size and time limits."""
    settings = services().settings
    content_type = request.headers.get("Content-Type")
    require_json(content_type)  # before reading a body that would be refused anyway
    failed = request.environ.get(BODY_ERROR)
    if failed is not None:  # the thin /v1/score path read the body and failed: the same error, raised here
        raise failed
    if BODY_JSON in request.environ:  # the thin path parsed it, then left the reply to Flask: not twice
        return request.environ[BODY_JSON]
    raw = read_body(request.environ, settings.max_body_bytes, settings.body_timeout_seconds)
    return parse_json_body(raw, content_type)
