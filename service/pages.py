"""Pages for people (issue #17): the sidebar, its JSON feed, the model page, and what they share.

``install(app, settings)`` registers the blueprints (the editor's desk is in service/editor.py) and
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
from service.context import services
from service.errors import ApiError
from service.query import QueryArgs
from service.top import LiveTopStories, TopStories

log = logging.getLogger("iscore.pages")
STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_LIMIT = 50
PAGE_PATHS = ("/sidebar", "/editor", "/model")
JSON_FEED = "/v1/sidebar.json"
SIDEBAR_PARAMS = ("limit",)
FEED_PARAMS = ("window_minutes", "limit")
# What a link may be: http(s), then no space or control character.
SAFE_URL = re.compile(r"https?://[^\x00-\x20\x7f]+")
bp = Blueprint("pages", __name__)
api_bp = Blueprint("pages_api", __name__)


@dataclass
class Pages:
    """What the pages share: the story provider (replaceable) and the editors' overrides."""

    settings: Settings
    provider: TopStories
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


def install(app: Flask, settings: Settings) -> Pages:
    """Create the pages' state (nothing is opened until first use) and register their routes and headers."""
    db = settings.state_dir / "pages.db"
    p = Pages(settings=settings, provider=LiveTopStories(app),
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

def max_window_minutes(settings: Settings) -> int:
    """The longest window the feed serves: the live story window (ISCORE_STORY_WINDOW_HOURS), in whole minutes."""
    return max(1, int(settings.story_window_hours * 60))


def top_reply(window_minutes: int, limit: int) -> dict[str, Any]:
    """The feed's body: model version, window and stories (with overrides); 503 when no model serves."""
    s = services()
    model = s.holder.get()
    if model is None:
        raise ApiError(503, "model_unavailable", "no verified model is loaded; see /readyz")
    g.model_version = model.version
    with store_errors():
        stories = pages().stories(window_minutes, limit)
    return {"model_version": model.version, "window_minutes": window_minutes, "stories": stories}


@contextmanager
def store_errors() -> Iterator[None]:
    """A failure of the overrides' SQLite file (unwritable state directory, lock held too long) is a 503."""
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
    q = QueryArgs(request.args, SIDEBAR_PARAMS)
    limit = q.whole("limit", 10, 1, MAX_LIMIT)
    q.check()  # an HTML 422 naming the parameter
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
    q = QueryArgs(request.args, FEED_PARAMS)
    window = q.whole("window_minutes", settings.sidebar_window_minutes, 1, max_window_minutes(settings), "minutes")
    limit = q.whole("limit", 10, 1, MAX_LIMIT)
    q.check()
    body = top_reply(window, limit)
    tag = etag_of(body)
    if tag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        resp = Response(status=304)
    else:
        resp = jsonify(body)
    resp.headers["ETag"] = tag
    resp.headers["Cache-Control"] = "no-cache"  # may be kept, but revalidated: the ETag makes that cheap
    return resp


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
