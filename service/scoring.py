"""Scoring blueprint: /v1/score and /v1/rank."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from flask import Blueprint, current_app, g, jsonify, request

from iscore.model import blends
from iscore.registry import LoadedModel
from iscore.scoring import rank_order, reply_items
from iscore.settings import BLEND_NAMES
from iscore.story_score import StoryParams
from iscore.window import group_stories
from service.context import json_body, require_model, services
from service.headlines import ingest_state
from service.query import QueryArgs
from service.schema import Headline, Limits, in_window, parse_blend, parse_flag, parse_rank, parse_score

bp = Blueprint("scoring", __name__)
T = TypeVar("T")


def _admit(parse: Callable[[Any, Limits, bool], T],
           headlines: Callable[[T], list[Headline]]) -> tuple[T, LoadedModel, bool, str]:
    """The parsed request, the served model, the explain flag and the blend, once the headline budget is charged."""
    # This order: a bad request is refused before a missing model (503), and a 503 costs no budget.
    s = services()
    # One 422 for every bad query parameter (an unknown one too: "?limit=" belongs in the body of /v1/rank).
    query = QueryArgs(request.args, ("blend", "explain"))
    with_explain = bool(query.choice("explain", lambda raw: parse_flag(raw, "explain")))
    query.choice("blend", lambda raw: raw is None or parse_blend(raw, BLEND_NAMES, s.settings.blend))
    query.check()
    req = parse(json_body(), s.limits, with_explain)
    model = require_model()
    blend = parse_blend(request.args.get("blend"), blends(model.pipeline), s.settings.blend)
    s.rate_limits.charge_headlines([h.text for h in headlines(req)], with_explain)
    return req, model, with_explain, blend


def _items(model: LoadedModel, heads: list[Headline], with_explain: bool, blend: str) -> list[dict[str, Any]]:
    """Reply items for ``heads``, counted in the metrics and the access log."""
    s = services()
    items = reply_items(model.pipeline, [(h.id, h.text, h.source) for h in heads],
                        red_threshold=s.settings.red_threshold, explain_top=s.settings.explain_top,
                        with_explain=with_explain, blend=blend, scorer=model.scorer)
    s.metrics.headlines.inc(len(heads))
    g.n_headlines = len(heads)
    return items


@bp.post("/v1/score")
def score_route() -> Any:
    """Score headlines in request order."""
    heads, model, with_explain, blend = _admit(parse_score, lambda heads: heads)
    return jsonify({"model_version": model.version, "blend": blend,
                    "scores": _items(model, heads, with_explain, blend)})


@bp.post("/v1/rank")
def rank_route() -> Any:
    """Rank headlines, highest i-Score first, optionally within a time window."""
    req, model, with_explain, blend = _admit(parse_rank, lambda req: req.headlines)
    heads = req.headlines
    now = req.now or datetime.now(timezone.utc)
    if req.window_minutes is not None:
        heads = [h for h in heads if in_window(h, now, req.window_minutes)]
    items = _items(model, heads, with_explain, blend) if heads else []
    order = rank_order([it["i_score"] for it in items], [it["id"] for it in items])[: req.limit]
    ranked = [{"rank": r + 1, **items[i]} for r, i in enumerate(order)]
    reply = {"model_version": model.version, "blend": blend, "ranked": ranked,
             "considered": len(heads), "excluded_by_window": len(req.headlines) - len(heads)}
    if req.group_stories:  # clustering within the request (#16); the live window is GET /v1/top
        s = services().settings
        reply["stories"] = group_stories(
            [(h.id, h.text, h.source or "", h.published_at, it["i_score"]) for h, it in zip(heads, items)], now,
            req.limit, red_threshold=s.red_threshold,
            params=StoryParams(s.story_half_life_minutes, s.story_velocity_minutes),
            index_options=ingest_state(current_app).index_options()[1])
    return jsonify(reply)
