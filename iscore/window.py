"""The live window (#16): stories of the recent headlines, kept in step with the window store, and the top ten.

The store (:mod:`iscore.window_store`) is the source of truth. Each process (each gunicorn worker, each page that
wants stories) holds a :class:`LiveWindow`: the headlines published within ``window_hours`` and a
:class:`iscore.stories.StoryIndex` built from them in ``seq`` order. :meth:`LiveWindow.sync` reads the rows past
the highest ``seq`` it has seen, plus the rows whose ``seq`` it found missing below them in the last
``LATE_COMMIT_SECONDS`` (on PostgreSQL a transaction can commit a smaller ``seq`` after a larger one is visible),
and adds them to the index. ``GET /v1/top`` syncs at most every ``ISCORE_TOP_REFRESH_SECONDS``, so every worker shows a
headline any worker (or the feed poller, or another host) stored within that time. A new process rebuilds its
stories from the store on first use; so does a process whose index has grown to several times its live rows
(the index never forgets a headline; a rebuild does).

Story ids are stable across workers and restarts: the id of a story is derived from its earliest stored member
(lowest ``seq``), not from the index's counter.

:func:`top_stories` is the plain function pages call: the ranked stories of a window, as ``/v1/top`` returns them.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from iscore.sources import normalize_source
from iscore.story_score import StoryParams, score_at, why
from iscore.stories import StoryIndex
from iscore.window_store import StoredHeadline, read_since, rows_by_seq

LATE_COMMIT_SECONDS = 60.0
MAX_GAPS = 5000  # seq numbers remembered as missing at most (the oldest are forgotten first)
# Story scores are computed at "now" rounded down to this step, so a polled /v1/top changes (new ETag) when a
# headline arrives or the step turns, not on every request.
TIME_STEP_SECONDS = 60
# Rebuild the index from the store once it has seen this many times more headlines than the window still holds.
REBUILD_FACTOR = 4
REBUILD_MIN = 20_000


@dataclass(frozen=True)
class TopQuery:
    """What a /v1/top caller asks for."""

    window_minutes: float = 60.0
    limit: int = 10
    sources: frozenset[str] = frozenset()
    sections: frozenset[str] = frozenset()


class StoryWindow:
    """Headlines of the recent past and their stories (no database: rows are handed in)."""

    def __init__(self, window_hours: float, index_options: Mapping[str, Any] | None = None,
                 options_key: Hashable = None) -> None:
        """An empty window keeping headlines published within ``window_hours`` of the newest sync.

        ``index_options`` are the :class:`StoryIndex` keyword arguments (the live window passes the chosen method,
        :func:`iscore.stories.chosen_options` of the served model); ``options_key`` names them (the model version),
        so a window built with other options can be told apart.
        """
        self.window_hours = window_hours
        self.options_key = options_key
        self.index = StoryIndex(window_hours=window_hours, **dict(index_options or {}))
        self.rows: dict[str, StoredHeadline] = {}
        self._by_time: list[tuple[float, int, StoredHeadline]] = []  # (published epoch s, seq, row), sorted
        # Columns in the same order, for numpy: seq, i-Score, source code, key.
        self._ts: list[float] = []
        self._seq: list[int] = []
        self._isc: list[float] = []
        self._src: list[int] = []
        self._keys: list[str] = []
        self._codes: dict[str, int] = {}
        self._seen: set[str] = set()  # every key given to the index (evicted rows included: it never forgets)
        self.hwm = 0  # highest seq seen
        self.added = 0  # headlines given to the index since it was built
        self.version = 0  # bumps whenever the rows change

    def add(self, rows: Iterable[StoredHeadline]) -> int:
        """Add unseen rows in ``seq`` order to the index; how many were new."""
        n = 0
        for r in sorted(rows, key=lambda r: r.seq):
            self.hwm = max(self.hwm, r.seq)
            if r.item_key in self._seen:
                continue
            self.index.add(r.item_key, r.text, r.published_at, r.source)
            self._seen.add(r.item_key)
            self.rows[r.item_key] = r
            entry = (r.published_at.timestamp(), r.seq, r)
            at = bisect.bisect_right(self._by_time, entry[:2])
            self._by_time.insert(at, entry)
            self._ts.insert(at, entry[0])
            self._seq.insert(at, r.seq)
            self._isc.insert(at, r.i_score)
            self._src.insert(at, self._codes.setdefault(r.source, len(self._codes)))
            self._keys.insert(at, r.item_key)
            n += 1
        if n:
            self.added += n
            self.version += 1
        return n

    def evict(self, now: datetime) -> int:
        """Forget rows published before the window (the index keeps their ids); how many."""
        cutoff = _minus(now, timedelta(hours=self.window_hours)).timestamp()
        cut = bisect.bisect_left(self._by_time, (cutoff, -1))
        for _, _, row in self._by_time[:cut]:
            del self.rows[row.item_key]
        for column in (self._by_time, self._ts, self._seq, self._isc, self._src, self._keys):
            del column[:cut]
        if cut:
            self.version += 1
        return cut

    def needs_rebuild(self) -> bool:
        """True when the index holds far more headlines than the window (rebuilding frees them)."""
        return self.added > max(REBUILD_MIN, REBUILD_FACTOR * len(self.rows))

    def bounds(self, start: datetime, end: datetime) -> tuple[int, int]:
        """The positions [lo, hi) of the rows published within [start, end] in publication order."""
        return (bisect.bisect_left(self._by_time, (start.timestamp(), -1)),
                bisect.bisect_right(self._by_time, (end.timestamp(), math.inf)))

    def slice(self, start: datetime, end: datetime) -> list[tuple[float, int, StoredHeadline]]:
        """(published epoch seconds, seq, row) of the rows published within [start, end], oldest first."""
        lo, hi = self.bounds(start, end)
        return self._by_time[lo:hi]

    def columns(self, positions: range | list[int]) -> dict[str, np.ndarray]:
        """Epoch seconds, seq, i-Score, source code and story id of the rows at these positions, as arrays."""
        story_of = self.index.story_id  # the public API only (iscore/stories.py is another engineer's)
        if isinstance(positions, range) and positions.step == 1:
            lo, hi = positions.start, positions.stop
            keys = self._keys[lo:hi]
            return {"ts": np.array(self._ts[lo:hi], np.float64),
                    "seq": np.array(self._seq[lo:hi], np.int64), "isc": np.array(self._isc[lo:hi], np.float64),
                    "src": np.array(self._src[lo:hi], np.int64),
                    "sid": np.array([story_of(k) for k in keys], np.int64)}
        return {"ts": np.array([self._by_time[i][0] for i in positions], np.float64),
                "seq": np.array([self._seq[i] for i in positions], np.int64),
                "isc": np.array([self._isc[i] for i in positions], np.float64),
                "src": np.array([self._src[i] for i in positions], np.int64),
                "sid": np.array([story_of(self._keys[i]) for i in positions], np.int64)}

    def row_at(self, position: int) -> tuple[float, StoredHeadline]:
        """(published epoch seconds, row) at a position in publication order."""
        ts, _, row = self._by_time[position]
        return ts, row

    def in_window(self, start: datetime, end: datetime) -> list[StoredHeadline]:
        """The rows published within [start, end], oldest first."""
        lo = bisect.bisect_left(self._by_time, (start.timestamp(), -1))
        hi = bisect.bisect_right(self._by_time, (end.timestamp(), math.inf))
        return [row for _, _, row in self._by_time[lo:hi]]


def story_key(members: list[StoredHeadline]) -> str:
    """The stable id of a story: from its earliest stored member."""
    first = min(members, key=lambda r: r.seq)
    return "s-" + hashlib.sha256(first.item_key.encode()).hexdigest()[:16]


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def top_stories(window: StoryWindow, query: TopQuery, now: datetime, *, red_threshold: float = 60.0,
                params: StoryParams = StoryParams(), step_seconds: int = TIME_STEP_SECONDS,
                with_url: bool = False) -> list[dict[str, Any]]:
    """The stories with members published in the last ``window_minutes`` before ``now``, best first.

    Each is ``{rank, story_id, headline, i_score, tier, coverage, sources, members, first_seen, updated, why}``:
    ``headline`` the best-scored member's text, ``i_score`` the story score (:mod:`iscore.story_score`),
    ``sources`` its distinct outlets, ``members`` the member ids (the client's id, else the URL). Only members within
    the window and the source/section filters count. ``with_url`` adds ``url``, the representative (best-scored)
    member's URL or None, for the pages (``/v1/top`` replies without it).
    """
    at = (datetime.fromtimestamp(now.timestamp() // step_seconds * step_seconds, timezone.utc) if step_seconds
          else now)
    start = _minus(at, timedelta(minutes=query.window_minutes))
    lo, hi = window.bounds(start, now)
    positions: range | list[int] = range(lo, hi)
    if query.sources or query.sections:
        positions = [i for i in positions if (not query.sources or window.row_at(i)[1].source in query.sources)
                     and (not query.sections or (window.row_at(i)[1].section or "") in query.sections)]
    if not len(positions):
        return []
    at_ts = at.timestamp()
    picked = _rank_groups(window.columns(positions), at_ts, query.limit, params)
    out = []
    for rank, idx in enumerate(picked, start=1):
        rows = [window.row_at(positions[i]) for i in idx]  # in publication order
        members = [r for _, r in rows]
        times = [t for t, _ in rows]
        s = score_at([m.i_score for m in members], [m.source for m in members], times, at_ts, params)
        best = max(members, key=lambda m: (m.i_score, -m.seq))
        story = {
            "rank": rank, "story_id": story_key(members), "headline": best.text, "i_score": s.score,
            "tier": "red" if s.score >= red_threshold else "blue", "coverage": s.coverage,
            "sources": sorted({m.source for m in members} - {""}),
            "members": [m.item_id if m.item_id is not None else m.url for m in members],
            "first_seen": _iso(members[0].published_at), "updated": _iso(members[-1].published_at),
            "why": why(s, len(members), params),
        }
        if with_url:
            story["url"] = best.url or None
        out.append(story)
    return out


def _rank_groups(col: dict[str, np.ndarray], at_ts: float, limit: int, params: StoryParams) -> list[np.ndarray]:
    """Positions in ``part`` of the members of the ``limit`` best stories, best first (numpy: all stories at once).

    The story score of :func:`iscore.story_score.score_value`, unrounded, for every story with members in ``part``;
    ties go to the most recently updated story, then to the story first stored (the same order on every worker).
    """
    ts, seq, isc, src, sid = col["ts"], col["seq"], col["isc"], col["src"], col["sid"]
    n_codes = int(src.max()) + 1
    uniq, inv = np.unique(sid, return_inverse=True)
    g = len(uniq)
    count = np.bincount(inv, minlength=g)
    total = np.bincount(inv, weights=isc, minlength=g)
    best = np.full(g, -np.inf)
    np.maximum.at(best, inv, isc)
    newest = np.full(g, -np.inf)
    np.maximum.at(newest, inv, ts)
    first = np.full(g, np.iinfo(np.int64).max)
    np.minimum.at(first, inv, seq)
    recent = np.bincount(inv, weights=(ts >= at_ts - params.velocity_minutes * 60).astype(np.float64), minlength=g)
    pairs = np.unique(inv * n_codes + src)
    coverage = np.bincount(pairs // n_codes, minlength=g)
    base = params.max_weight * best + (1 - params.max_weight) * total / count
    raw = base + params.coverage_weight * np.log2(coverage) + params.velocity_weight * np.log2(1 + recent)
    fresh = 0.5 ** (np.maximum(0.0, at_ts - newest) / 60 / params.half_life_minutes)
    score = np.clip(raw * fresh, 0.0, 100.0)
    order = np.lexsort((first, -newest, -score))[:limit]
    return [np.flatnonzero(inv == k) for k in order]


class LiveWindow:
    """A :class:`StoryWindow` kept in step with the store (one per process; thread-safe)."""

    def __init__(self, engine: Callable[[], Any], window_hours: float, refresh_seconds: float = 1.0,
                 index_options: Callable[[], tuple[Hashable, Mapping[str, Any]]] | None = None) -> None:
        """``engine()`` gives the store's migrated engine; sync at most every ``refresh_seconds``.

        ``index_options()`` gives ``(key, StoryIndex keyword arguments)``: the service passes the served model's
        version and :func:`iscore.stories.chosen_options` of it (the chosen clustering with the model's IDF table).
        The window is rebuilt from the store when the key changes (a model reload), so every worker clusters the
        same rows with the same options. Without it the index uses StoryIndex's defaults.
        """
        self._engine = engine
        self._index_options = index_options
        self.window_hours = window_hours
        self.refresh_seconds = refresh_seconds
        self.window: StoryWindow | None = None
        self._lock = threading.Lock()
        self._synced_at = -float("inf")
        self._read_at: datetime | None = None
        self._gaps: dict[int, float] = {}  # seq numbers not seen yet -> when first missed (monotonic seconds)

    def sync(self, now: datetime | None = None, force: bool = False) -> StoryWindow:
        """Catch up with the store (rebuilding on first use), unless synced within ``refresh_seconds``.

        No lock is held while the database is read: the app is built before gunicorn forks its gevent workers, so
        its locks are real OS locks, and a greenlet that waited for one while another held it across (cooperative)
        PostgreSQL I/O would block its whole worker. The lock guards the in-memory window only; rows read twice by
        concurrent syncs are added once.
        """
        mono = time.monotonic()
        now = now or datetime.now(timezone.utc)
        with self._lock:
            w = self.window
            if w is not None and not force and mono - self._synced_at < self.refresh_seconds:
                return w
            rebuild = w is None or w.needs_rebuild()
        key, options = self._index_options() if self._index_options is not None else (None, {})
        rebuild = rebuild or (w is not None and w.options_key != key)
        engine = self._engine()
        published_since = now - timedelta(hours=self.window_hours)
        if rebuild or w is None:
            fresh = StoryWindow(self.window_hours, options, key)
            rows = read_since(engine, 0, published_since=published_since)
            fresh.add(rows)
            with self._lock:
                self.window = fresh
                recent = max(0, fresh.hwm - 1000)  # numbers missing among the newest rows may still commit
                self._note_gaps(recent, [r for r in rows if r.seq > recent], [], mono, engine.dialect.name)
        else:
            hwm = w.hwm
            rows = read_since(engine, hwm)
            late = rows_by_seq(engine, sorted(self._gaps)) if self._gaps else []
            with self._lock:
                assert self.window is not None
                self._note_gaps(hwm, rows, late, mono, engine.dialect.name)
                self.window.add(r for r in rows + late if r.published_at >= published_since)
        with self._lock:
            assert self.window is not None
            self.window.evict(now)
            self._read_at, self._synced_at = now, mono
            return self.window

    def _note_gaps(self, hwm: int, rows: list[StoredHeadline], late: list[StoredHeadline], mono: float,
                   dialect: str) -> None:
        """Remember seq numbers skipped below the rows just read; forget found or expired ones.

        On PostgreSQL a transaction can commit a smaller seq after a larger one was read (or never: a rollback,
        or a duplicate that consumed a number), so each missing number is asked for again on every sync for
        LATE_COMMIT_SECONDS. SQLite commits one writer at a time, in seq order: nothing to remember.
        """
        for r in late:
            self._gaps.pop(r.seq, None)
        if dialect == "sqlite":
            return
        prev = hwm
        for r in sorted(rows, key=lambda r: r.seq):
            for missing in range(prev + 1, min(r.seq, prev + 1 + MAX_GAPS)):
                self._gaps.setdefault(missing, mono)
            prev = max(prev, r.seq)
        expired = [g for g, t in self._gaps.items() if mono - t > LATE_COMMIT_SECONDS]
        for g in expired:
            del self._gaps[g]
        while len(self._gaps) > MAX_GAPS:
            del self._gaps[min(self._gaps)]

    def ranked(self, query: TopQuery, now: datetime, *, red_threshold: float = 60.0,
               params: StoryParams = StoryParams(), with_url: bool = False) -> list[dict[str, Any]]:
        """The top stories of the window as last synced (no database call); [] before the first sync."""
        with self._lock:
            if self.window is None:
                return []
            return top_stories(self.window, query, now, red_threshold=red_threshold, params=params,
                               with_url=with_url)

    def top(self, query: TopQuery, now: datetime | None = None, *, red_threshold: float = 60.0,
            params: StoryParams = StoryParams(), with_url: bool = False) -> list[dict[str, Any]]:
        """The top stories after a sync with the store (what /v1/top returns in ``stories``; ``url`` on request)."""
        now = now or datetime.now(timezone.utc)
        self.sync(now)
        return self.ranked(query, now, red_threshold=red_threshold, params=params, with_url=with_url)


def filters(values: Iterable[str] | None) -> frozenset[str]:
    """Comma-separated filter values as a set (lower case, blanks dropped)."""
    out: set[str] = set()
    for v in values or ():
        out.update(p.strip().lower() for p in v.split(",") if p.strip())
    return frozenset(out)


def _minus(t: datetime, span: timedelta) -> datetime:
    """``t - span``, or the earliest datetime when that would fall before year 1 (a client's "now" may be early)."""
    try:
        return t - span
    except OverflowError:
        return datetime.min.replace(tzinfo=t.tzinfo)


def group_stories(headlines: list[tuple[str, str, str, datetime | None, float]], now: datetime, limit: int, *,
                  red_threshold: float = 60.0, params: StoryParams = StoryParams(),
                  index_options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Cluster one request's scored headlines ``(id, text, source, published_at, i_score)`` into ranked stories.

    For stateless callers (``/v1/rank`` with ``group_stories``): the same stories and story score as
    :func:`top_stories`, over these headlines only, clustered with ``index_options`` (the service passes the
    live window's, the chosen method with the served model's IDF table); an undated or future headline counts
    as published at ``now``.
    """
    if not headlines:
        return []
    rows = []
    for i, (hid, text, source, published, i_score) in enumerate(headlines):
        t = now if published is None or published > now else max(published, _minus(now, timedelta(days=3660)))
        rows.append(StoredHeadline(seq=i + 1, item_key=f"{i}\x1f{hid}", item_id=hid, text=text,
                                   source=normalize_source(source).key if source else "",
                                   section=None, url=None, published_at=t, received_at=now, i_score=i_score))
    oldest = min(r.published_at for r in rows)
    span_hours = max(1.0, (now - oldest).total_seconds() / 3600 + 1)
    w = StoryWindow(span_hours, index_options)
    w.add(rows)
    query = TopQuery(window_minutes=span_hours * 60, limit=limit)
    # Freshness and velocity are measured at the request's own time, not rounded to TIME_STEP_SECONDS.
    return top_stories(w, query, now, red_threshold=red_threshold, params=params, step_seconds=0)
