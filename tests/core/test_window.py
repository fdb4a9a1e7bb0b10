"""Story score and the live window's top stories (iscore/story_score.py, iscore/window.py), without Flask."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iscore.story_score import StoryParams, score_value, story_score, why
from iscore.window import StoryWindow, TopQuery, group_stories, top_stories
from iscore.window_store import StoredHeadline

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=timezone.utc)
AT = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)  # NOW rounded down to the minute


def test_formula_one_outlet_coverage_doubling_and_half_life():
    one = story_score([50.0], ["a"], [AT], AT)
    assert one.score == 53.0 and one.coverage == 1 and one.recent == 1  # 50 + 3 x log2(1 + 1)
    old = story_score([50.0], ["a"], [AT - timedelta(minutes=31)], AT, StoryParams(half_life_minutes=1e9))
    assert old.score == 50.0 and old.recent == 0
    two = story_score([50.0, 50.0], ["a", "b"], [AT - timedelta(hours=2), AT - timedelta(hours=2)], AT)
    assert two.freshness == 0.5 and two.score == pytest.approx((50 + 10) * 0.5, abs=0.05)
    four = story_score([50.0] * 4, ["a", "b", "c", "d"], [AT] * 4, AT, StoryParams(velocity_minutes=30))
    assert four.score == pytest.approx(min(100, 50 + 20 + 3 * 2.3219), abs=0.05)
    assert story_score([99.0] * 9, list("abcdefghi"), [AT] * 9, AT).score == 100.0


def test_why_reads_like_a_newsroom():
    times = [AT - timedelta(minutes=m) for m in (40, 30, 20, 10, 5, 3, 0)]
    s = story_score([40.0] * 7, list("abcdefg"), times, AT)
    assert why(s, 7).startswith("carried by 7 outlets in 40 minutes; 6 headlines in the last 30 minutes")
    assert why(story_score([40.0], ["a"], [AT - timedelta(hours=1)], AT), 1) == "reported by 1 outlet"


def row(seq, text, source, minutes, i_score=50.0, section=None):
    return StoredHeadline(seq=seq, item_key=f"k{seq}", item_id=str(seq), text=text, source=source, section=section,
                          url=None, published_at=AT - timedelta(minutes=minutes), received_at=NOW, i_score=i_score)


QUAKE = ["Earthquake kills 300 in central Chile", "Chile earthquake kills hundreds in central region",
         "Central Chile earthquake: hundreds killed"]


def test_coverage_lifts_a_story_above_a_better_single_headline():
    w = StoryWindow(6)
    w.add([row(1, QUAKE[0], "reuters", 30, 55), row(2, QUAKE[1], "bbc", 20, 55), row(3, QUAKE[2], "ap", 10, 55),
           row(4, "Pop star debuts new haircut at awards", "tmz", 5, 62)])
    top = top_stories(w, TopQuery(), NOW)
    assert [t["members"] for t in top] == [["1", "2", "3"], ["4"]]
    assert top[0]["coverage"] == 3 and top[0]["tier"] == "red" and top[1]["tier"] == "red"
    assert top[0]["first_seen"] == "2026-11-26T11:30:00Z" and top[0]["updated"] == "2026-11-26T11:50:00Z"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5), st.floats(0, 240), st.floats(0, 100)),
                min_size=1, max_size=60), st.integers(1, 10))
def test_numpy_ranking_agrees_with_the_formula_story_by_story(specs, limit):
    # texts drawn from a few templates make multi-member stories; the ranking must follow score_value exactly
    w = StoryWindow(6)
    w.add([row(i + 1, f"{['storm floods', 'court ruling', 'market crash'][t % 3]} in town {t}", f"s{src}", m, isc)
           for i, (t, src, m, isc) in enumerate(specs)])
    top = top_stories(w, TopQuery(window_minutes=360, limit=limit), NOW)
    groups: dict[int, list[StoredHeadline]] = {}
    for r in w.rows.values():
        groups.setdefault(w.index.story_id(r.item_key), []).append(r)
    expected = sorted((score_value([m.i_score for m in g], [m.source for m in g],
                                   [m.published_at.timestamp() for m in g], AT.timestamp()) for g in groups.values()),
                      reverse=True)[:limit]
    assert [t["i_score"] for t in top] == pytest.approx(expected, abs=0.051)
    assert [t["rank"] for t in top] == list(range(1, len(top) + 1))
    assert sorted(m for t in top for m in t["members"]) == sorted(set(m for t in top for m in t["members"]))


def test_filters_and_window_bounds():
    w = StoryWindow(6)
    w.add([row(1, QUAKE[0], "reuters", 90, section="world"), row(2, QUAKE[1], "bbc", 20, section="world"),
           row(3, "Best brunch spots", "eater", 5, section="food")])
    assert [t["members"] for t in top_stories(w, TopQuery(window_minutes=60), NOW)] == [["2"], ["3"]] or \
        [t["members"] for t in top_stories(w, TopQuery(window_minutes=60), NOW)] == [["3"], ["2"]]
    assert [t["members"] for t in top_stories(w, TopQuery(window_minutes=120, sections=frozenset({"world"})), NOW)] \
        == [["1", "2"]]
    assert top_stories(w, TopQuery(sources=frozenset({"nobody"})), NOW) == []


def test_evict_forgets_rows_past_the_window_and_stories_stay_consistent():
    w = StoryWindow(1)
    w.add([row(1, QUAKE[0], "reuters", 90), row(2, QUAKE[1], "bbc", 20)])
    assert w.evict(NOW) == 1 and set(w.rows) == {"k2"}
    assert [t["members"] for t in top_stories(w, TopQuery(), NOW)] == [["2"]]
    w.add([row(2, QUAKE[1], "bbc", 20)])  # a repeat changes nothing
    assert len(w.rows) == 1


def test_group_stories_for_a_stateless_request():
    rng = random.Random(0)
    heads = [(f"h{i}", QUAKE[i % 3], ["reuters", "bbc", "ap"][i % 3], None, rng.uniform(30, 60)) for i in range(3)]
    heads.append(("solo", "Ten easy recipes for a quick weekday dinner", "", None, 20.0))
    stories = group_stories(heads, NOW, 10)
    assert [sorted(s["members"]) for s in stories] == [["h0", "h1", "h2"], ["solo"]]
    assert stories[1]["sources"] == []
