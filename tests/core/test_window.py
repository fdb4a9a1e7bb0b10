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


HAND = StoryParams(half_life_minutes=120.0, max_weight=0.7, coverage_weight=10.0, velocity_weight=3.0)


def test_formula_one_outlet_coverage_doubling_and_half_life():
    one = story_score([50.0], ["a"], [AT], AT, HAND)
    assert one.score == 53.0 and one.coverage == 1 and one.recent == 1  # 50 + 3 x log2(1 + 1)
    old = story_score([50.0], ["a"], [AT - timedelta(minutes=31)], AT,
                      StoryParams(half_life_minutes=1e9, velocity_weight=3.0))
    assert old.score == 50.0 and old.recent == 0
    two = story_score([50.0, 50.0], ["a", "b"], [AT - timedelta(hours=2), AT - timedelta(hours=2)], AT, HAND)
    assert two.freshness == 0.5 and two.score == pytest.approx((50 + 10) * 0.5, abs=0.05)
    four = story_score([50.0] * 4, ["a", "b", "c", "d"], [AT] * 4, AT, HAND)
    assert four.score == pytest.approx(min(100, 50 + 20 + 3 * 2.3219), abs=0.05)
    assert story_score([99.0] * 9, list("abcdefghi"), [AT] * 9, AT).score == 100.0
    # the base weighs the best member and the members' mean by max_weight
    mixed = story_score([80.0, 40.0], ["a", "a"], [AT, AT], AT, StoryParams(max_weight=0.25, velocity_weight=0))
    assert mixed.score == pytest.approx(0.25 * 80 + 0.75 * 60, abs=0.05)


def test_shipped_weights_are_the_learned_ones():
    # bench/story_score_eval.py: fitted on the early news_engagement_2019 windows, better on the later ones
    p = StoryParams()
    assert (p.max_weight, p.coverage_weight, p.velocity_weight, p.half_life_minutes) == (0.5, 10.0, 0.0, 60.0)
    two = story_score([50.0, 30.0], ["a", "b"], [AT - timedelta(hours=1)] * 2, AT)
    assert two.score == pytest.approx((0.5 * 50 + 0.5 * 40 + 10) * 0.5, abs=0.05)


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
           row(4, "Pop star debuts new haircut at awards", "tmz", 5, 64)])
    top = top_stories(w, TopQuery(), NOW)
    assert [t["members"] for t in top] == [["1", "2", "3"], ["4"]]
    assert top[0]["coverage"] == 3 and top[0]["tier"] == "red" and top[1]["tier"] == "red"
    assert top[0]["first_seen"] == "2026-11-26T11:30:00Z" and top[0]["updated"] == "2026-11-26T11:50:00Z"


def test_url_of_the_representative_member_only_when_asked():
    from dataclasses import replace

    w = StoryWindow(6)
    w.add([replace(row(1, QUAKE[0], "reuters", 30, 70), url="https://a.example/1"),
           replace(row(2, QUAKE[1], "bbc", 20, 40), url="https://b.example/2"),
           row(3, "Pop star debuts new haircut at awards", "tmz", 5, 30)])
    plain = top_stories(w, TopQuery(), NOW)
    assert all("url" not in t for t in plain)  # GET /v1/top's shape is unchanged
    linked = top_stories(w, TopQuery(), NOW, with_url=True)
    assert [t["url"] for t in linked] == ["https://a.example/1", None]  # the best-scored member's link
    assert [{k: v for k, v in t.items() if k != "url"} for t in linked] == plain


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


# --- the live window clusters with the chosen method (CHOSEN + the model's IDF table) -------------------------

CORPUS = ["markets rally as oil prices fall", "oil prices rise on supply fears", "stocks fall in early trading",
          "central bank holds interest rates", "bank raises interest rates again", "government announces new budget",
          "football team wins the cup final", "team loses final in penalties", "actor wins award for best film",
          "storm hits coast leaving thousands without power", "government report today",
          "report says government today"] * 3
# Default StoryIndex: [0, 1, 2, 2] (no plural folding); the chosen method: [0, 0, 1, 1] ("nominees" = "nominee").
SMALL_STREAM = [("Oscar nominees named", "a"), ("Academy reveals Oscar nominee films", "b"),
                ("Government report today on budget", "c"), ("Report today: storm damage", "d")]


def _partition(labels):
    first: dict = {}
    return [first.setdefault(x, len(first)) for x in labels]


def test_the_live_window_clusters_as_the_chosen_method(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from iscore import feedback, window_store
    from iscore.stories import StoryIndex, chosen_options
    from iscore.window import LiveWindow

    vec = TfidfVectorizer(ngram_range=(1, 2)).fit(CORPUS)  # stands in for the model's TF-IDF part
    ids = [str(i) for i in range(len(SMALL_STREAM))]
    times = [AT - timedelta(minutes=30 - i) for i in range(len(SMALL_STREAM))]

    def offline(**options):
        ix = StoryIndex(window_hours=6, **options)
        for h, (text, src), t in zip(ids, SMALL_STREAM, times):
            ix.add(h, text, t, src)
        return _partition(ix.labels(ids))

    chosen, default = offline(**chosen_options(vec)), offline()
    assert chosen != default  # the stream tells the two apart, so the check below can fail

    engine = feedback.make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    window_store.migrate(engine)
    window_store.store_headlines(engine, [
        window_store.NewHeadline(text=text, source=src, published_at=t, i_score=50.0, model_version="v",
                                 client="t", id=h) for h, (text, src), t in zip(ids, SMALL_STREAM, times)])
    key = ["v1"]
    live = LiveWindow(lambda: engine, window_hours=6, refresh_seconds=0,
                      index_options=lambda: (key[0], chosen_options(vec)))

    def live_partition(w):
        key_of = {r.item_id: k for k, r in w.rows.items()}
        return _partition(w.index.labels(key_of[h] for h in ids))

    w = live.sync(NOW)
    assert live_partition(w) == chosen
    key[0] = "v2"  # a model reload: the window is rebuilt with the new options
    assert live.sync(NOW) is not w and live.window.options_key == "v2"
    assert live_partition(live.window) == chosen
    engine.dispose()


def test_chosen_options_hash_the_model_table_once_and_agree_with_the_raw_table():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from iscore.stories import CHOSEN, HashedIdf, StoryIndex, chosen_options, idf_from_vectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2)).fit(CORPUS)
    options = chosen_options(vec)
    assert isinstance(options["idf"], HashedIdf) and {k: options[k] for k in CHOSEN} == CHOSEN
    a, b = StoryIndex(**options), StoryIndex(**{**CHOSEN, "idf": idf_from_vectorizer(vec)})
    assert a._idf == b._idf and a._idf_unknown == b._idf_unknown
    assert "idf" not in chosen_options(None)
