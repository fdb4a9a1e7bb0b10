"""Where the pages get their stories: the ``TopStories`` provider interface and its default, the live window.

A provider is any callable ``top_stories(window_minutes, limit) -> list[dict]`` returning stories in the
``/v1/top`` shape: ``rank, story_id, headline, i_score, tier, coverage, sources, members, first_seen, updated,
why`` plus ``url`` (the representative headline's link, or None). The default, :class:`LiveTopStories`, is the
worker's live story window of issue #16 (``service.headlines.live_window``), fed by ``POST /v1/headlines`` and
the feed poller: the same stories, ids and scores as ``GET /v1/top``. Another provider plugs in by setting
``app.extensions["iscore_pages"].provider``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Protocol

from flask import Flask

from iscore.model import blends
from iscore.window import TopQuery
from service.headlines import ingest_state, synced
from service.schema import parse_blend


class TopStories(Protocol):
    """The stories of the last ``window_minutes``, best first, at most ``limit``, in the /v1/top shape."""

    def __call__(self, window_minutes: int, limit: int) -> list[dict[str, Any]]: ...


class LiveTopStories:
    """The default provider: ``GET /v1/top``'s stories of the app's live window, each with its ``url``."""

    def __init__(self, app: Flask) -> None:
        """Bind to an app; its window store is reached on the first call, not before."""
        self.app = app

    def __call__(self, window_minutes: int, limit: int, now: datetime | None = None) -> list[dict[str, Any]]:
        """The top ``limit`` stories of the last ``window_minutes`` (503 when the store was never reachable)."""
        state = ingest_state(self.app)
        now = now or datetime.now(timezone.utc)
        synced(state, now)
        return state.live.ranked(TopQuery(window_minutes=float(window_minutes), limit=limit), now,
                                 red_threshold=state.settings.red_threshold, params=state.params, with_url=True)


def serving_blend(pipeline: Any, default: str) -> str:
    """The blend /v1/score uses without ``?blend=``: ISCORE_BLEND when the model offers it, else its own."""
    return parse_blend(None, blends(pipeline), default)
