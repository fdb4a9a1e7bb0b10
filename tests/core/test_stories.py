"""Story clustering (iscore/stories.py): joining, separating, the window, coverage, merging, B-cubed, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from iscore.stories import StoryIndex, bcubed, coverage, features, tokens

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

QUAKE = [
    ("q1", "Magnitude 7.8 earthquake strikes off the coast of Chile", "reuters"),
    ("q2", "Chile earthquake: magnitude 7.8 quake strikes off coast", "bbc"),
    ("q3", "Powerful magnitude 7.8 earthquake hits Chile coast, tsunami warning", "ap"),
    ("q4", "Earthquake of magnitude 7.8 strikes Chile coast  ...", "guardian"),
]
APPLE = [
    ("a1", "Apple unveils new iPhone with faster chip and better camera", "verge"),
    ("a2", "Apple's new iPhone gets faster chip, better camera", "wired"),
]
FED = [("f1", "Federal Reserve holds interest rates steady, signals patience", "ft"),
       ("f2", "Fed holds interest rates steady and signals patience on cuts", "wsj")]


def feed(index: StoryIndex, items, start: datetime = T0, step_minutes: float = 1.0) -> dict[str, int]:
    """Add (id, text, source) items one a minute from start; id -> story id returned by add."""
    return {h: index.add(h, text, start + timedelta(minutes=i * step_minutes), src)
            for i, (h, text, src) in enumerate(items)}


def interleave(*lists):
    """Round-robin the lists (a stream where stories overlap in time)."""
    out = []
    for i in range(max(map(len, lists))):
        out += [lst[i] for lst in lists if i < len(lst)]
    return out


@pytest.mark.parametrize("mode", ["centroid", "members"])
def test_near_duplicates_from_different_sources_join_one_story(mode):
    idx = StoryIndex(mode=mode)
    feed(idx, interleave(QUAKE, APPLE, FED))
    assert len({idx.story_id(h) for h, _, _ in QUAKE}) == 1
    assert len({idx.story_id(h) for h, _, _ in APPLE}) == 1
    assert len({idx.story_id(h) for h, _, _ in FED}) == 1


@pytest.mark.parametrize("mode", ["centroid", "members"])
def test_unrelated_headlines_start_their_own_stories(mode):
    idx = StoryIndex(mode=mode)
    feed(idx, interleave(QUAKE, APPLE, FED))
    ids = {idx.story_id("q1"), idx.story_id("a1"), idx.story_id("f1")}
    assert len(ids) == 3
    assert len(idx.open_stories()) == 3


def test_stories_close_after_the_window():
    idx = StoryIndex(window_hours=6)
    first = idx.add("q1", QUAKE[0][1], T0, "reuters")
    assert idx.add("q2", QUAKE[1][1], T0 + timedelta(hours=5), "bbc") == first  # within 6 h of the newest member
    later = idx.add("q3", QUAKE[2][1], T0 + timedelta(hours=5 + 6.5), "ap")  # 6.5 h after the newest member
    assert later != first
    assert idx.stories[first].closed
    assert [s.story_id for s in idx.open_stories()] == [later]


def test_window_counts_from_the_newest_member_not_the_first():
    idx = StoryIndex(window_hours=6)
    first = idx.add("q1", QUAKE[0][1], T0, "reuters")
    idx.add("q2", QUAKE[1][1], T0 + timedelta(hours=5), "bbc")
    assert idx.add("q3", QUAKE[2][1], T0 + timedelta(hours=10), "ap") == first


def test_coverage_counts_distinct_sources():
    idx = StoryIndex()
    items = [("q1", QUAKE[0][1], "reuters"), ("q2", QUAKE[1][1], "reuters"), ("q3", QUAKE[2][1], "bbc")]
    sid = feed(idx, items)["q1"]
    story = idx.stories[idx.story_id("q1")]
    assert story.story_id == sid and len(story.members) == 3
    assert coverage(story) == 2


def test_repeated_headline_id_is_not_counted_twice():
    idx = StoryIndex()
    sid = idx.add("q1", QUAKE[0][1], T0, "reuters")
    assert idx.add("q1", QUAKE[1][1], T0, "bbc") == sid
    assert idx.stories[sid].members == ["q1"] and coverage(idx.stories[sid]) == 1


def test_a_bridging_headline_merges_two_stories():
    a = ("x1", "Alpha beta gamma", "s1")
    b = ("x2", "Delta epsilon zeta", "s2")
    bridge = ("x3", "Alpha beta gamma delta epsilon zeta", "s3")
    merged = StoryIndex(merge_threshold=0.3)
    feed(merged, [a, b, bridge])
    assert merged.story_id("x1") == merged.story_id("x2") == merged.story_id("x3")
    assert coverage(merged.stories[merged.story_id("x1")]) == 3
    apart = StoryIndex(merge_threshold=None)
    feed(apart, [a, b, bridge])
    assert apart.story_id("x1") != apart.story_id("x2")


def test_tokens_and_features():
    assert tokens("The Fed's rates: up  ...") == ["fed", "rates"]
    f = features("Chile earthquake strikes")
    assert len(f) == 5 and sum(x < 0 for x in f) == 2  # three words, two bigrams
    assert features("Chile earthquake strikes") == f


def test_bad_mode_is_refused():
    with pytest.raises(ValueError):
        StoryIndex(mode="nearest")


def test_bcubed_hand_computed():
    # items 1-5; predicted {1,2,3},{4,5}; truth {1,2},{3,4,5}
    # precision: items 1,2: 2/3; item 3: 1/3; items 4,5: 2/2 -> (2/3+2/3+1/3+1+1)/5 = 11/15
    # recall:    items 1,2: 2/2; item 3: 1/3; items 4,5: 2/3 -> (1+1+1/3+2/3+2/3)/5 = 11/15
    p, r, f = bcubed([0, 0, 0, 1, 1], ["a", "a", "b", "b", "b"])
    assert p == pytest.approx(11 / 15) and r == pytest.approx(11 / 15) and f == pytest.approx(11 / 15)
    # everything in one cluster: precision (2/4 each) 0.5, recall 1, F1 2/3
    assert bcubed([7, 7, 7, 7], ["a", "a", "b", "b"]) == pytest.approx((0.5, 1.0, 2 / 3))
    # all singletons: precision 1, recall 0.5
    assert bcubed([1, 2, 3, 4], ["a", "a", "b", "b"]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert bcubed([5, 5, 9], ["x", "x", "y"]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        bcubed([1], [1, 2])


SCRIPT = """
import json, sys
from datetime import datetime, timedelta, timezone
sys.path.insert(0, {root!r})
from iscore.stories import StoryIndex
items = json.loads(sys.argv[1])
idx = StoryIndex()
t0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
print(json.dumps([idx.add(h, text, t0 + timedelta(minutes=i), src) for i, (h, text, src) in enumerate(items)]))
"""


def test_results_are_deterministic_across_runs_and_hash_seeds():
    items = interleave(QUAKE, APPLE, FED)
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", SCRIPT.format(root=str(ROOT)), json.dumps(items)],
                             capture_output=True, text=True, env=env, check=True).stdout
        outs.append(json.loads(out))
    here = StoryIndex()
    assert outs[0] == outs[1] == list(feed(here, items).values())
    assert features("Chile earthquake strikes") == [int(x) for x in json.loads(subprocess.run(
        [sys.executable, "-c", f"import sys, json; sys.path.insert(0, {str(ROOT)!r}); "
         "from iscore.stories import features; print(json.dumps(features('Chile earthquake strikes')))"],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "3"}, check=True).stdout)]


@pytest.mark.shared
@pytest.mark.slow
def test_real_uci_stream_beats_the_naive_baseline():
    sys.path.insert(0, str(ROOT))
    from bench.cluster_eval import load, run_baseline, run_index, sample_stories, stream

    df = load(ROOT.parent / "shared" / "data")
    s = stream(df, sample_stories(df, 100, seed=2), "shuffled", seed=2)
    truth = s["story"].tolist()
    ours = bcubed(run_index(s)[0], truth)
    base = bcubed(run_baseline(s)[0], truth)
    assert ours[2] > base[2] + 0.03, (ours, base)
    assert ours[0] > 0.6 and ours[1] > 0.5
