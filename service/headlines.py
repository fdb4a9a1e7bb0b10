"""Headlines blueprint (#16): POST /v1/headlines (ingest, API keys) and GET /v1/top (the live top stories).

Thin views: parsing is in service/ingest_schema.py, the store in iscore/window_store.py, stories and the top ten
in iscore/window.py and iscore/story_score.py. Per app, one :class:`IngestState` (store engine, live window, reply
cache, metrics) is made when the blueprint is registered; nothing connects before the first request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import Counter, Gauge
from sqlalchemy.exc import SQLAlchemyError

from iscore import feedback, window_store
from iscore.redact import redact_url
from iscore.scoring import reply_items
from iscore.settings import Settings
from iscore.sources import normalize_source
from iscore.stories import chosen_options
from iscore.story_score import StoryParams
from iscore.window import LiveWindow, StoryWindow, TopQuery, filters
from service.admin import CHALLENGE, INVALID_TOKEN
from service.body import read_body
from service.context import require_model, services
from service.errors import ApiError
from service.ingest_schema import UNSTORABLE, parse_item, parse_items_body, retention_start
from service.query import QueryArgs
from service.schema import decode_json, require_json

bp = Blueprint("headlines", __name__)
log = logging.getLogger("iscore.ingest")
T = TypeVar("T")
PRUNE_EVERY_SECONDS = 60.0
TOP_QUERY_PARAMS = frozenset({"window_minutes", "limit", "source", "section"})
MAX_TOP_LIMIT = 100
MAX_FILTER_CHARS = 2000
CACHE_ENTRIES = 256


class IngestStore:
    """The window store's engine, connected and migrated on first use; failures become 503."""

    def __init__(self, settings: Settings) -> None:
        """Remember the URL and timeouts (no connection yet)."""
        self.url = settings.database_url
        self._timeouts = {"connect_timeout": settings.database_connect_timeout_seconds,
                          "statement_timeout": settings.database_statement_timeout_seconds}
        self._engine: Any = None
        self._lock = threading.Lock()

    def engine(self) -> Any:
        """The migrated engine (created once per process).

        No lock is held across the connection and migration (see iscore.window.LiveWindow.sync: the app's locks
        are real OS locks in gevent workers); concurrent first uses each migrate (the migration serialises itself)
        and the first engine made is kept.
        """
        with self._lock:
            if self._engine is not None:
                return self._engine
        engine = feedback.make_engine(self.url, **self._timeouts)
        try:
            window_store.migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        with self._lock:
            if self._engine is None:
                self._engine = engine
            elif self._engine is not engine:
                engine.dispose()
            return self._engine

    def call(self, fn: Callable[[Any], T]) -> T:
        """Run fn(engine); a database failure is a 503 (nothing was stored), never a 500."""
        try:
            return fn(self.engine())
        except (SQLAlchemyError, OSError) as e:  # OSError: a SQLite directory that cannot be made
            # An OSError names a file path: logged by kind only.
            what = (f"{type(e).__name__} (errno {e.errno})" if isinstance(e, OSError)
                    else redact_url(str(e))[:500])
            log.error("window store failed", extra={"fields": {"error": what}})
            raise ApiError(503, "window_store_unavailable",
                           "the headline store is unavailable; nothing was stored, retry later") from None


class IngestState:
    """What the headline routes of one app share."""

    def __init__(self, settings: Settings, registry: Any, model: Callable[[], Any] = lambda: None) -> None:
        """Store, live window, reply cache and metrics for one app; ``model()`` gives the served model (or None)."""
        self.settings = settings
        self.store = IngestStore(settings)
        self._model = model
        self._options: tuple[Any, dict[str, Any]] = (None, {})
        self._options_lock = threading.Lock()
        self.live = LiveWindow(self.store.engine, settings.story_window_hours, settings.top_refresh_seconds,
                               index_options=self.index_options)
        self.params = StoryParams(settings.story_half_life_minutes, settings.story_velocity_minutes)
        self.cache: OrderedDict[Any, tuple[bytes, str]] = OrderedDict()
        self.cache_lock = threading.Lock()
        self.pruned_at = -math.inf
        self.ingested = Counter("iscore_ingest_headlines_total", "headlines sent to POST /v1/headlines by outcome",
                                ["result"], registry=registry)
        self.window_rows = Gauge("iscore_window_headlines", "headlines in this worker's story window",
                                 registry=registry, multiprocess_mode="max")


    def index_options(self) -> tuple[Any, dict[str, Any]]:
        """(served model version, the chosen clustering with its IDF table): how the live window clusters.

        The model's IDF table is hashed once per version. Before any model is loaded the chosen settings run
        with an online IDF (key None); the window is rebuilt with the model's table once one serves.
        """
        model = self._model()
        version = getattr(model, "version", None)
        with self._options_lock:
            if self._options[0] == version and (version is not None or self._options[1]):
                return self._options
        options = chosen_options(model.pipeline if model is not None else None)
        with self._options_lock:
            self._options = (version, options)
            return self._options


@bp.record_once
def _setup(state: Any) -> None:
    app = state.app
    s = app.extensions["iscore"]
    app.extensions["iscore_ingest"] = IngestState(s.settings, s.metrics.registry, s.holder.get)


def ingest_state(app: Flask) -> IngestState:
    """The headline routes' shared objects of an app."""
    return app.extensions["iscore_ingest"]


def live_window(app: Flask) -> LiveWindow:
    """The app's live story window: ``live_window(app).top(TopQuery(...))`` gives the top stories (no request)."""
    return ingest_state(app).live


def _state() -> IngestState:
    from flask import current_app

    return ingest_state(current_app)


def require_client(state: IngestState) -> str:
    """The client named by the request's API key (or "admin" for the admin token); 401 otherwise."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <API key>' (keys: iscore-ingest keys add NAME)",
                       headers=CHALLENGE)
    token = state.settings.admin_token
    if token and hmac.compare_digest(given.encode(), token.encode()):
        return "admin"
    client = state.store.call(lambda e: window_store.client_of_key(e, given))
    if client is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", headers={**CHALLENGE, **INVALID_TOKEN})
    return client


@bp.post("/v1/headlines")
def ingest_route() -> Any:
    """Store headlines: each item accepted (new or duplicate) or rejected with its problems, by index."""
    state = _state()
    s = services()
    client = require_client(state)
    raw = parse_items_body(_ingest_body(s.settings), s.limits)
    now = datetime.now(timezone.utc)
    oldest = retention_start(now, state.settings.window_retention_hours)
    verdicts = [parse_item(item, i, s.limits, now, oldest) for i, item in enumerate(raw)]
    good = [(i, it) for i, (it, _) in enumerate(verdicts) if it is not None]
    rejected = [{"index": i, "id": _raw_id(raw[i]), "status": "rejected", "problems": probs}
                for i, (it, probs) in enumerate(verdicts) if it is None]
    model = require_model()
    s.rate_limits.charge_headlines([it.text for _, it in good], False)
    scored = [] if not good else reply_items(model.pipeline, [(str(i), it.text, it.source) for i, it in good],
                         red_threshold=s.settings.red_threshold, explain_top=1, with_explain=False,
                         scorer=model.scorer)
    batch = [window_store.NewHeadline(text=it.text, source=it.source, published_at=it.published_at,
                                      i_score=sc["i_score"], model_version=model.version, client=client,
                                      id=it.id, url=it.url, section=it.section)
             for (_, it), sc in zip(good, scored)]
    fresh = state.store.call(lambda e: window_store.store_headlines(e, batch, now)) if batch else []
    if batch:
        _maybe_prune(state, now)
    items: list[dict[str, Any]] = [
        {"index": i, "id": it.id if it.id is not None else it.url, "status": "new" if new else "duplicate",
         "i_score": sc["i_score"]}
        for (i, it), sc, new in zip(good, scored, fresh)]
    items = sorted(items + rejected, key=lambda x: x["index"])
    n_new = sum(fresh)
    state.ingested.labels(result="new").inc(n_new)
    state.ingested.labels(result="duplicate").inc(len(fresh) - n_new)
    state.ingested.labels(result="rejected").inc(len(rejected))
    g.n_headlines = len(good)
    body = {"model_version": model.version, "accepted": len(good), "new": n_new, "duplicates": len(fresh) - n_new,
            "rejected": len(rejected), "items": items}
    return Response(json.dumps(body), status=200, mimetype="application/json")


def _ingest_body(settings: Settings) -> Any:
    """The JSON body, read within the size and time limits; NUL or lone surrogates reject the item, not the batch."""
    require_json(request.headers.get("Content-Type"))
    raw = read_body(request.environ, settings.max_body_bytes, settings.body_timeout_seconds)
    return decode_json(raw)[0]


def _raw_id(item: Any) -> Any:
    """The id (or url) a refused item carried, when it is a short string or integer, for the client to match."""
    if not isinstance(item, dict):
        return None
    for k in ("id", "url"):
        v = item.get(k)
        if isinstance(v, bool):
            continue
        if isinstance(v, int) and abs(v) < 10**15:
            return str(v)
        if isinstance(v, str) and len(v) <= 2000 and not UNSTORABLE.search(v):
            return v
    return None


def _maybe_prune(state: IngestState, now: datetime) -> None:
    """Delete headlines past retention, at most once a minute per worker (a failure is logged, not raised)."""
    mono = time.monotonic()
    if mono - state.pruned_at < PRUNE_EVERY_SECONDS:
        return
    state.pruned_at = mono
    try:
        n = window_store.prune(state.store.engine(), timedelta(hours=state.settings.window_retention_hours), now)
        if n:
            log.info("pruned headlines past retention", extra={"fields": {"deleted": n}})
    except SQLAlchemyError as e:
        log.warning("pruning failed", extra={"fields": {"error": redact_url(str(e))[:300]}})


def parse_top_query(args: Any, settings: Settings) -> TopQuery:
    """Validate /v1/top's query string (422 naming each bad parameter: service/query.py)."""
    q = QueryArgs(args, TOP_QUERY_PARAMS)
    window = q.number("window_minutes", 60.0, settings.story_window_hours * 60, "minutes",
                      "the live story window, ISCORE_STORY_WINDOW_HOURS")
    limit = q.whole("limit", min(settings.default_limit, MAX_TOP_LIMIT), 1, MAX_TOP_LIMIT)
    source_values, section_values = q.texts("source", MAX_FILTER_CHARS), q.texts("section", MAX_FILTER_CHARS)
    q.check()
    sources = frozenset(normalize_source(v).key for v in filters(source_values)) - {""}
    return TopQuery(window_minutes=window, limit=limit, sources=sources, sections=filters(section_values))


def synced(state: IngestState, now: datetime) -> StoryWindow:
    """The live window caught up with the store; the last synced one while the store is away (503 if none)."""
    try:
        state.store.call(lambda e: state.live.sync(now))
    except ApiError:
        if state.live.window is None:
            raise
        # A sidebar keeps showing the last known stories while the store is away (logged by call()).
    w = state.live.window
    assert w is not None
    state.window_rows.set(len(w.rows))
    return w


@bp.get("/v1/top")
def top_route() -> Any:
    """The top stories of the last window_minutes, with ETag (304 on If-None-Match) and Cache-Control."""
    state = _state()
    query = parse_top_query(request.args, state.settings)
    now = datetime.now(timezone.utc)
    w = synced(state, now)
    step = int(now.timestamp() // 60)
    key = (query, w.options_key, w.version, step)
    with state.cache_lock:
        hit = state.cache.get(key)
        if hit is not None:
            state.cache.move_to_end(key)
    if hit is None:
        stories = state.live.ranked(query, now, red_threshold=state.settings.red_threshold, params=state.params)
        at = datetime.fromtimestamp(step * 60, timezone.utc).isoformat().replace("+00:00", "Z")
        # model_version: the served model this window was clustered with (each headline keeps the i-Score it got
        # at ingest); a reload rebuilds the window with the new version as its options_key (part of the cache key).
        body = json.dumps({"model_version": w.options_key, "window_minutes": _number(query.window_minutes),
                           "as_of": at, "stories": stories}).encode()
        hit = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        with state.cache_lock:
            state.cache[key] = hit
            while len(state.cache) > CACHE_ENTRIES:
                state.cache.popitem(last=False)
    body, etag = hit
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max(1, math.ceil(state.settings.top_refresh_seconds))}"}
    if _matches(request.headers.get("If-None-Match"), etag):
        return Response(status=304, headers=headers)
    return Response(body, status=200, mimetype="application/json", headers=headers)


def _matches(header: str | None, etag: str) -> bool:
    """If-None-Match matches this ETag (weak comparison, '*' included)."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def _number(x: float) -> float | int:
    """An integral float as an int (60.0 -> 60) for tidy replies."""
    return int(x) if float(x).is_integer() else x
