"""Desk labels: which newsroom section (hard news or soft news) published a headline, read from its URL.

Engagement says how many people reacted; the section an editor filed a story under says what kind of
story the newsroom thinks it is. Paths such as ``/politics/``, ``/world/`` or ``/business/`` mark hard
news, ``/entertainment/``, ``/lifestyle/`` or ``/food/`` soft news. Sport, opinion, video and generic
``/news/`` paths say nothing either way and give no label. Only directory segments count (never the
slug, which repeats the headline), and a URL with both kinds of segment is left unlabelled.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np

HARD_SECTIONS = frozenset({
    "politics", "world", "nation", "national", "international", "nation-world", "nationworld",
    "nation-now", "nationnow", "us-news", "world-news", "uk-news", "india-news", "israel-news",
    "federal-politics", "political-news", "politics-government", "politics-and-nation", "govt-and-politics",
    "government", "election", "elections", "national-affairs", "current-affairs", "military",
    "business", "economy", "economy-policy", "markets", "companies", "money", "finance", "personal-finance",
    "crime", "crime-and-courts", "courts", "health", "science", "environment", "earth",
    "americas", "europe", "asia", "africa", "middle-east", "breaking-news", "breakingnews", "breaking",
})
SOFT_SECTIONS = frozenset({
    "entertainment", "arts-entertainment", "celebrity", "celebrities", "celebs", "bollywood", "hollywood",
    "lifestyle", "lifestyles", "life-style", "life", "living", "style", "fashion", "beauty",
    "food", "dining", "recipes", "restaurants", "travel", "thingstodo", "things-to-do",
    "music", "movies", "tv", "television", "books", "arts", "culture", "people",
    "offbeat", "odd", "weird", "viral", "trending", "trending-today", "animals", "pets",
    "relationships", "parenting", "home-garden", "horoscopes", "quiz", "quizzes",
})


def desk_of(url: str) -> str | None:
    """'hard', 'soft' or None for one article URL."""
    try:
        path = urlsplit(url.strip()).path
    except ValueError:
        return None
    parts = [p.lower() for p in path.split("/") if p]
    dirs = set(parts[:-1])  # the last part is the article's own slug or file name
    hard, soft = bool(dirs & HARD_SECTIONS), bool(dirs & SOFT_SECTIONS)
    if hard == soft:
        return None
    return "hard" if hard else "soft"


def desk_labels(urls: object) -> np.ndarray:
    """100.0 for hard news, 0.0 for soft news, NaN where the URL names no such section."""
    out = []
    for u in urls:  # type: ignore[attr-defined]
        d = desk_of(u) if isinstance(u, str) else None
        out.append(100.0 if d == "hard" else 0.0 if d == "soft" else np.nan)
    return np.asarray(out, dtype=np.float64)
