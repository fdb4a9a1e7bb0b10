"""Scoring blueprint: /v1/score and /v1/rank."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, g, jsonify, request

from iscore.registry import LoadedModel
from iscore.scoring import explain, rank_order, score, tier
from service.context import json_body, require_model, services
from service.schema import Headline, in_window, parse_flag, parse_rank, parse_score

bp = Blueprint("scoring", __name__)


def _scored(model: LoadedModel, heads: list[Headline], with_explain: bool) -> list[dict[str, Any]]:
    s = services()
    records = [h.record() for h in heads]
    values = score(model.pipeline, records)
    s.metrics.headlines.inc(len(heads))
    g.n_headlines = len(heads)
    items = [
        {"id": h.id, "text": h.text, "i_score": round(float(v), 1), "tier": tier(round(float(v), 1), s.settings.red_threshold)}
        for h, v in zip(heads, values)
    ]
    if with_explain:
        for item, ex in zip(items, explain(model.pipeline, records, s.settings.explain_top)):
            item["explain"] = ex
    return items


@bp.post("/v1/score")
def score_route() -> Any:
    """Score headlines in request order."""
    s = services()
    with_explain = parse_flag(request.args.get("explain"), "explain")
    heads = parse_score(json_body(), s.limits, with_explain)
    model = require_model()
    s.rate_limits.charge_headlines([h.text for h in heads], with_explain)
    return jsonify({"model_version": model.version, "scores": _scored(model, heads, with_explain)})


@bp.post("/v1/rank")
def rank_route() -> Any:
    """Rank headlines, highest i-Score first, optionally within a time window."""
    s = services()
    with_explain = parse_flag(request.args.get("explain"), "explain")
    req = parse_rank(json_body(), s.limits, with_explain)
    model = require_model()
    s.rate_limits.charge_headlines([h.text for h in req.headlines], with_explain)
    heads = req.headlines
    now = req.now or datetime.now(timezone.utc)
    if req.window_minutes is not None:
        heads = [h for h in heads if in_window(h, now, req.window_minutes)]
    items = _scored(model, heads, with_explain) if heads else []
    order = rank_order([it["i_score"] for it in items], [it["id"] for it in items])[: req.limit]
    ranked = [{"rank": r + 1, **items[i]} for r, i in enumerate(order)]
    return jsonify({"model_version": model.version, "ranked": ranked,
                    "considered": len(heads), "excluded_by_window": len(req.headlines) - len(heads)})
