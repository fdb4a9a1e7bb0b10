"""HeadlineCleaner (#14 item 1): names as one class, presentation dropped, all learned from the corpus."""

from __future__ import annotations

import math
import pickle
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from iscore.features import (CONTENT_STAT_NAMES, NAME_TOKEN, STAT_NAMES, ColumnPicker, HeadlineCleaner,
                             HeadlineStats, StaticEmbedder, content_stats, largest_quantity)
from iscore import features
from iscore.model import ModelConfig, build_pipeline, feature_parts
from iscore.scoring import explain, score

COMMON = ["storm", "floods", "town", "council", "budget", "rises", "falls", "school", "opens", "closes",
          "visits", "after", "talks", "new", "plan", "river", "bridge", "market", "prices", "hospital"]
NAMES = [("Zorblax", "Quenby"), ("Mira", "Tallow"), ("Vesk",), ("Orrin", "Pell")]


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Sentence-case headlines where the names are capitalised and the rest is not, plus kicker-led ones."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = list(rng.choice(COMMON, size=5))
        name = " ".join(NAMES[i % len(NAMES)])
        words.insert(int(rng.integers(1, 5)), name)
        text = " ".join(words)
        text = text[0].upper() + text[1:]
        out.append(("Breaking: " + text) if i % 5 == 0 else text)
    return out


@pytest.fixture(scope="module")
def cleaner() -> HeadlineCleaner:
    return HeadlineCleaner(min_kicker=20).fit(corpus())


def test_learns_names_common_words_and_kickers_from_the_corpus(cleaner):
    assert {"zorblax", "quenby", "vesk"} <= cleaner.proper_
    assert {"storm", "budget", "hospital"} <= cleaner.common_ and not ({"storm", "budget"} & cleaner.proper_)
    assert cleaner.kickers_ == frozenset({"breaking"})
    # A corpus without them learns none: nothing is a built-in list.
    plain = HeadlineCleaner().fit(["the storm hits the town today", "council opens new bridge over river"])
    assert not plain.proper_ and not plain.kickers_


def test_famous_unknown_and_differently_cased_names_read_the_same(cleaner):
    known = cleaner.clean("Zorblax Quenby visits hospital after storm")
    assert known == f"{NAME_TOKEN} visits hospital after storm"
    assert cleaner.clean("Peter Lindqvist visits hospital after storm") == known  # never seen: capitalised
    assert cleaner.clean("zorblax quenby visits hospital after storm") == known  # learned name, lower case
    assert cleaner.clean("Vesk visits hospital after storm") == known  # one word or two: one name
    assert cleaner.clean("Storm floods town") == "storm floods town"  # a capitalised first word is not a name


def test_a_capitalised_common_word_after_a_name_continues_it_in_sentence_case_only(cleaner):
    # "Bridge" is a common word here, as "Pen" is in English: after a name, in sentence case, it is the name's.
    assert cleaner.clean("Orrin Bridge visits town after talks") == cleaner.clean("Vesk visits town after talks")
    assert cleaner.clean("Orrin Bridge visits town after talks").split()[0] == NAME_TOKEN
    # Not after a gap (a comma ends the run), and not in Title Case, where every word is capitalised.
    assert "bridge" in cleaner.clean("Vesk, Bridge opens after talks").split()
    assert cleaner.clean("Vesk Visits Town After Talks") == f"{NAME_TOKEN} visits town after talks"
    assert cleaner.clean("Vesk Bridge Opens") == f"{NAME_TOKEN} bridge opens"
    # A cleaner pickled before the rule existed (no join_runs of its own) cleans as it did then.
    old = pickle.loads(pickle.dumps(cleaner))
    del old.__dict__["join_runs"]
    assert old.clean("Orrin Bridge visits town after talks") == f"{NAME_TOKEN} bridge visits town after talks"


def test_presentation_is_dropped(cleaner):
    base = cleaner.clean("Storm floods town after talks")
    for variant in ("BREAKING: Storm floods town after talks", "Storm floods town after talks!",
                    'Storm floods "town" after talks', "STORM FLOODS TOWN AFTER TALKS", "storm floods town after talks",
                    "Storm  floods\ttown after talks "):
        assert cleaner.clean(variant) == base, variant
    # A colon that is not a learned kicker stays content; an apostrophe inside a word stays.
    assert cleaner.clean("Budget: council closes school") == "budget: council closes school"
    assert "it's" in cleaner.clean("Storm floods town and it's not over")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(COMMON + ["Zorblax", "Quenby", "Vesk"]), min_size=1, max_size=12),
       st.sampled_from(["", "!", "!!"]), st.booleans())
def test_clean_ignores_case_punctuation_and_kickers_of_known_words(cleaner, words, bang, kicker):
    text = " ".join(words)
    variant = ("BREAKING: " if kicker else "") + text.upper() + bang
    assert cleaner.clean(variant) == cleaner.clean(text) == cleaner.clean(text.lower())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_clean_never_fails_and_is_stable(cleaner, text):
    once = cleaner.clean(text)
    assert once == once.lower()
    assert cleaner.clean(once) == once  # cleaning cleaned text changes nothing


@pytest.mark.parametrize("text, expected", [
    ("Earthquake toll climbs to 2,000", 2000.0), ("Fraud of $3 billion uncovered", 3e9), ("Two fishermen drown", 2.0),
    ("Hundreds flee fires", 200.0), ("House prices dip 0.2 percent", 0.2), ("Storm hits town", 0.0),
    ("Floods of 2019 cost 40m", 40e6), ("In 2019 the river rose", 0.0), ("25,000 staff laid off", 25000.0),
    # A multiplier belongs to its number: "0.5 million" is half a million, not "a million".
    ("0.5 million people", 5e5), ("0.5 hundred and one", 50.0), ("Half a million", 1e6),
])
def test_largest_quantity(text, expected):
    assert largest_quantity(text) == pytest.approx(expected)


@given(st.integers(min_value=0, max_value=10**12))
def test_largest_quantity_reads_any_grouped_integer(n):
    assert largest_quantity(f"toll rises to {n:,} people") == pytest.approx(float(n))


def test_content_stats_grow_with_quantity_and_count_names():
    few, many = content_stats("quake kills 3"), content_stats("quake kills 3,000")
    q = CONTENT_STAT_NAMES.index("quantity")
    assert many[q] > few[q] > 0
    assert content_stats(f"{NAME_TOKEN} meets {NAME_TOKEN}")[CONTENT_STAT_NAMES.index("names")] == 2.0


def _fit(clean_text: bool):
    texts = corpus(300, seed=3)
    y = np.asarray([float(len(t) % 7) for t in texts])
    p = build_pipeline(ModelConfig(clean_text=clean_text, min_df=1, use_source=False, alpha=1.0))
    return p.fit([{"text": t} for t in texts], y)


def test_pipeline_parts_share_the_cleaning_and_old_recipe_keeps_raw_text():
    new, old = _fit(True), _fit(False)
    stats_new = feature_parts(new)["stats"].steps[0][1]
    assert tuple(stats_new.get_feature_names_out()) == CONTENT_STAT_NAMES
    assert tuple(feature_parts(old)["stats"].steps[0][1].get_feature_names_out()) == STAT_NAMES
    a, b = "Zorblax Quenby visits hospital after storm", "Peter Lindqvist visits hospital after storm!"
    assert score(new, [a])[0] == pytest.approx(score(new, [b])[0], abs=1e-9)
    assert score(old, [a])[0] != pytest.approx(score(old, [b])[0], abs=1e-9)
    # Explanations name the class, never the placeholder token.
    words = [e["feature"] for side in explain(new, [a], top=50)[0].values() for e in side]
    assert NAME_TOKEN not in " ".join(words)


def test_embedder_reads_cleaned_tokens_and_unpickled_old_parts_still_work():
    cleaner = HeadlineCleaner(min_kicker=20).fit(corpus())
    emb = StaticEmbedder(vocab={"storm": 0, "zorblax": 1}, vectors=np.eye(2, dtype=np.float16), cleaner=cleaner)
    emb.fit(["x"])
    assert emb.tokens("Zorblax storm") == [("storm", 0)]  # the name has no vector: it carries no meaning
    old = ColumnPicker("text")
    del old.__dict__["cleaner"]  # as a version pickled before the cleaner existed
    restored = pickle.loads(pickle.dumps(old)).fit(["x"])
    assert restored.one("Zorblax  storm") == "Zorblax storm"
    assert HeadlineStats().fit(None).row("Storm!") == HeadlineStats().fit(None).transform(["Storm!"])[0].tolist()


# The reference: the one-regex form largest_quantity had before number words were looked up word by word.
_REFERENCE = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?:\s*(hundred|thousand|million|billion|trillion|bn|mn|tn|k|m)\b)?"
    r"|\b(" + "|".join(features._NUMBER_WORDS) + r")\b", re.IGNORECASE)


def _reference_quantity(text: str) -> float:
    best = 0.0
    for m in _REFERENCE.finditer(text):
        digits, mult, word = m.group(1), m.group(2), m.group(3)
        if word:
            value = float(features._NUMBER_WORDS[word.lower()])
        elif "," not in digits and "." not in digits and len(digits) == 4 and 1900 <= int(digits) <= 2099 and not mult:
            continue
        else:
            value = float(digits.replace(",", "")) * (features._MULTIPLIERS[mult.lower()] if mult else 1.0)
        best = max(best, value)
    return best


_PIECES = st.sampled_from(["one", "Two", "HUNDREDS", "hundred", "million", "bn", "k", "m", "dozen", "scores", "0.5",
                           "3", "2,000", "1999", "2024", "12.5", "x", "-", ",", ".", "'", "$", "é", "_", "2one"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_PIECES, st.sampled_from(["", " ", "  ", "-", "/"])), max_size=10))
def test_largest_quantity_equals_the_one_regex_reference(parts):
    text = "".join(p + sep for p, sep in parts)
    assert largest_quantity(text) == _reference_quantity(text)


def _reference_clean(cleaner: HeadlineCleaner, text: str) -> str:
    """HeadlineCleaner.clean as it was before it split the text once (a word-by-word rebuild, name runs joined)."""
    text = features.normalize_text(text)
    m = features._KICKER.match(text)
    if m and m.group(1).lower() in cleaner.kickers_:
        text = text[m.end():]
    out: list[str] = []
    pos = 0
    named = False
    matches = list(features._CASED_WORD.finditer(text))
    sentence_case = (cleaner.join_runs and sum(1 for m in matches if m.group(0)[0].isupper())
                     <= features.SENTENCE_CASE_SHARE * len(matches))
    for m in matches:
        w = m.group(0)
        key = w.lower()
        gap = text[pos:m.start()]
        is_name = (key in cleaner.proper_ or (w[0].isupper() and key not in cleaner.common_)
                   or (named and sentence_case and w[0].isupper() and not gap.strip()))
        if is_name:
            if not (named and not gap.strip()):
                out.append(gap)
                out.append(NAME_TOKEN)
            if key in cleaner.prominent_:
                out[-1] = features.PROMINENT_TOKEN
        else:
            out.append(gap)
            out.append(key)
        named = is_name
        pos = m.end()
    out.append(text[pos:])
    return features.normalize_text(features._PRESENTATION.sub("", "".join(out))).lower()


@pytest.fixture(scope="module")
def prominent_cleaner() -> HeadlineCleaner:
    return HeadlineCleaner(min_kicker=20, min_prominent=50).fit(corpus())


# Pieces that exercise every branch: known, unknown and prominent names, kickers, apostrophes inside and
# around words, quotes, bars, colons, digits glued to letters, non-ASCII letters and odd white space.
_CLEAN_PIECES = st.one_of(
    st.sampled_from(COMMON + ["Zorblax", "Quenby", "Vesk", "Mira", "ZORBLAX", "Lindqvist", "iPhone", "o'clock",
                              "Bridge", "Storm", "Market", "STORM",
                              "Zorblax's", "Quenby\u2019s", "Breaking:", "BREAKING |", "breaking:", "Watch |", ":", "|",
                              "'", "\u2018", "\u2019", '"', "\u201c", "\u201d", "!", "?", "3", "x9Y", "\u00c9lan", "\u00e9",
                              "-", ",", "_", "\u00a0", "\t", "\n", "  "]),
    st.text(max_size=5))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_CLEAN_PIECES, st.sampled_from(["", " ", "  ", "-", "'", ": "])), max_size=12))
def test_clean_equals_the_word_by_word_reference(prominent_cleaner, parts):
    text = "".join(p + sep for p, sep in parts)
    assert prominent_cleaner.prominent_  # the prominent branch is reachable
    assert prominent_cleaner.clean(text) == _reference_clean(prominent_cleaner, text)


def test_only_y_o_u_match_you_ignoring_case():
    # content_stats looks for "you" in the lower-cased text before it runs _SECOND_PERSON (IGNORECASE): exact
    # only if no other character matches y, o or u ignoring case. Every code point, checked.
    found = {chr(c) for c in range(0x110000) if re.fullmatch("(?i)[you]", chr(c))}
    assert found == set("youYOU")
    assert all(ch.lower() in "you" for ch in found)


def _reference_content_stats(clean: str) -> list[float]:
    """content_stats before its substring tests: every regex run on every text."""
    words = clean.split()
    return [math.log1p(len(clean)), float(min(len(words), 40)), 1.0 if features._NUMBER.search(clean) else 0.0,
            1.0 if features._LEAD_NUMBER.match(clean) else 0.0, 1.0 if "?" in clean else 0.0,
            1.0 if features._SECOND_PERSON.search(clean) else 0.0,
            math.log10(1.0 + min(_reference_quantity(clean), 1e13)),
            float(len(features._NAME_TOKENS.findall(clean)))]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.sampled_from(["you", "YOUR", "You're", "yours", "youth", "xname", "xnames",
                                                    "xprominent", "Xname", "?", "x"]), st.text(max_size=3)),
                max_size=10).map(" ".join))
def test_content_stats_equal_the_every_regex_reference(text):
    assert content_stats(text) == _reference_content_stats(text)
