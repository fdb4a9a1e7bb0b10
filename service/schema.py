"""Request parsing and validation: pure functions from bytes / JSON values to typed requests."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from iscore.features import normalize_text
from service.errors import ApiError

MAX_ID_CHARS = 200
MAX_SOURCE_CHARS = 200
MAX_WINDOW_MINUTES = 60 * 24 * 366 * 10
MAX_JSON_DEPTH = 32
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A headline needs one character that is neither white space nor a control character. The set is
# spelled out (no \s) so the OpenAPI document states exactly the rule the server applies.
TEXT_PATTERN = "[^ \\t\\n\\r\\f\\v\\x00-\\x1f\\x7f-\\x9f\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
_VISIBLE = re.compile(TEXT_PATTERN)


@dataclass(frozen=True)
class Limits:
    """Request limits (from settings)."""

    max_headlines: int
    max_headline_chars: int
    default_limit: int = 10


@dataclass(frozen=True)
class Headline:
    """One validated headline."""

    id: str
    text: str
    published_at: datetime | None = None
    source: str | None = None

    def record(self) -> dict[str, str]:
        """The record form the model pipeline takes."""
        return {"text": self.text, "source": self.source or ""}


@dataclass(frozen=True)
class RankRequest:
    """A validated /v1/rank body."""

    headlines: list[Headline]
    limit: int
    window_minutes: float | None
    now: datetime | None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, iteratively (no recursion on hostile input)."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d > limit:
            return d
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def parse_json_body(raw: bytes, content_type: str | None) -> Any:
    """Decode a JSON request body or raise the matching 415/400 ApiError."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json",
                       {"content_type": content_type or None})
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, "malformed_json", "the body is not valid UTF-8", {"position": e.start}) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {e.msg}",
                       {"line": e.lineno, "column": e.colno}) from None
    except (ValueError, RecursionError) as e:
        raise ApiError(400, "malformed_json", f"the body is not acceptable JSON: {str(e)[:200]}") from None
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ApiError(400, "malformed_json", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _problem(field: str, problem: str) -> dict[str, str]:
    return {"field": field, "problem": problem}


def parse_time(value: Any, field: str, problems: list[dict[str, str]]) -> datetime | None:
    """An ISO-8601 timestamp as an aware UTC datetime; naive times are taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        problems.append(_problem(field, "must be an ISO-8601 string such as 2026-11-24T18:05:00Z"))
        return None
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        problems.append(_problem(field, "must be an ISO-8601 string such as 2026-11-24T18:05:00Z"))
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    try:
        return t.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        # e.g. 0001-01-01T00:00+02:00 is before the first representable UTC instant
        return datetime.min.replace(tzinfo=timezone.utc) if t.year == 1 else datetime.max.replace(tzinfo=timezone.utc)


def _opt_str(value: Any, field: str, max_chars: int, problems: list[dict[str, str]]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(_problem(field, "must be a string"))
        return None
    if len(value) > max_chars:
        problems.append(_problem(field, f"must be at most {max_chars} characters"))
        return None
    return value


def _headline(item: Any, i: int, limits: Limits, problems: list[dict[str, str]]) -> Headline | None:
    field = f"headlines[{i}]"
    if isinstance(item, str):
        item = {"text": item}
    if not isinstance(item, dict):
        problems.append(_problem(field, "must be a string or an object with a 'text' string"))
        return None
    unknown = set(item) - {"text", "id", "published_at", "source"}
    if unknown:
        problems.append(_problem(field, f"unknown field(s): {', '.join(sorted(map(str, unknown)))[:200]}"))
    text = item.get("text")
    if not isinstance(text, str):
        problems.append(_problem(f"{field}.text", "is required and must be a string"))
        return None
    if len(text) > limits.max_headline_chars:
        problems.append(_problem(f"{field}.text", f"must be at most {limits.max_headline_chars} characters"))
        return None
    clean = normalize_text(_CONTROL.sub(" ", text))
    if not _VISIBLE.search(text) or not clean:
        problems.append(_problem(f"{field}.text", "must not be empty or only whitespace"))
        return None
    raw_id = item.get("id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    hid = _opt_str(raw_id, f"{field}.id", MAX_ID_CHARS, problems)
    source = _opt_str(item.get("source"), f"{field}.source", MAX_SOURCE_CHARS, problems)
    published = parse_time(item.get("published_at"), f"{field}.published_at", problems)
    return Headline(id=hid if hid is not None else str(i), text=clean, published_at=published,
                    source=normalize_text(source).lower() if source else None)


def parse_headlines(body: Any, limits: Limits, allowed: frozenset[str]) -> list[Headline]:
    """Validate the shared ``{"headlines": [...]}`` part of a body; raise 422 listing every problem."""
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_request", "the body must be a JSON object with a 'headlines' list")
    unknown = set(body) - allowed
    problems: list[dict[str, str]] = []
    if unknown:
        problems.append(_problem("(body)", f"unknown field(s): {', '.join(sorted(map(str, unknown)))[:200]}"))
    items = body.get("headlines")
    if not isinstance(items, list):
        raise ApiError(422, "invalid_request", "'headlines' is required and must be a list", problems or None)
    if not items:
        raise ApiError(422, "invalid_request", "'headlines' must not be empty")
    if len(items) > limits.max_headlines:
        raise ApiError(422, "too_many_headlines",
                       f"at most {limits.max_headlines} headlines per request (got {len(items)}); "
                       "split the batch or raise ISCORE_MAX_HEADLINES",
                       {"max_headlines": limits.max_headlines, "got": len(items)})
    out = []
    for i, item in enumerate(items):
        h = _headline(item, i, limits, problems)
        if h is not None:
            out.append(h)
        if len(problems) >= 50:
            break
    if problems:
        raise ApiError(422, "invalid_request", f"{len(problems)} problem(s) in the request; see details",
                       problems[:50])
    return out


def parse_score(body: Any, limits: Limits) -> list[Headline]:
    """Validate a /v1/score body."""
    return parse_headlines(body, limits, frozenset({"headlines"}))


def parse_rank(body: Any, limits: Limits) -> RankRequest:
    """Validate a /v1/rank body."""
    headlines = parse_headlines(body, limits, frozenset({"headlines", "limit", "window_minutes", "now"}))
    problems: list[dict[str, str]] = []
    limit = body.get("limit", limits.default_limit)
    if isinstance(limit, float) and limit.is_integer():  # JSON Schema counts 10.0 as an integer
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= limits.max_headlines:
        problems.append(_problem("limit", f"must be an integer from 1 to {limits.max_headlines}"))
    window = body.get("window_minutes")
    if window is not None and (isinstance(window, bool) or not isinstance(window, (int, float))
                               or not 0 < window <= MAX_WINDOW_MINUTES):
        problems.append(_problem("window_minutes", f"must be a number above 0 and at most {MAX_WINDOW_MINUTES}"))
        window = None
    now = parse_time(body.get("now"), "now", problems)
    if problems:
        raise ApiError(422, "invalid_request", f"{len(problems)} problem(s) in the request; see details", problems)
    return RankRequest(headlines=headlines, limit=limit, window_minutes=window, now=now)


def in_window(h: Headline, now: datetime, window_minutes: float) -> bool:
    """Published within ``window_minutes`` before ``now`` (undated and future items are not)."""
    if h.published_at is None:
        return False
    try:
        start = now - timedelta(minutes=window_minutes)
    except OverflowError:  # a window reaching before year 1 covers everything earlier
        return h.published_at <= now
    return start <= h.published_at <= now


def parse_flag(value: str | None, name: str) -> bool:
    """A boolean query flag: true/false/1/0/yes/no/on/off, lower case as documented (absent = false)."""
    if value is None:
        return False
    v = value
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ApiError(400, "invalid_query", f"query parameter {name!r} must be true or false", {"got": value[:50]})


_LABEL_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def parse_feedback(body: Any, limits: Limits) -> list[Any]:
    """Validate a /v1/feedback body into FeedbackItems; raise 422 listing every problem."""
    from iscore.feedback import FeedbackItem

    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise ApiError(422, "invalid_request", "the body must be a JSON object with an 'items' list")
    extra = set(body) - {"items"}
    raw = body["items"]
    if not raw:
        raise ApiError(422, "invalid_request", "'items' must not be empty")
    if len(raw) > limits.max_headlines:
        raise ApiError(422, "too_many_items", f"at most {limits.max_headlines} items per request (got {len(raw)})",
                       {"max_items": limits.max_headlines, "got": len(raw)})
    problems: list[dict[str, str]] = []
    if extra:
        problems.append(_problem("(body)", f"unknown field(s): {', '.join(sorted(map(str, extra)))[:200]}"))
    out = []
    allowed = {"id", "text", "label", "label_kind", "published_at", "source", "observed_at"}
    for i, item in enumerate(raw):
        f = f"items[{i}]"
        if not isinstance(item, dict):
            problems.append(_problem(f, "must be an object with 'text' and 'label'"))
            continue
        if set(item) - allowed:
            problems.append(_problem(f, f"unknown field(s): {', '.join(sorted(map(str, set(item) - allowed)))[:200]}"))
        h = _headline({"text": item.get("text"), "id": item.get("id"), "source": item.get("source"),
                       "published_at": item.get("published_at")}, i, limits, problems)
        kind = item.get("label_kind", "score")
        if not isinstance(kind, str) or not _LABEL_KIND.match(kind):
            problems.append(_problem(f"{f}.label_kind", "must match [a-z][a-z0-9_]{0,39}, e.g. score, shares, clicks"))
            kind = "score"
        label = item.get("label")
        if isinstance(label, bool) or not isinstance(label, (int, float)) or not math.isfinite(label):
            problems.append(_problem(f"{f}.label", "is required and must be a finite number"))
        elif label < 0 or (kind == "score" and label > 100):
            problems.append(_problem(f"{f}.label", "must be >= 0 (and <= 100 for label_kind 'score')"))
        observed = parse_time(item.get("observed_at"), f"{f}.observed_at", problems)
        if h is not None and not problems:
            out.append(FeedbackItem(text=h.text, label=float(label), label_kind=kind,
                                    id=h.id if item.get("id") is not None else None,
                                    source=h.source or "", published_at=h.published_at, observed_at=observed))
        if len(problems) >= 50:
            break
    if problems:
        raise ApiError(422, "invalid_request", f"{len(problems)} problem(s) in the request; see details", problems[:50])
    return out
