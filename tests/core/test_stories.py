"""Story clustering (iscore/stories.py): joining, separating, the window, coverage, merging, B-cubed, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import numpy as np

from iscore.features import StaticEmbedder
from iscore.stories import (CHOSEN, StoryIndex, bcubed, coverage, embedder_from_pipeline, features, idf_from_pipeline,
                            idf_from_vectorizer, names_from_pipeline, tokens)

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


def test_plural_folding():
    assert tokens("EBay rejects Icahn nominees; stocks fall", stem=True) == ["ebay", "reject", "icahn", "nominee",
                                                                           "stock", "fall"]
    assert tokens("Virus bus glass news", stem=True) == ["virus", "bus", "glass", "new"]  # a blunt rule
    assert features("Icahn nominees", stem=True) == features("Icahn nominee", stem=True)
    assert features("Icahn nominees") != features("Icahn nominee")


def test_an_offline_idf_table_replaces_the_online_one():
    # With online IDF every word is equally rare in a fresh index; the table says "fed" is common, "taper" rare.
    table = {"fed": 1.0, "taper": 9.0, "weather": 9.0, "fed taper": 9.0}
    idx = StoryIndex(idf=table)
    vec = idx.vector(features("Fed taper weather"))
    words = {w: vec[f] for w, f in zip(["fed", "taper", "weather"], features("Fed taper weather"))}
    assert words["taper"] > 5 * words["fed"]
    # an unknown term weighs as much as the rarest known one
    unknown = idx.vector(features("zyzzyva taper"))
    assert len(set(round(w, 9) for w in unknown.values())) == 1
    # the table is used as given: adding headlines does not change a vector
    before = idx.vector(features("Fed taper"))
    feed(idx, [("x1", "Fed taper", "a"), ("x2", "Fed taper again", "b")])
    assert idx.vector(features("Fed taper")) == before


def test_idf_table_and_embedder_from_a_fitted_pipeline():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, Pipeline

    emb = StaticEmbedder(vocab={"quake": 0, "earthquake": 1}, vectors=np.eye(2, dtype=np.float16))
    tfidf = TfidfVectorizer(ngram_range=(1, 2))
    pipe = Pipeline([("u", FeatureUnion([("w", Pipeline([("t", tfidf)])), ("e", emb)]))])
    pipe.fit(["chile quake strikes", "quake hits chile", "apple unveils phone"])
    table = idf_from_pipeline(pipe)
    assert table == idf_from_vectorizer(tfidf) and table["quake"] < table["apple"] and "quake hits" in table
    assert embedder_from_pipeline(pipe) is emb
    assert idf_from_pipeline(Pipeline([("e", emb)])) is None and embedder_from_pipeline(tfidf) is None


def test_remerge_folds_two_fragments_of_one_story():
    a = ("x1", "Alpha beta gamma", "s1")
    b = ("x2", "Alpha beta delta", "s2")  # cosine 0.6 with x1: under the join threshold 0.9, over re-merge 0.3
    other = ("x3", "Kappa lambda", "s3")
    kept = StoryIndex(threshold=0.9, merge_threshold=None)
    feed(kept, [a, b, other])
    assert len({kept.story_id(h) for h in ("x1", "x2", "x3")}) == 3
    merged = StoryIndex(threshold=0.9, merge_threshold=None, remerge_threshold=0.3, remerge_every=3)
    feed(merged, [a, b, other])
    assert merged.story_id("x1") == merged.story_id("x2") != merged.story_id("x3")
    assert len(merged.open_stories()) == 2
    story = merged.stories[merged.story_id("x1")]
    assert sorted(story.members) == ["x1", "x2"] and coverage(story) == 2
    assert merged.labels(["x1", "x2", "x3"]) == [merged.story_id(h) for h in ("x1", "x2", "x3")]
    gone = ({0, 1} - {story.story_id}).pop()
    assert gone not in merged.stories and story in merged.open_stories()


def test_remerge_leaves_stories_past_the_window_alone():
    idx = StoryIndex(threshold=0.9, merge_threshold=None, remerge_threshold=0.3, remerge_every=1, window_hours=1)
    first = idx.add("x1", "Alpha beta gamma", T0, "s1")
    second = idx.add("x2", "Alpha beta delta", T0 + timedelta(hours=2), "s2")
    assert first != second and idx.stories[first].closed and idx.story_id("x1") == first


def _toy_embedder() -> StaticEmbedder:
    """Word vectors where car ~ automobile and crash ~ collision (and nothing else is close)."""
    vocab = {"car": 0, "automobile": 1, "crash": 2, "collision": 3, "kills": 4, "three": 5, "stocks": 6}
    v = np.zeros((7, 5), dtype=np.float32)
    v[0] = v[1] = [1, 0, 0, 0, 0]
    v[2] = v[3] = [0, 1, 0, 0, 0]
    v[4] = [0, 0, 1, 0, 0]
    v[5] = [0, 0, 0, 1, 0]
    v[6] = [0, 0, 0, 0, 1]
    return StaticEmbedder(vocab=vocab, vectors=v.astype(np.float16))


def test_word_vectors_join_paraphrases_that_share_few_words():
    items = [("c1", "Car crash kills three", "a"), ("c2", "Automobile collision kills three", "b")]
    plain = StoryIndex(threshold=0.5, merge_threshold=None)
    feed(plain, items)
    assert plain.story_id("c1") != plain.story_id("c2")  # only 'kills', 'three' and one bigram shared
    with_vectors = StoryIndex(threshold=0.5, merge_threshold=None, vectors=_toy_embedder(), dense_weight=0.5)
    feed(with_vectors, items)
    assert with_vectors.story_id("c1") == with_vectors.story_id("c2")
    # a headline sharing no word with any story is never a candidate, however close its vectors
    assert with_vectors.add("c3", "Car crash", T0 + timedelta(minutes=9), "c") == with_vectors.story_id("c1")
    assert with_vectors.add("c4", "Stocks", T0 + timedelta(minutes=10), "c") != with_vectors.story_id("c1")
    assert with_vectors.dense_vector("unknown words only") is None
    # vectors are ignored in members mode
    assert StoryIndex(mode="members", vectors=_toy_embedder(), dense_weight=0.5).dense_weight == 0.0


def test_word_vector_rows_survive_the_index_rebuild(monkeypatch):
    import iscore.stories as stories

    monkeypatch.setattr(stories, "REBUILD_CLOSED", 1)
    idx = StoryIndex(threshold=0.5, merge_threshold=None, vectors=_toy_embedder(), dense_weight=0.5, window_hours=1)
    idx.add("c0", "Stocks", T0, "a")
    first = idx.add("c1", "Car crash kills three", T0 + timedelta(hours=3), "a")  # closes c0's story, rebuilds
    assert idx.add("c2", "Automobile collision kills three", T0 + timedelta(hours=3, minutes=1), "b") == first


def _synthetic_stream(n_stories: int = 40, per_story: int = 12, seed: int = 5):
    """Interleaved headlines of stories with their own key words plus shared filler words (truth known)."""
    import random

    rng = random.Random(seed)
    filler = ["report", "today", "latest", "officials", "market", "week", "plan", "world", "people", "deal"]
    items, truth = [], []
    for k in range(n_stories):
        # letters only: a word with a digit is a number to the template check, which would separate them alone
        keys = [f"key{chr(97 + k % 26)}{chr(97 + k // 26)}w{chr(97 + j)}" for j in range(5)]
        for m in range(per_story):
            words = rng.sample(keys, 3) + rng.sample(filler, 3)
            rng.shuffle(words)
            items.append((f"s{k}m{m}", " ".join(words), f"src{m % 7}"))
            truth.append(k)
    order = list(range(len(items)))
    rng.shuffle(order)  # every story open at once
    return [items[i] for i in order], [truth[i] for i in order]


def test_many_open_stories_are_recovered():
    items, truth = _synthetic_stream()
    # a table as a big corpus would give it: the filler words common, anything else rare (unknown = the rarest)
    table = {w: 1.5 for w in ["report", "today", "latest", "officials", "market", "week", "plan", "world", "people",
                              "deal"]}
    table["somerareword"] = 8.0
    idx = StoryIndex(idf=table, **CHOSEN)
    feed(idx, items, step_minutes=0.1)
    p, r, _ = bcubed(idx.labels(h for h, _, _ in items), truth)
    assert p > 0.9 and r > 0.9, (p, r)
    # online IDF starts flat (a cold index cannot yet tell filler from key words), so early stories mix
    # (less at the chosen join of 0.16 than at 0.12, where the gap was over 0.1)
    cold = StoryIndex(**CHOSEN)
    feed(cold, items, step_minutes=0.1)
    p_cold, _, _ = bcubed(cold.labels(h for h, _, _ in items), truth)
    assert p_cold < p - 0.02


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
from iscore.stories import CHOSEN, StoryIndex
items = json.loads(sys.argv[1])
idx = StoryIndex({kw})
t0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
print(json.dumps([idx.add(h, text, t0 + timedelta(minutes=i), src) for i, (h, text, src) in enumerate(items)]))
"""


TABLE = {"earthquake": 6.0, "chile": 5.0, "magnitude": 7.0, "apple": 4.0, "iphone": 6.5, "fed": 3.0}


@pytest.mark.parametrize("kw", ["", f"idf={TABLE!r}, **{{**CHOSEN, 'remerge_every': 2}}"])
def test_results_are_deterministic_across_runs_and_hash_seeds(kw):
    items = interleave(QUAKE, APPLE, FED)
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", SCRIPT.format(root=str(ROOT), kw=kw), json.dumps(items)],
                             capture_output=True, text=True, env=env, check=True).stdout
        outs.append(json.loads(out))
    here = StoryIndex(**({} if not kw else dict(idf=TABLE, **{**CHOSEN, "remerge_every": 2})))
    assert outs[0] == outs[1] == list(feed(here, items).values())
    assert features("Chile earthquake strikes") == [int(x) for x in json.loads(subprocess.run(
        [sys.executable, "-c", f"import sys, json; sys.path.insert(0, {str(ROOT)!r}); "
         "from iscore.stories import features; print(json.dumps(features('Chile earthquake strikes')))"],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "3"}, check=True).stdout)]


@pytest.mark.shared
@pytest.mark.slow
def test_real_uci_stream_beats_the_naive_baseline():
    sys.path.insert(0, str(ROOT))
    from bench.cluster_eval import load, model_parts, run_baseline, run_index, sample_stories, stream

    df = load(ROOT.parent / "shared" / "data")
    s = stream(df, sample_stories(df, 100, seed=2), "shuffled", seed=2)
    truth = s["story"].tolist()
    base = bcubed(run_baseline(s)[0], truth)
    v1 = bcubed(run_index(s)[0], truth)
    assert v1[2] > base[2] + 0.03, (v1, base)
    assert v1[0] > 0.6 and v1[1] > 0.5
    if not (ROOT / "models" / "CURRENT").is_file():
        pytest.skip("no shipped model (models/CURRENT): the chosen method needs its IDF table")
    _, _, chosen = model_parts(ROOT / "models")
    ours = bcubed(run_index(s, **chosen)[0], truth)
    assert ours[2] > v1[2], (ours, v1)


# --- template checks: numbers (chosen) and names (measured, off) that differ --------------------------------

BACKGROUND = ["Apple unveils new phone", "Storm hits coast", "Team wins final", "Minister resigns over scandal",
              "Oil prices slide"]


def _cluster(texts, **kw):
    ix = StoryIndex(**kw)
    for i, b in enumerate(BACKGROUND):
        ix.add(f"b{i}", b, 0, "x")
    return [ix.add(str(i), t, 60 * (i + 1), f"s{i}") for i, t in enumerate(texts)]


def test_differing_numbers_keep_near_template_headlines_apart():
    jackpots = ["Powerball jackpot rises to 400 million", "Lottery jackpot at 90 million after no winner",
                "Powerball: 400 million jackpot winner in Ohio"]
    a, b, c = _cluster(jackpots)
    assert a == b == c  # without the check the 90-million jackpot joins the 400-million one
    a, b, c = _cluster(jackpots, number_penalty=0.5)
    assert a == c and b != a  # a shared number still joins
    assert CHOSEN["number_penalty"] == 0.5
    assert _cluster(["Jackpot rises", "Lottery jackpot rises again"], number_penalty=0.0) == [5, 5]  # no numbers


def test_differing_names_split_template_look_alikes_only_when_asked():
    quakes = ["Earthquake kills 300 in Chile", "Earthquake kills 300 in Turkey",
              "Chile earthquake: 300 killed in central region"]
    a, b, c = _cluster(quakes)
    assert a == b == c
    a, b, c = _cluster(quakes, name_penalty=0.0)  # "Turkey" is a name in a sentence-case headline
    assert a == c and b != a
    # a lexicon names words whatever their case (Title Case headlines say nothing by their capitals)
    title = ["Earthquake Kills 300 In Chile", "Earthquake Kills 300 In Peru"]
    assert len(set(_cluster(title, name_penalty=0.0))) == 1
    assert len(set(_cluster(title, name_penalty=0.0, names={"chile", "peru"}))) == 2
    assert "name_penalty" not in CHOSEN


def test_names_from_pipeline_finds_the_models_cleaner():
    from iscore.features import HeadlineCleaner

    cleaner = HeadlineCleaner().fit(["Obama visits Chile on Tuesday"] * 3 + ["a quiet day in the markets today"])

    class Picker:  # stands in for the model's ColumnPicker holding a fitted cleaner
        cleaner_ = cleaner

    class Pipe:
        steps = [("pick", Picker())]

    names = names_from_pipeline(Pipe())
    assert {"chile", "tuesday"} <= names and "visits" not in names
    assert names_from_pipeline(object()) is None
