"""The story score (#16 item 4): one 0-100 number per story, from its members, its outlets and its pace.

    base      = 0.7 * max(member i-Scores) + 0.3 * mean(member i-Scores)
    coverage  = COVERAGE_WEIGHT * log2(distinct sources)           (0 for one outlet, +10 per doubling)
    velocity  = VELOCITY_WEIGHT * log2(1 + members published in the last velocity_minutes)
    freshness = 0.5 ** (minutes since the newest member / half_life_minutes)
    score     = min(100, (base + coverage + velocity) * freshness)

So a story carried by one outlet scores about its best headline's i-Score while it is fresh; each doubling of the
outlets carrying it adds 10 points; a story nobody has added to for one half-life counts half. The weights are
set by hand (the issue asks to learn them where labels allow; that evaluation is not done yet, see the README).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

COVERAGE_WEIGHT = 10.0
VELOCITY_WEIGHT = 3.0
MAX_WEIGHT = 0.7  # share of the best member's i-Score in the base (the rest is the members' mean)


@dataclass(frozen=True)
class StoryParams:
    """The time constants of the story score (from settings)."""

    half_life_minutes: float = 120.0
    velocity_minutes: float = 30.0


@dataclass(frozen=True)
class StoryScore:
    """A story's score and the parts it was built from."""

    score: float
    base: float
    coverage: int
    recent: int
    freshness: float
    span_minutes: float


def story_score(i_scores: Sequence[float], sources: Sequence[str], published: Sequence[datetime], now: datetime,
                params: StoryParams = StoryParams()) -> StoryScore:
    """Score one story from its members' i-Scores, sources and publication times (same order) at ``now``."""
    if not i_scores or not (len(i_scores) == len(sources) == len(published)):
        raise ValueError("a story needs members, with one source and one time each")
    return score_at(i_scores, sources, [t.timestamp() for t in published], now.timestamp(), params)


def score_value(i_scores: Sequence[float], sources: Sequence[str], times: Sequence[float], now: float,
                params: StoryParams = StoryParams()) -> float:
    """The story score alone, on epoch seconds (the live window ranks thousands of stories with it)."""
    horizon = now - params.velocity_minutes * 60
    if len(i_scores) == 1:  # most stories: no sums, no sets
        t = times[0]
        raw = i_scores[0] + (VELOCITY_WEIGHT if t >= horizon else 0.0)  # 3 x log2(1 + 1)
        newest = t
    else:
        base = MAX_WEIGHT * max(i_scores) + (1 - MAX_WEIGHT) * (sum(i_scores) / len(i_scores))
        recent = sum(1 for t in times if t >= horizon)  # a member after ``now`` counts as recent too
        raw = base + COVERAGE_WEIGHT * math.log2(len(set(sources))) + VELOCITY_WEIGHT * math.log2(1 + recent)
        newest = max(times)
    freshness = 0.5 ** (max(0.0, now - newest) / 60 / params.half_life_minutes)
    return round(max(0.0, min(100.0, raw * freshness)), 1)


def score_at(i_scores: Sequence[float], sources: Sequence[str], times: Sequence[float], now: float,
             params: StoryParams = StoryParams()) -> StoryScore:
    """:func:`story_score` on epoch seconds (no datetime arithmetic)."""
    n = len(i_scores)
    base = MAX_WEIGHT * max(i_scores) + (1 - MAX_WEIGHT) * (sum(i_scores) / n)
    horizon = now - params.velocity_minutes * 60
    recent = sum(1 for t in times if t >= horizon)
    newest, oldest = max(times), min(times)
    freshness = 0.5 ** (max(0.0, now - newest) / 60 / params.half_life_minutes)
    return StoryScore(score=score_value(i_scores, sources, times, now, params), base=round(base, 1),
                      coverage=len(set(sources)), recent=recent, freshness=round(freshness, 3),
                      span_minutes=(newest - oldest) / 60)


def why(s: StoryScore, members: int, params: StoryParams = StoryParams()) -> str:
    """One line a reader understands: "carried by 7 outlets in 40 minutes; 3 headlines in the last 30 minutes"."""
    outlets = f"{s.coverage} outlet{'s' if s.coverage != 1 else ''}"
    span = max(1, round(s.span_minutes))
    text = (f"carried by {outlets} in {span} minute{'s' if span != 1 else ''}" if members > 1
            else f"reported by {outlets}")
    if s.recent:
        text += (f"; {s.recent} headline{'s' if s.recent != 1 else ''} in the last "
                 f"{params.velocity_minutes:g} minutes")
    return text
