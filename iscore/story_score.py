"""The story score (#16 item 4): one 0-100 number per story, from its members, its outlets and its pace.

    base      = max_weight * max(member i-Scores) + (1 - max_weight) * mean(member i-Scores)
    coverage  = coverage_weight * log2(distinct sources)                  (0 for one outlet)
    velocity  = velocity_weight * log2(1 + members published in the last velocity_minutes)
    freshness = 0.5 ** (minutes since the newest member / half_life_minutes)
    score     = min(100, (base + coverage + velocity) * freshness)

Shipped weights (:class:`StoryParams` defaults): max_weight 0.5, coverage_weight 10 (+10 per doubling of the
outlets), velocity_weight 0, half-life 60 minutes (``ISCORE_STORY_HALF_LIFE_MINUTES``). Learned by
bench/story_score_eval.py on news_engagement_2019: a grid of 336 settings of the four weights, fitted on the 45
earliest 3-hour windows (the share of the outlets' own top picks among the top ten) and reported on the 22 later
ones: 0.2545 against 0.2386 for the previous hand-set weights (0.7, 10, 3, 120 min); coverage alone 0.2386,
random 0.1155. The difference is about one standard error of 22 windows, and settings tied with the chosen one on
the fit windows scored 0.2386-0.2545 later: the data says "coverage, the members' mean as much as the best, a
shorter half-life, no velocity term" only weakly. Velocity got weight 0 (3-hour windows from 11 outlets show it
little); the term stays in the formula, ``why`` still reports recent headlines. On UCI coverage (the ten stories
most publishers carried, ``--uci``) the learned weights find 0.724 of them per hour against 0.740 for the hand-set
ones: publisher counts are not the outlets' picks the weights were learned on.

So a story carried by one outlet scores about its best headline's i-Score while it is fresh; each doubling of the
outlets carrying it adds 10 points; a story nobody has added to for an hour counts half.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

COVERAGE_WEIGHT = 10.0
VELOCITY_WEIGHT = 0.0
MAX_WEIGHT = 0.5  # share of the best member's i-Score in the base (the rest is the members' mean)
HALF_LIFE_MINUTES = 60.0
# The weights set by hand before they were learned (bench/story_score_eval.py compares with them).
HAND_SET = dict(max_weight=0.7, coverage_weight=10.0, velocity_weight=3.0, half_life_minutes=120.0)


@dataclass(frozen=True)
class StoryParams:
    """The story score's time constants (from settings) and weights (learned; see the module docstring)."""

    half_life_minutes: float = HALF_LIFE_MINUTES
    velocity_minutes: float = 30.0
    max_weight: float = MAX_WEIGHT
    coverage_weight: float = COVERAGE_WEIGHT
    velocity_weight: float = VELOCITY_WEIGHT


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
        raw = i_scores[0] + (params.velocity_weight if t >= horizon else 0.0)  # velocity_weight x log2(1 + 1)
        newest = t
    else:
        mw = params.max_weight
        base = mw * max(i_scores) + (1 - mw) * (sum(i_scores) / len(i_scores))
        recent = sum(1 for t in times if t >= horizon)  # a member after ``now`` counts as recent too
        raw = (base + params.coverage_weight * math.log2(len(set(sources)))
               + params.velocity_weight * math.log2(1 + recent))
        newest = max(times)
    freshness = 0.5 ** (max(0.0, now - newest) / 60 / params.half_life_minutes)
    return round(max(0.0, min(100.0, raw * freshness)), 1)


def score_at(i_scores: Sequence[float], sources: Sequence[str], times: Sequence[float], now: float,
             params: StoryParams = StoryParams()) -> StoryScore:
    """:func:`story_score` on epoch seconds (no datetime arithmetic)."""
    n = len(i_scores)
    base = params.max_weight * max(i_scores) + (1 - params.max_weight) * (sum(i_scores) / n)
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
