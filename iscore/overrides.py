"""Editors' overrides of the top list: pin, hide or boost a story for a time, with who and when.

``apply(stories, overrides, now)`` is pure: it takes story dicts in the ``/v1/top`` shape (``rank, story_id,
headline, i_score, tier, ...``) from whatever produced them and returns the list an editor's choices make of
it: hidden stories dropped, boosted ones ranked by ``i_score + boost`` (the displayed ``i_score`` and ``tier``
stay the model's), pinned ones first (the most recent pin on top), ranks renumbered, and each touched story
marked with ``"override": {"pinned", "boost"}``.

``OverrideStore`` keeps every action in one SQLite table under the state directory (all workers read the same
file, so an action applies at once everywhere): the active overrides are the rows whose time has not run out
and that no later ``clear`` of the same story ended; the whole table is the audit list.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ACTIONS = ("pin", "hide", "boost", "clear")
MAX_MINUTES = 7 * 24 * 60  # an override lasts at most a week
MAX_BOOST = 50.0
MAX_WHO_CHARS = 80


@dataclass(frozen=True)
class Override:
    """One editor action on one story; ``until`` is None for ``clear`` (it ends the story's earlier overrides)."""

    id: int
    story_id: str
    action: str
    boost: float
    until: datetime | None
    who: str
    at: datetime
    headline: str = ""

    def active(self, now: datetime) -> bool:
        """True while the action still applies (a ``clear`` never is: it only ends others)."""
        return self.action != "clear" and self.until is not None and self.until > now


def active_overrides(history: Iterable[Override], now: datetime) -> list[Override]:
    """The overrides in force at ``now``: unexpired, and not ended by a later ``clear`` of the same story."""
    rows = sorted(history, key=lambda o: (o.at, o.id))
    cleared: dict[str, tuple[datetime, int]] = {}
    for o in rows:
        if o.action == "clear":
            cleared[o.story_id] = (o.at, o.id)
    return [o for o in rows if o.active(now) and (o.story_id not in cleared or (o.at, o.id) > cleared[o.story_id])]


def apply(stories: Sequence[dict[str, Any]], overrides: Iterable[Override], now: datetime,
          limit: int | None = None) -> list[dict[str, Any]]:
    """The stories as the active overrides make them: hidden out, boosts re-rank, pins first; ranks renumbered."""
    active = active_overrides(overrides, now)
    hidden = {o.story_id for o in active if o.action == "hide"}
    boost: dict[str, float] = {}
    pinned_at: dict[str, tuple[datetime, int]] = {}
    for o in active:
        if o.action == "boost":
            boost[o.story_id] = boost.get(o.story_id, 0.0) + o.boost
        elif o.action == "pin":
            pinned_at[o.story_id] = max(pinned_at.get(o.story_id, (o.at, o.id)), (o.at, o.id))
    kept = []
    for position, story in enumerate(stories):
        sid = str(story.get("story_id"))
        if sid in hidden:
            continue
        out = dict(story)
        if sid in boost or sid in pinned_at:
            out["override"] = {"pinned": sid in pinned_at, "boost": round(boost.get(sid, 0.0), 1)}
        kept.append((position, out))

    def order(entry: tuple[int, dict[str, Any]]) -> tuple[Any, ...]:
        position, story = entry
        sid = str(story.get("story_id"))
        if sid in pinned_at:
            at, oid = pinned_at[sid]
            return (0, -at.timestamp(), -oid, 0.0, position)
        return (1, 0.0, 0, -(float(story.get("i_score", 0.0)) + boost.get(sid, 0.0)), position)

    ranked = [story for _, story in sorted(kept, key=order)]
    if limit is not None:
        ranked = ranked[:limit]
    for i, story in enumerate(ranked):
        story["rank"] = i + 1
    return ranked


class OverrideError(ValueError):
    """An override request with a bad action, duration, boost or story id."""


def validate(action: str, story_id: str, minutes: float | None, boost: float | None, who: str) -> None:
    """Raise OverrideError unless the fields make a valid action."""
    if action not in ACTIONS:
        raise OverrideError(f"action must be one of {', '.join(ACTIONS)}")
    if not story_id or len(story_id) > 200:
        raise OverrideError("a story id of 1-200 characters is required")
    if not who.strip() or len(who) > MAX_WHO_CHARS:
        raise OverrideError(f"who must be 1-{MAX_WHO_CHARS} characters")
    if action != "clear" and (minutes is None or not 1 <= minutes <= MAX_MINUTES):
        raise OverrideError(f"minutes must be between 1 and {MAX_MINUTES}")
    if action == "boost" and (boost is None or not -MAX_BOOST <= boost <= MAX_BOOST or boost == 0):
        raise OverrideError(f"boost must be a non-zero number of points between -{MAX_BOOST:g} and {MAX_BOOST:g}")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class OverrideStore:
    """Overrides in SQLite (``overrides`` table of the file at ``path``), created on first use."""

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
                conn.execute("CREATE TABLE IF NOT EXISTS overrides (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "story_id TEXT NOT NULL, action TEXT NOT NULL, boost REAL NOT NULL DEFAULT 0, "
                             "until TEXT, who TEXT NOT NULL, at TEXT NOT NULL, headline TEXT NOT NULL DEFAULT '')")
                conn.commit()
                self._ready = True
        return conn

    def add(self, action: str, story_id: str, *, who: str, minutes: float | None = None, boost: float | None = None,
            headline: str = "", now: datetime | None = None) -> Override:
        """Record one action (validated first); returns it as stored."""
        validate(action, story_id, minutes, boost, who)
        now = now or datetime.now(timezone.utc)
        until = None if action == "clear" else now + timedelta(minutes=float(minutes or 0))
        amount = float(boost or 0.0) if action == "boost" else 0.0
        conn = self._connect()
        try:
            with conn:
                cur = conn.execute("INSERT INTO overrides (story_id, action, boost, until, who, at, headline) "
                                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                   (story_id, action, amount, until.isoformat() if until else None, who.strip(),
                                    now.isoformat(), headline[:1000]))
            oid = int(cur.lastrowid or 0)
        finally:
            conn.close()
        return Override(oid, story_id, action, amount, until, who.strip(), now, headline[:1000])

    def history(self, limit: int | None = None) -> list[Override]:
        """Every recorded action, newest first (the audit list); ``limit`` keeps the newest ones."""
        conn = self._connect()
        try:
            sql = "SELECT id, story_id, action, boost, until, who, at, headline FROM overrides ORDER BY id DESC"
            rows = conn.execute(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ()).fetchall()
        finally:
            conn.close()
        return [Override(r[0], r[1], r[2], r[3], _time(r[4]), r[5], _time(r[6]) or datetime.min, r[7]) for r in rows]

    def active(self, now: datetime | None = None) -> list[Override]:
        """The overrides in force now."""
        return active_overrides(self.history(), now or datetime.now(timezone.utc))
