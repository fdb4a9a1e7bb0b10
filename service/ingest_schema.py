"""Parsing of POST /v1/headlines bodies: pure functions, one verdict per item (partial acceptance).

An item is ``{"id", "text", "source", "published_at", "url"?, "section"?}``; ``id`` may be left out when ``url``
is given (the URL then identifies the headline). Each item is accepted or refused on its own, with the problems of
a refused item listed by field; only a body that is not an object with a non-empty ``items`` list (or is over the
per-request limits) is refused as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from iscore.features import normalize_text
from iscore.sources import normalize_source
from service.errors import ApiError
from service.schema import TEXT_PATTERN, Limits, _problem, check_request_chars, parse_time

MAX_ID_CHARS = 200
MAX_SOURCE_CHARS = 200
MAX_SECTION_CHARS = 100
MAX_URL_CHARS = 2000
ITEM_FIELDS = frozenset({"id", "text", "source", "published_at", "url", "section"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_VISIBLE = re.compile(TEXT_PATTERN)
_SECTION = re.compile(r"^[a-z0-9][a-z0-9 _./&-]{0,99}$")


@dataclass(frozen=True)
class IngestItem:
    """One accepted headline: clean text, the source's key, a UTC time no later than receipt."""

    text: str
    source: str
    published_at: datetime
    id: str | None = None
    url: str | None = None
    section: str | None = None


def _short_str(value: Any, field: str, max_chars: int, problems: list[dict[str, str]]) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and field.endswith(".id"):
        value = str(value)
    if not isinstance(value, str):
        problems.append(_problem(field, "must be a string"))
        return None
    value = normalize_text(_CONTROL.sub(" ", value))
    if not value:
        problems.append(_problem(field, "must not be empty"))
        return None
    if len(value) > max_chars:
        problems.append(_problem(field, f"must be at most {max_chars} characters"))
        return None
    return value


def parse_item(raw: Any, index: int, limits: Limits, now: datetime, oldest: datetime
               ) -> tuple[IngestItem | None, list[dict[str, str]]]:
    """One item's verdict: (the item, []) or (None, its problems). Never raises on any JSON value.

    ``published_at`` after ``now`` is taken as ``now`` (a clock ahead of ours must not pin a story to the top);
    before ``oldest`` (the retention limit) the item is refused.
    """
    f = f"items[{index}]"
    problems: list[dict[str, str]] = []
    if not isinstance(raw, dict):
        return None, [_problem(f, "must be an object with id, text, source and published_at")]
    unknown = set(raw) - ITEM_FIELDS
    if unknown:
        problems.append(_problem(f, f"unknown field(s): {', '.join(sorted(map(str, unknown)))[:200]}"))
    text = raw.get("text")
    clean = None
    if not isinstance(text, str):
        problems.append(_problem(f"{f}.text", "is required and must be a string"))
    elif len(text) > limits.max_headline_chars:
        problems.append(_problem(f"{f}.text", f"must be at most {limits.max_headline_chars} characters"))
    elif UNSTORABLE.search(text):  # the batch is read without the whole-body NUL check: judged per item
        problems.append(_problem(f"{f}.text", "must not contain NUL or unpaired surrogate characters"))
    else:
        clean = normalize_text(_CONTROL.sub(" ", text))
        if not _VISIBLE.search(text) or not clean:
            problems.append(_problem(f"{f}.text", "must not be empty or only whitespace"))
            clean = None
    hid = None if raw.get("id") is None else _short_str(raw.get("id"), f"{f}.id", MAX_ID_CHARS, problems)
    url = None if raw.get("url") is None else _url(raw.get("url"), f"{f}.url", problems)
    if raw.get("id") is None and raw.get("url") is None:
        problems.append(_problem(f"{f}.id", "is required (or give a url, which then identifies the headline)"))
    source = None
    if raw.get("source") is None:
        problems.append(_problem(f"{f}.source", "is required: the outlet (a name, a domain or a slug)"))
    else:
        name = _short_str(raw.get("source"), f"{f}.source", MAX_SOURCE_CHARS, problems)
        if name is not None:
            source = normalize_source(name).key
            if not source:
                problems.append(_problem(f"{f}.source", "must name an outlet (letters or digits)"))
                source = None
    section = None
    if raw.get("section") is not None:
        s = _short_str(raw.get("section"), f"{f}.section", MAX_SECTION_CHARS, problems)
        if s is not None:
            section = s.lower()
    published = None
    if raw.get("published_at") is None:
        problems.append(_problem(f"{f}.published_at", "is required (ISO-8601 or RFC 2822)"))
    else:
        published = parse_time(raw.get("published_at"), f"{f}.published_at", problems)
        if published is not None:
            if published > now:
                published = now
            if published < oldest:
                problems.append(_problem(f"{f}.published_at", "is older than the store keeps headlines "
                                                               "(ISCORE_WINDOW_RETENTION_HOURS)"))
    for value in (hid, source, section, url):
        if value is not None and UNSTORABLE.search(value):
            problems.append(_problem(f, "strings must not contain NUL or unpaired surrogate characters"))
            break
    if problems or clean is None or source is None or published is None:
        return None, problems
    return IngestItem(text=clean, source=source, published_at=published, id=hid, url=url, section=section), []


UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _url(value: Any, field: str, problems: list[dict[str, str]]) -> str | None:
    if not isinstance(value, str):
        problems.append(_problem(field, "must be a string"))
        return None
    value = value.strip()
    if len(value) > MAX_URL_CHARS:
        problems.append(_problem(field, f"must be at most {MAX_URL_CHARS} characters"))
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(
            c.isspace() for c in value):
        problems.append(_problem(field, "must be an http(s) URL such as https://example.com/story"))
        return None
    return value


def parse_items_body(body: Any, limits: Limits) -> list[Any]:
    """The raw item list of a body, or the 422 for the body as a whole (not an object, empty, too many)."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise ApiError(422, "invalid_request", "the body must be a JSON object with an 'items' list",
                       [_problem("items", "is required and must be a list")])
    extra = set(body) - {"items"}
    if extra:
        raise ApiError(422, "invalid_request", "unknown field(s) in the body",
                       [_problem("(body)", f"unknown field(s): {', '.join(sorted(map(str, extra)))[:200]}")])
    items = body["items"]
    if not items:
        raise ApiError(422, "invalid_request", "'items' must not be empty", [_problem("items", "must not be empty")])
    if len(items) > limits.max_headlines:
        raise ApiError(422, "too_many_items", f"at most {limits.max_headlines} items per request (got {len(items)}); "
                       "split the batch", {"max_items": limits.max_headlines, "got": len(items)})
    check_request_chars(items, limits)
    return items


def retention_start(now: datetime, retention_hours: float) -> datetime:
    """The oldest publication time the store keeps at ``now``."""
    return now - timedelta(hours=retention_hours)
