"""Where the pages get their stories: the ``TopStories`` provider interface and its default implementation.

A provider is any callable ``top_stories(window_minutes, limit) -> list[dict]`` returning stories in the
``/v1/top`` shape (issue #16): ``rank, story_id, headline, i_score, tier, coverage, sources, members,
first_seen, updated`` (plus ``url`` when the representative headline has one). The pages only call it;
the story store of #16 plugs in by setting ``app.extensions["iscore_pages"].provider``.

Until then ``SeededTopStories`` ranks the headlines held in a small SQLite table (``PagesStore``, under the
state directory so every gunicorn worker sees the same ones), fed by ``POST /v1/admin/headlines`` or by
tests. Each headline is its own story (coverage = its one source); they are scored with the served model
through ``iscore.scoring.reply_items``, and scores are cached per model version and headline.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from iscore.model import blends
from iscore.scoring import rank_order, reply_items
from service.holder import ModelHolder

MAX_SEEDED = 5000  # the seed table keeps at most this many headlines (the newest)


class TopStories(Protocol):
    """The stories of the last ``window_minutes``, best first, at most ``limit``, in the /v1/top shape."""

    def __call__(self, window_minutes: int, limit: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class SeedHeadline:
    """One headline held for the default provider."""

    id: str
    text: str
    source: str
    url: str
    published_at: datetime


class PagesStore:
    """The seeded headlines (table ``headlines``) in a SQLite file, created on first use."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._ready = False
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout)
        with self._lock:
            if not self._ready:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("CREATE TABLE IF NOT EXISTS headlines (id TEXT PRIMARY KEY, text TEXT NOT NULL, "
                             "source TEXT NOT NULL, url TEXT NOT NULL, published_at TEXT NOT NULL)")
                conn.commit()
                self._ready = True
        return conn

    def put(self, items: Sequence[SeedHeadline]) -> int:
        """Insert or replace headlines by id; keeps the newest MAX_SEEDED. Returns how many were written."""
        conn = self._connect()
        try:
            with conn:
                conn.executemany("INSERT OR REPLACE INTO headlines VALUES (?, ?, ?, ?, ?)",
                                 [(h.id, h.text, h.source, h.url, h.published_at.isoformat()) for h in items])
                conn.execute("DELETE FROM headlines WHERE id NOT IN "
                             "(SELECT id FROM headlines ORDER BY published_at DESC LIMIT ?)", (MAX_SEEDED,))
        finally:
            conn.close()
        return len(items)

    def since(self, start: datetime, end: datetime) -> list[SeedHeadline]:
        """Headlines published in [start, end]."""
        conn = self._connect()
        try:
            rows = conn.execute("SELECT id, text, source, url, published_at FROM headlines", ()).fetchall()
        finally:
            conn.close()
        out = [SeedHeadline(r[0], r[1], r[2], r[3], datetime.fromisoformat(r[4])) for r in rows]
        return [h for h in out if start <= h.published_at <= end]


def serving_blend(pipeline: Any, default: str) -> str:
    """The blend /v1/score uses without ``?blend=``: ISCORE_BLEND when the model offers it, else its own."""
    offered = blends(pipeline)
    return default if default in offered else offered[0]


class SeededTopStories:
    """The default provider: the seeded headlines of the window, each its own story, ranked by i-Score."""

    def __init__(self, store: PagesStore, holder: ModelHolder, red_threshold: float, blend: str = "editorial") -> None:
        self.store = store
        self.holder = holder
        self.red_threshold = red_threshold
        self.blend = blend
        self._cache: dict[tuple[str, str, str, str], tuple[float, str]] = {}
        self._cache_version: str | None = None
        self._lock = threading.Lock()

    def scores(self, heads: Sequence[SeedHeadline]) -> list[tuple[float, str]]:
        """(i_score, tier) of each headline with the served model, cached per model version."""
        model = self.holder.get()
        if model is None:
            raise LookupError("no model loaded")
        with self._lock:
            if self._cache_version != model.version:
                self._cache, self._cache_version = {}, model.version
            cache = self._cache
        blend = serving_blend(model.pipeline, self.blend)
        keys = [(h.id, h.text, h.source, blend) for h in heads]
        todo = [(k, h) for k, h in zip(keys, heads) if k not in cache]
        if todo:
            items = reply_items(model.pipeline, [(h.id, h.text, h.source or None) for _, h in todo],
                                red_threshold=self.red_threshold, explain_top=1, with_explain=False, blend=blend,
                                scorer=model.scorer)
            with self._lock:
                if len(self._cache) > 4 * MAX_SEEDED:
                    self._cache = {}  # a new dict: requests holding the old one still read their entries
                for (k, _), item in zip(todo, items):
                    cache[k] = self._cache[k] = (item["i_score"], item["tier"])
        return [cache[k] for k in keys]

    def __call__(self, window_minutes: int, limit: int, now: datetime | None = None) -> list[dict[str, Any]]:
        """The top ``limit`` seeded headlines of the last ``window_minutes`` as stories."""
        now = now or datetime.now(timezone.utc)
        heads = self.store.since(now - timedelta(minutes=window_minutes), now)
        if not heads:
            return []
        scored = self.scores(heads)
        order = rank_order([s for s, _ in scored], [h.id for h in heads])[:limit]
        out = []
        for rank, i in enumerate(order, 1):
            h, (i_score, tier) = heads[i], scored[i]
            out.append({"rank": rank, "story_id": h.id, "headline": h.text, "i_score": i_score, "tier": tier,
                        "coverage": 1 if h.source else 0, "sources": [h.source] if h.source else [],
                        "members": [h.id], "first_seen": h.published_at.isoformat(),
                        "updated": h.published_at.isoformat(), "url": h.url or None})
        return out
