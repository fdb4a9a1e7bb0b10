"""Request parsing and validation: pure functions from bytes / JSON values to typed requests."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from iscore.features import normalize_text
from iscore.settings import BLEND_NAMES
from service.errors import ApiError

MAX_ID_CHARS = 200
MAX_SOURCE_CHARS = 200
MAX_WINDOW_MINUTES = 60 * 24 * 366 * 10
MAX_JSON_DEPTH = 32
MAX_PROBLEMS = 50  # field problems listed in one 422 (validation stops soon after)
LABEL_KIND_PATTERN = "^[a-z][a-z0-9_]{0,39}$"
# Printable ASCII without spaces (UUIDs, ULIDs, "batch-2026-11-24-001"...).
IDEMPOTENCY_KEY_PATTERN = "^[!-~]{1,200}$"
FLAG_TRUE = ("true", "1", "yes", "on")
FLAG_FALSE = ("false", "0", "no", "off")
# The same words in any letter case, spelled for JSON Schema (ECMA-262 has no (?i) flag).
FLAG_PATTERN = "^(" + "|".join("".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in w)
                               for w in FLAG_TRUE + FLAG_FALSE) + ")$"
# NUL and unpaired UTF-16 surrogates: JSON can carry them ("\u0000", "\udfff") but PostgreSQL text
# cannot store NUL and no UTF-8 encoder takes a lone surrogate, so they are refused at the door.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_PROBLEM = "must not contain NUL (U+0000) or unpaired surrogate (U+D800-U+DFFF) characters"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A headline needs one character that is neither white space, a zero-width character nor a control character. The set is
# spelled out (no \s) so the OpenAPI document states exactly the rule the server applies.
TEXT_PATTERN = "[^ \\t\\n\\r\\f\\v\\x00-\\x1f\\x7f-\\x9f\\u00a0\\u1680\\u180e\\u2000-\\u200d\\u2060\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
_VISIBLE = re.compile(TEXT_PATTERN)
# For the OpenAPI document: strings without NUL (refused below, see _UNSTORABLE), and headline text
# that also has one visible character. JSON Schema has one pattern per string, hence the combination.
NO_NUL_PATTERN = "^[^\\x00]*$"
HEADLINE_TEXT_PATTERN = "^[^\\x00]*" + TEXT_PATTERN + "[^\\x00]*$"


@dataclass(frozen=True)
class Limits:
    """Request limits (from settings)."""

    max_headlines: int
    max_headline_chars: int
    default_limit: int = 10
    max_request_chars: int = 300_000
    max_explain_headlines: int = 100


@dataclass(frozen=True)
class Headline:
    """One validated headline."""

    id: str
    text: str
    published_at: datetime | None = None
    source: str | None = None


@dataclass(frozen=True)
class RankRequest:
    """A validated /v1/rank body."""

    headlines: list[Headline]
    limit: int
    window_minutes: float | None
    now: datetime | None
    group_stories: bool = False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # what json.loads(text, parse_constant=...) builds


def _loads(text: str) -> Any:
    """``json.loads(text, parse_constant=_reject_constant)`` without a decoder made per call."""
    if text.startswith("\ufeff"):  # json.loads' own test, which the decoder alone does not make
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


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


def unstorable_strings(value: Any, limit: int = MAX_PROBLEMS) -> list[str]:
    """Paths (``items[0].id``, ``headlines[2].<key>``) of strings holding NUL or lone surrogates."""
    found: list[str] = []
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack and len(found) < limit:
        v, path = stack.pop()
        if isinstance(v, str):
            if _UNSTORABLE.search(v):
                found.append(path or "(body)")
        elif isinstance(v, dict):
            for k, x in v.items():
                if _UNSTORABLE.search(k):
                    found.append(f"{path + '.' if path else ''}<key>")
                    continue
                stack.append((x, f"{path}.{k}" if path else k))
        elif isinstance(v, list):
            stack.extend((x, f"{path}[{i}]") for i, x in enumerate(v))
    return sorted(found)


def require_json(content_type: str | None) -> None:
    """Raise the 415 ApiError unless the content type is JSON (checked before the body is read)."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json",
                       {"content_type": content_type or None})


def decode_json(raw: bytes) -> tuple[Any, str]:
    """The JSON value of a body and its text, or a 400 ApiError (bad UTF-8 or JSON, NaN, nesting too deep)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, "malformed_json", "the body is not valid UTF-8", {"position": e.start}) from None
    if not text.strip():
        raise ApiError(400, "malformed_json", "the body is empty: send a JSON object", {"line": 1, "column": 1})
    try:
        value = _loads(text)
    except json.JSONDecodeError as e:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {e.msg}",
                       {"line": e.lineno, "column": e.colno}) from None
    except RecursionError:
        raise ApiError(400, "malformed_json", f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:
        # Python's own wording (e.g. about sys.set_int_max_str_digits) is not for clients.
        what = "a number with too many digits" if "digits" in str(e) else str(e)[:200]
        raise ApiError(400, "malformed_json", f"the body is not acceptable JSON: {what}") from None
    # A value nested deeper than MAX_JSON_DEPTH sits inside at least MAX_JSON_DEPTH containers, each opened by
    # a "[" or "{" in the text (brackets inside strings only add to the count): fewer, and no walk is needed.
    if text.count("[") + text.count("{") >= MAX_JSON_DEPTH and _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ApiError(400, "malformed_json", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value, text


def parse_json_body(raw: bytes, content_type: str | None) -> Any:
    """Decode a JSON request body or raise the matching 415/400/422 ApiError."""
    require_json(content_type)
    value, text = decode_json(raw)
    # Cheap pre-check on the raw text: NUL and surrogates only reach strings through \u escapes.
    if "\\u" in text:
        bad = unstorable_strings(value)
        if bad:
            raise _invalid([_problem(path, UNSTORABLE_PROBLEM) for path in bad])
    return value


def _problem(field: str, problem: str) -> dict[str, str]:
    return {"field": field, "problem": problem}


def _unknown_fields(field: str, names: set[Any]) -> dict[str, str]:
    """The problem of an object at ``field`` with keys outside its schema."""
    return _problem(field, f"unknown field(s): {', '.join(sorted(map(str, names)))[:200]}")


def _invalid(problems: list[dict[str, str]]) -> ApiError:
    """The 422 listing field problems (the first MAX_PROBLEMS; the message counts them all)."""
    if len(problems) == 1:  # the one problem in the message itself, as the query's 422 says it
        message = f"{problems[0]['field']} {problems[0]['problem']}"
    else:
        message = f"{len(problems)} problems in the request; see details"
    return ApiError(422, "invalid_request", message, problems[:MAX_PROBLEMS])


TIME_PROBLEM = "must be an ISO-8601 string such as 2026-11-24T18:05:00Z or an RFC 2822 date such as " \
               "Tue, 24 Nov 2026 18:05:00 GMT"


def parse_time(value: Any, field: str, problems: list[dict[str, str]]) -> datetime | None:
    """An ISO-8601 or RFC 2822 (RSS) timestamp as an aware UTC datetime; naive times are taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        problems.append(_problem(field, TIME_PROBLEM))
        return None
    t = _iso_or_rfc2822(value.strip())
    if t is None:
        problems.append(_problem(field, TIME_PROBLEM))
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    try:
        return t.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        # e.g. 0001-01-01T00:00+02:00 is before the first representable UTC instant
        return datetime.min.replace(tzinfo=timezone.utc) if t.year == 1 else datetime.max.replace(tzinfo=timezone.utc)


def _iso_or_rfc2822(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    if "," not in text and not any(c.isalpha() for c in text):
        return None  # RFC 2822 names a month; this spares odd numbers the lenient email parser
    try:
        # Feeds (RSS pubDate) write "Wed, 01 May 2024 11:30:00 GMT"; "-0000" means "zone unknown"
        # and comes back naive, which is then taken as UTC like a zone-less ISO time.
        return parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None


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


def _clean_text(text: str) -> str:
    """Control characters as spaces, white space collapsed (a printable text has no control character)."""
    return normalize_text(text if text.isprintable() else _CONTROL.sub(" ", text))


def _headline(item: Any, i: int, limits: Limits, problems: list[dict[str, str]],
              array: str = "headlines") -> Headline | None:
    if type(item) is str and len(item) <= limits.max_headline_chars:
        # The usual item, a bare string: what the object {"text": item} gives, without building one.
        clean = _clean_text(item)
        if clean and _VISIBLE.search(item):
            return Headline(id=str(i), text=clean)
    field = f"{array}[{i}]"
    if isinstance(item, str):
        item = {"text": item}
    if not isinstance(item, dict):
        problems.append(_problem(field, "must be a string or an object with a 'text' string"))
        return None
    unknown = set(item) - {"text", "id", "published_at", "source"}
    if unknown:
        problems.append(_unknown_fields(field, unknown))
    text = item.get("text")
    if not isinstance(text, str):
        problems.append(_problem(f"{field}.text", "is required and must be a string"))
        return None
    if len(text) > limits.max_headline_chars:
        problems.append(_problem(f"{field}.text", f"must be at most {limits.max_headline_chars} characters"))
        return None
    clean = _clean_text(text)
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
        raise ApiError(422, "invalid_request", "the body must be a JSON object with a 'headlines' list",
                       [_problem("(body)", "must be a JSON object")])
    unknown = set(body) - allowed
    problems: list[dict[str, str]] = []
    if unknown:
        problems.append(_unknown_fields("(body)", unknown))
    items = body.get("headlines")
    if not isinstance(items, list):
        raise ApiError(422, "invalid_request", "'headlines' is required and must be a list",
                       [_problem("headlines", "is required and must be a list"), *problems])
    if not items:
        raise ApiError(422, "invalid_request", "'headlines' must not be empty",
                       [_problem("headlines", "must not be empty")])
    if len(items) > limits.max_headlines:
        raise ApiError(422, "too_many_headlines",
                       f"at most {limits.max_headlines} headlines per request (got {len(items)}); "
                       "split the batch or raise ISCORE_MAX_HEADLINES",
                       {"max_headlines": limits.max_headlines, "got": len(items)})
    check_request_chars(items, limits)  # first: it is cheap, validating 2 million characters is not
    out = []
    for i, item in enumerate(items):
        h = _headline(item, i, limits, problems)
        if h is not None:
            out.append(h)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise _invalid(problems)
    return out


def check_request_chars(items: list[Any], limits: Limits) -> None:
    """Raise 422 when the headline texts of one request add up to more than the limit.

    A headline over its own limit is left to the per-headline check, whose message names it.
    """
    total = 0
    for item in items:
        text = item.get("text") if isinstance(item, dict) else item
        if isinstance(text, str):
            if len(text) > limits.max_headline_chars:
                return
            total += len(text)
    if total > limits.max_request_chars:
        raise ApiError(422, "too_many_characters",
                       f"at most {limits.max_request_chars} characters of headline text per request (got {total}); "
                       "split the batch or raise ISCORE_MAX_REQUEST_CHARS",
                       {"max_request_chars": limits.max_request_chars, "got": total})


def check_explain(n_headlines: int, with_explain: bool, limits: Limits) -> None:
    """Raise 422 when explain is asked for more headlines than the limit (explain costs 2-4x a score)."""
    if with_explain and n_headlines > limits.max_explain_headlines:
        raise ApiError(422, "too_many_headlines_to_explain",
                       f"explain=true takes at most {limits.max_explain_headlines} headlines per request "
                       f"(got {n_headlines}); split the batch or drop explain (ISCORE_MAX_EXPLAIN_HEADLINES)",
                       {"max_explain_headlines": limits.max_explain_headlines, "got": n_headlines})


def parse_score(body: Any, limits: Limits, with_explain: bool = False) -> list[Headline]:
    """Validate a /v1/score body."""
    heads = parse_headlines(body, limits, frozenset({"headlines"}))
    check_explain(len(heads), with_explain, limits)
    return heads


def parse_rank(body: Any, limits: Limits, with_explain: bool = False) -> RankRequest:
    """Validate a /v1/rank body."""
    headlines = parse_headlines(body, limits, frozenset({"headlines", "limit", "window_minutes", "now", "group_stories"}))
    check_explain(len(headlines), with_explain, limits)
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
    group = body.get("group_stories", False)
    if not isinstance(group, bool):
        problems.append(_problem("group_stories", "must be true or false"))
    if problems:
        raise _invalid(problems)
    return RankRequest(headlines=headlines, limit=limit, window_minutes=window, now=now, group_stories=group is True)


def in_window(h: Headline, now: datetime, window_minutes: float) -> bool:
    """Published within ``window_minutes`` before ``now`` (undated and future items are not)."""
    if h.published_at is None:
        return False
    try:
        start = now - timedelta(minutes=window_minutes)
    except OverflowError:  # a window reaching before year 1 covers everything earlier
        return h.published_at <= now
    return start <= h.published_at <= now


def parse_blend(value: str | None, offered: tuple[str, ...], default: str) -> str:
    """The blend a request scores with: ``?blend=`` if given, else ``default`` when the model offers it,
    else the model's own. 422 for a name no model has; 409 for one the served model lacks."""
    if value is None:
        return default if default in offered else offered[0]
    blend = value.lower()
    if blend not in BLEND_NAMES:
        problem = f"must be one of {', '.join(BLEND_NAMES)}"
        raise ApiError(422, "invalid_request", f"query parameter 'blend' {problem}", query_problem("blend", problem, value))
    if blend not in offered:
        raise ApiError(409, "blend_unavailable", f"the served model has no {blend!r} blend (it was trained without "
                       f"that head); it offers {', '.join(offered)}", {"got": blend, "offered": list(offered)})
    return blend


def query_problem(name: str, problem: str, got: str) -> list[dict[str, str]]:
    """A bad query parameter as a 422's details, as every route lists them (service/query.py)."""
    return [{"field": name, "problem": problem, "got": got[:50]}]


def parse_flag(value: str | None, name: str) -> bool:
    """A boolean query flag: true/false/1/0/yes/no/on/off in any letter case (absent = false)."""
    if value is None:
        return False
    v = value.lower()
    if v in FLAG_TRUE:
        return True
    if v in FLAG_FALSE:
        return False
    problem = f"must be one of {'/'.join(FLAG_TRUE + FLAG_FALSE)} (any case)"
    raise ApiError(422, "invalid_request", f"query parameter {name!r} {problem}", query_problem(name, problem, value))


def parse_idempotency_key(value: str | None) -> str | None:
    """The Idempotency-Key header (absent = None), or a 400 ApiError."""
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise ApiError(400, "invalid_header", "Idempotency-Key must be 1-200 printable ASCII characters without "
                       "spaces, e.g. a UUID", {"header": "Idempotency-Key"})
    return value


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value, whatever the key order or spacing (for request fingerprints)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


_LABEL_KIND = re.compile(LABEL_KIND_PATTERN)
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def parse_feedback(body: Any, limits: Limits) -> list[Any]:
    """Validate a /v1/feedback body into FeedbackItems; raise 422 listing every problem."""
    from iscore.feedback import FeedbackItem

    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise ApiError(422, "invalid_request", "the body must be a JSON object with an 'items' list",
                       [_problem("items", "is required and must be a list")])
    extra = set(body) - {"items"}
    raw = body["items"]
    if not raw:
        raise ApiError(422, "invalid_request", "'items' must not be empty", [_problem("items", "must not be empty")])
    if len(raw) > limits.max_headlines:
        raise ApiError(422, "too_many_items", f"at most {limits.max_headlines} items per request (got {len(raw)})",
                       {"max_items": limits.max_headlines, "got": len(raw)})
    check_request_chars(raw, limits)
    problems: list[dict[str, str]] = []
    if extra:
        problems.append(_unknown_fields("(body)", extra))
    out = []
    allowed = {"id", "text", "label", "label_kind", "published_at", "source", "observed_at"}
    for i, item in enumerate(raw):
        f = f"items[{i}]"
        if not isinstance(item, dict):
            problems.append(_problem(f, "must be an object with 'text' and 'label'"))
            continue
        if set(item) - allowed:
            problems.append(_unknown_fields(f, set(item) - allowed))
        h = _headline({"text": item.get("text"), "id": item.get("id"), "source": item.get("source"),
                       "published_at": item.get("published_at")}, i, limits, problems, array="items")
        kind = item.get("label_kind", "score")
        if not isinstance(kind, str) or not _LABEL_KIND.match(kind):
            problems.append(_problem(f"{f}.label_kind", f"must match {LABEL_KIND_PATTERN}, e.g. score, shares, clicks"))
            kind = "score"
        label = _finite_number(item.get("label"))
        if label is None:
            problems.append(_problem(f"{f}.label", "is required and must be a finite number"))
        elif label < 0 or (kind == "score" and label > 100):
            problems.append(_problem(f"{f}.label", "must be >= 0 (and <= 100 for label_kind 'score')"))
        observed = parse_time(item.get("observed_at"), f"{f}.observed_at", problems)
        if h is not None and not problems:
            out.append(FeedbackItem(text=h.text, label=float(label), label_kind=kind,
                                    id=h.id if item.get("id") is not None else None,
                                    source=h.source or "", published_at=h.published_at, observed_at=observed))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise _invalid(problems)
    return out


def _finite_number(value: Any) -> float | None:
    """``value`` as a finite float, or None (booleans, strings, and integers too big for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        f = float(value)  # 1 followed by 400 zeros parses as an int and overflows here
    except OverflowError:
        return None
    return f if math.isfinite(f) else None
