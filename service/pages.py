"""Pages for people (issue #17): the sidebar, its JSON feed, the model page, and what they share.

``install(app, settings, holder)`` registers the blueprints (the editor's desk is in service/editor.py) and
one after-request hook that gives pages their Content-Security-Policy (relaxed only as far as each page
needs: its own static script and style, framing by the configured origins for the sidebar), CORS for the
configured origins on ``/v1/sidebar.json``, and long caching to hashed static URLs. Every other reply keeps
the strict headers of service/errors.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from iscore import overrides as ov
from iscore import registry
from iscore.redact import public_value
from iscore.settings import Settings
from service.admin import require_admin
from service.context import json_body, services
from service.errors import ApiError
from service.holder import ModelHolder
from service.schema import TEXT_PATTERN, parse_time
from service.top import PagesStore, SeedHeadline, SeededTopStories, TopStories

log = logging.getLogger("iscore.pages")
STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_LIMIT = 50
PAGE_PATHS = ("/sidebar", "/editor", "/model")
JSON_FEED = "/v1/sidebar.json"
# What a link may be (the OpenAPI pattern of a seeded url): http(s), then no space or control character.
SAFE_URL = re.compile(r"https?://[^\x00-\x20\x7f]+")
bp = Blueprint("pages", __name__)
api_bp = Blueprint("pages_api", __name__)


@dataclass
class Pages:
    """What the pages share: the story provider (replaceable), the seeded headlines and the overrides."""

    settings: Settings
    provider: TopStories
    store: PagesStore
    overrides: ov.OverrideStore
    _hashes: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def static_url(self, filename: str) -> str:
        """The URL of a static file with its content hash (so it can be cached for a year)."""
        with self._lock:
            digest = self._hashes.get(filename)
            if digest is None:
                digest = self._hashes[filename] = hashlib.sha256((STATIC_DIR / filename).read_bytes()).hexdigest()[:16]
        return url_for("static", filename=filename, v=digest)

    def stories(self, window_minutes: int, limit: int, now: datetime | None = None) -> list[dict[str, Any]]:
        """The top ``limit`` stories of the window with the editors' overrides applied."""
        now = now or datetime.now(timezone.utc)
        active = self.overrides.active(now)
        # Hidden stories leave gaps and pinned or boosted ones may come from below the cut: ask for more.
        raw = self.provider(window_minutes, max(limit * 5, limit + len(active), 50))
        return ov.apply(raw, active, now, limit)


def pages() -> Pages:
    """The current app's Pages."""
    return current_app.extensions["iscore_pages"]


def install(app: Flask, settings: Settings, holder: ModelHolder) -> Pages:
    """Create the pages' state (nothing is opened until first use) and register their routes and headers."""
    db = settings.state_dir / "pages.db"
    store = PagesStore(db, timeout=settings.database_statement_timeout_seconds)
    provider = SeededTopStories(store, holder, settings.red_threshold, settings.blend)
    p = Pages(settings=settings, provider=provider, store=store,
              overrides=ov.OverrideStore(db, timeout=settings.database_statement_timeout_seconds))
    app.extensions["iscore_pages"] = p
    from service import editor  # the desk's routes live beside these

    editor.configure(app, settings)
    app.register_blueprint(bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(editor.bp)
    app.after_request(_page_headers)
    # A page path with no such route or method gets an HTML page too; every other path keeps the JSON shape.
    json_handler = app.error_handler_spec[None][None].get(HTTPException)
    if json_handler is not None:
        def _routing_error(e: HTTPException) -> Any:
            """404/405 as an HTML page under the pages' paths, else the app's JSON error."""
            if any(request.path == p or request.path.startswith(p + "/") for p in PAGE_PATHS):
                return _page_error(e)
            return json_handler(e)

        for code in (404, 405):
            app.register_error_handler(code, _routing_error)
    return p


# --- headers -------------------------------------------------------------------------------------------------

def page_csp(*, script: bool = False, connect: bool = False, forms: bool = False, data_images: bool = False,
             frame_ancestors: list[str] | None = None) -> str:
    """A Content-Security-Policy that allows only what a page uses: its own style, and optionally more."""
    parts = ["default-src 'none'", "style-src 'self'", "img-src 'self'" + (" data:" if data_images else ""),
             "base-uri 'none'", "form-action " + ("'self'" if forms else "'none'")]
    if script:
        parts.append("script-src 'self'")
    if connect:
        parts.append("connect-src 'self'")
    parts.append("frame-ancestors " + (" ".join(["'self'", *frame_ancestors]) if frame_ancestors is not None
                                       else "'none'"))
    return "; ".join(parts)


def _page_headers(resp: Response) -> Response:
    """CSP per page, CORS on the JSON feed, year-long caching of hashed static files."""
    path = request.path
    settings = pages().settings
    if path == JSON_FEED:
        origin = request.headers.get("Origin", "")
        resp.headers.add("Vary", "Origin")
        if origin and origin in settings.cors_origin_list():
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Expose-Headers"] = "ETag"
            if request.method == "OPTIONS":
                resp.headers["Access-Control-Allow-Methods"] = "GET"
                resp.headers["Access-Control-Allow-Headers"] = "If-None-Match"
                resp.headers["Access-Control-Max-Age"] = "600"
    elif path.startswith("/static/") and resp.status_code in (200, 304) and request.args.get("v"):
        resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    elif g.get("page_csp"):
        resp.headers["Content-Security-Policy"] = g.page_csp
        if g.get("page_frame_ok"):
            # Browsers obey frame-ancestors over X-Frame-Options; SAMEORIGIN is for those that know only XFO.
            resp.headers["X-Frame-Options"] = "SAMEORIGIN"
    return resp


def html_page(template: str, status: int = 200, **context: Any) -> Response:
    """Render a page template with the shared context; the page's CSP must be set in ``g.page_csp``."""
    g.setdefault("page_csp", page_csp())
    resp = Response(render_template(template, static_url=pages().static_url, **context), status=status,
                    mimetype="text/html")
    return resp


@bp.errorhandler(Exception)
def _page_error(e: Exception) -> Response:
    """Errors of pages are HTML pages (never a traceback); JSON routes keep the JSON shape."""
    if isinstance(e, ApiError):
        status, title, message = e.status, e.error.replace("_", " "), e.message
        headers = {k: v for k, v in e.headers.items() if k.lower() != "www-authenticate"}
    elif isinstance(e, HTTPException):
        status, title, message, headers = e.code or 500, (e.name or "error"), e.description or "", {}
        if status == 405 and e.get_response().headers.get("Allow"):
            headers = {"Allow": e.get_response().headers["Allow"]}
    else:
        log.exception("unhandled error on a page")
        status, title, message, headers = 500, "unexpected error", "unexpected server error; it has been logged", {}
    g.page_csp = page_csp()
    resp = html_page("error.html", status=status, title=title, message=message)
    resp.headers.update(headers)
    return resp


# --- shared request helpers ----------------------------------------------------------------------------------

def int_arg(name: str, default: int, low: int, high: int) -> int:
    """An integer query argument within [low, high]; 422 (a page: an HTML 422) otherwise."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", raw) or not low <= int(raw) <= high:
        raise ApiError(422, "invalid_request", f"{name} must be a whole number from {low} to {high}",
                       [{"field": name, "problem": f"must be a whole number from {low} to {high}"}])
    return int(raw)


def top_reply(window_minutes: int, limit: int) -> dict[str, Any]:
    """The feed's body: model version, window and stories (with overrides); 503 when no model serves."""
    s = services()
    model = s.holder.get()
    if model is None:
        raise ApiError(503, "model_unavailable", "no verified model is loaded; see /readyz")
    g.model_version = model.version
    with store_errors():
        try:
            stories = pages().stories(window_minutes, limit)
        except LookupError:
            raise ApiError(503, "model_unavailable", "no verified model is loaded; see /readyz") from None
    return {"model_version": model.version, "window_minutes": window_minutes, "stories": stories}


@contextmanager
def store_errors() -> Iterator[None]:
    """A failure of the pages' SQLite file (unwritable state directory, lock held too long) is a 503."""
    try:
        yield
    except (sqlite3.Error, OSError) as e:
        log.error("pages store failed", extra={"fields": {"error": type(e).__name__}})
        raise ApiError(503, "store_unavailable", "the pages' store is unavailable; nothing was changed, "
                                                 "retry later") from None


def etag_of(body: dict[str, Any]) -> str:
    """A strong ETag of a reply body (same stories, same tag)."""
    return '"' + hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32] + '"'


def safe_url(url: Any) -> str | None:
    """The URL if it is http(s) without spaces or control characters (a javascript: or data: link never is)."""
    return url if isinstance(url, str) and len(url) <= 2000 and SAFE_URL.fullmatch(url) else None


# --- the sidebar -------------------------------------------------------------------------------------------

@bp.get("/sidebar")
def sidebar() -> Response:
    """The live top ten as an embeddable page: server-rendered, refreshed by polling or meta refresh."""
    settings = pages().settings
    limit = int_arg("limit", 10, 1, MAX_LIMIT)
    window = settings.sidebar_window_minutes
    g.page_csp = page_csp(script=True, connect=True, frame_ancestors=settings.cors_origin_list())
    g.page_frame_ok = True
    body = top_reply(window, limit)
    etag = etag_of(body)  # the feed's tag for the same stories, so the first poll is a 304
    feed = url_for("pages_api.sidebar_feed", window_minutes=window, limit=limit)
    for story in body["stories"]:
        story["safe_url"] = safe_url(story.get("url"))
        story["shown"] = math.floor(float(story["i_score"]) + 0.5)  # as the script's Math.round shows it
    return html_page("sidebar.html", stories=body["stories"], limit=limit, feed=feed,
                     etag=etag, refresh=int(settings.sidebar_refresh_seconds),
                     red_threshold=settings.red_threshold, window=window, model_version=body["model_version"],
                     more=url_for("pages.sidebar", limit=MAX_LIMIT) if limit < MAX_LIMIT else None)


@api_bp.get(JSON_FEED)
def sidebar_feed() -> Response:
    """The sidebar's stories as JSON in the /v1/top shape, with an ETag (304 when unchanged)."""
    settings = pages().settings
    window = int_arg("window_minutes", settings.sidebar_window_minutes, 1, 7 * 24 * 60)
    limit = int_arg("limit", 10, 1, MAX_LIMIT)
    body = top_reply(window, limit)
    tag = etag_of(body)
    if tag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        resp = Response(status=304)
    else:
        resp = jsonify(body)
    resp.headers["ETag"] = tag
    resp.headers["Cache-Control"] = "no-cache"  # may be kept, but revalidated: the ETag makes that cheap
    return resp


# --- seeding the default provider --------------------------------------------------------------------------

VISIBLE = re.compile(TEXT_PATTERN)  # a headline needs one visible character (as /v1/score's parser asks)


def _clean(value: Any) -> bool:
    """A string without NUL and lone surrogates (what SQLite and UTF-8 can hold)."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_seed(body: Any, max_items: int, max_chars: int, now: datetime) -> list[SeedHeadline]:
    """Validate a seeding body ``{"headlines": [{"text", "id"?, "source"?, "url"?, "published_at"?}]}``."""
    if not isinstance(body, dict) or not isinstance(body.get("headlines"), list) or set(body) - {"headlines"}:
        raise ApiError(422, "invalid_request", "the body must be a JSON object with a 'headlines' list",
                       [{"field": "headlines", "problem": "is required and must be a list"}])
    raw = body["headlines"]
    if not 1 <= len(raw) <= max_items:
        raise ApiError(422, "invalid_request", f"send 1 to {max_items} headlines",
                       [{"field": "headlines", "problem": f"must hold 1 to {max_items} items"}])
    problems: list[dict[str, str]] = []
    out = []
    for i, item in enumerate(raw):
        f = f"headlines[{i}]"
        if not isinstance(item, dict) or set(item) - {"id", "text", "source", "url", "published_at"}:
            problems.append({"field": f, "problem": "must be an object with 'text' (and optional id, source, url, "
                                                    "published_at)"})
            continue
        text, hid, source, url, when = (item.get(k) for k in ("text", "id", "source", "url", "published_at"))
        if not _clean(text) or not VISIBLE.search(text) or len(text) > max_chars:
            problems.append({"field": f"{f}.text", "problem": f"must be 1 to {max_chars} characters, not all "
                                                              "white space, without NUL or lone surrogates"})
            continue
        if hid is not None and (not _clean(hid) or not 1 <= len(hid) <= 200):
            problems.append({"field": f"{f}.id", "problem": "must be a string of 1 to 200 characters"})
            continue
        if source is not None and (not _clean(source) or len(source) > 200):
            problems.append({"field": f"{f}.source", "problem": "must be a string of at most 200 characters"})
            continue
        if url is not None and (not _clean(url) or safe_url(url) is None):
            problems.append({"field": f"{f}.url", "problem": "must be an http(s) URL of at most 2000 characters"})
            continue
        published = parse_time(when, f"{f}.published_at", problems) if when is not None else now
        if published is None:
            continue
        key = hid or hashlib.sha256(f"{text.strip()}\n{source or ''}".encode()).hexdigest()[:16]
        out.append(SeedHeadline(key, text.strip(), (source or "").strip(), url or "", published))
    if problems:
        raise ApiError(422, "invalid_request", "some headlines are invalid; nothing was stored", problems)
    return out


@api_bp.post("/v1/admin/headlines")
def seed_headlines() -> Any:
    """Add headlines to the pages' default story provider (admin token); ``published_at`` defaults to now."""
    require_admin()
    s = services()
    items = parse_seed(json_body(), s.settings.max_headlines, s.settings.max_headline_chars,
                       datetime.now(timezone.utc))
    with store_errors():
        stored = pages().store.put(items)
    return jsonify({"stored": stored})


# --- the model page ----------------------------------------------------------------------------------------

PLOT = re.compile(r'src="(data:image/(?:png|svg\+xml);base64,[A-Za-z0-9+/=]+)"')
METRIC_ROWS = ("spearman", "spearman_within_source", "kendall", "ndcg10_daily", "mae", "desk_auc", "n")


def report_plots(model_dir: Path, version: str) -> list[str]:
    """The data: URLs of the images in the version's report.html (none when there is no report)."""
    try:
        text = (model_dir / registry.validate_version_name(version) / "report.html").read_text(errors="replace")
    except (OSError, ValueError):
        return []
    return PLOT.findall(text)[:10]


@bp.get("/model")
def model_page() -> Response:
    """The served model for people: version, training data, metrics, report plots, reload history."""
    s = services()
    g.page_csp = page_csp(data_images=True)
    model = s.holder.get()
    if model is None:
        raise ApiError(503, "model_unavailable", "no verified model is loaded; see /readyz")
    g.model_version = model.version
    m = public_value(model.manifest, s.registry_names)
    metrics = m.get("metrics") or {}
    columns = [("model (hold-out)", metrics.get("holdout") or {})]
    columns += [(f"baseline: {k.replace('_', ' ')}", v) for k, v in sorted((metrics.get("baselines") or {}).items())]
    try:
        history = [public_value(h, s.registry_names) for h in registry.read_history(s.settings.model_dir)][-20:][::-1]
    except Exception:  # a damaged history file must not take the page down
        log.exception("reading the reload history failed")
        history = []
    status = s.holder.status
    last = None if status is None else {"ok": status.ok, "version": status.version, "error": s.public(status.error),
                                        "at": datetime.fromtimestamp(status.at, timezone.utc).isoformat()}
    data = m.get("data") or {}
    spec = data.get("spec") or {}
    return html_page("model.html", model_version=model.version, manifest=m, metrics=metrics, columns=columns,
                     rows=METRIC_ROWS, behaviour=metrics.get("behaviour") or {}, data=data,
                     data_file=Path(str(spec.get("path") or "")).name or None,
                     plots=report_plots(s.settings.model_dir, model.version), history=history, last=last,
                     red_threshold=s.settings.red_threshold)
