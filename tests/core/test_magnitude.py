"""The magnitude prior (#14 item 4): the size and harm axes, the toll, the statistics' layout and the blend's fixed weights."""

from __future__ import annotations

import json
import math
import pickle
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iscore.compiled import compile_pipeline
from iscore.features import (COMMERCE_WORDS, CONTENT_STAT_NAMES, SIZE_STAT_NAMES, HARM_WIDTH, HARM_WORDS, MAGNITUDE_STAT_NAMES,
                             QUANTITY_CAP, QUANTITY_CENTRE, SCALE_LARGE, SCALE_SMALL, HeadlineCleaner, HeadlineStats,
                             StaticEmbedder, content_stats, harm_of, harm_quantity, scale_of, scale_table)
from iscore.model import EditorialBlendRegressor, ModelConfig, build_pipeline, feature_union
from iscore.scoring import contributions, score
from training.behaviour import DEV_SUITE_PATH, ROBUST_DEV_SUITE_PATH, ROBUST_SUITE_PATH, SUITE_PATH, load_suite

WORD = re.compile(r"[a-z]+")


def _suite_words(path) -> set[str]:
    return set(WORD.findall(json.dumps(load_suite(path)).lower()))


@pytest.mark.parametrize("path", [ROBUST_SUITE_PATH, ROBUST_DEV_SUITE_PATH, SUITE_PATH, DEV_SUITE_PATH])
def test_axis_seeds_are_none_of_the_suites_words(path):
    # The axes may reach a suite's words only through the word vectors, never by listing them.
    seeds = set(SCALE_LARGE) | set(SCALE_SMALL) | set(HARM_WORDS) | set(COMMERCE_WORDS)
    assert not seeds & _suite_words(path)
    assert not (set(SCALE_LARGE) | set(SCALE_SMALL)) & (set(HARM_WORDS) | set(COMMERCE_WORDS))


def _vectors(words: list[str], seed: int = 0) -> tuple[dict[str, int], np.ndarray]:
    """Toy vectors: seeds of size along +e0, of smallness along -e0, of harm along +e1 (with the toy
    disasters), of commerce along -e1 (with the toy bank); other words random."""
    rng = np.random.default_rng(seed)
    vocab = {w: i for i, w in enumerate(words)}
    v = rng.normal(size=(len(words), 8))
    for w, i in vocab.items():
        if w in SCALE_LARGE:
            v[i, 0] = 5.0
        elif w in SCALE_SMALL:
            v[i, 0] = -5.0
        if w in HARM_WORDS or w in DISASTERS:
            v[i, 1] = 5.0
        elif w in COMMERCE_WORDS or w == "bank":
            v[i, 1] = -5.0
    return vocab, v.astype(np.float16)


DISASTERS = ("storm", "flood", "fire", "crash")


def test_scale_table_orders_seed_directions():
    vocab, v = _vectors(["immense", "huge", "trivial", "slight", "nationwide", "minor", "cat"])
    v = v.astype(np.float64)
    v[vocab["nationwide"]] = v[vocab["immense"]] + 0.1  # near the size seeds
    v[vocab["minor"]] = v[vocab["trivial"]] + 0.1  # near the smallness seeds
    table = scale_table(vocab, v)
    assert set(table) == set(vocab)
    assert table["nationwide"] > table["cat"] > table["minor"]
    assert min(table["immense"], table["huge"]) > 0 > max(table["trivial"], table["slight"])


def test_scale_table_is_empty_without_seeds_on_both_sides():
    vocab, v = _vectors(["immense", "cat", "dog"])
    assert scale_table(vocab, v) == {}


@given(st.lists(st.sampled_from(["massive", "tiny", "cat", "XNAME", "2,000", "flood"]), max_size=10))
def test_scale_of_is_the_mean_of_known_words(words):
    table = {"massive": 1.0, "tiny": -1.0, "cat": 0.25}
    text = " ".join(words).lower()
    known = [table[w] for w in words if w in table]
    assert scale_of(text, table) == pytest.approx(sum(known) / len(known) if known else 0.0)


def _texts() -> list[str]:
    base = ["Storm kills {n} in coastal towns", "Bank fined {n} dollars", "Ten easy recipes for dinner",
            "A massive flood hits the city", "A tiny flood in one street", "Star wears dress to party"]
    return [b.format(n=n) for b in base for n in (1, 30, "2,000", "hundreds")]


HARM = {"storm": 0.5, "kills": 0.4, "flood": 0.3, "bank": -0.4, "dollars": -0.5, "recipes": 0.0}


def test_stats_with_the_axes_put_quantity_toll_and_scale_last():
    texts = _texts()
    plain = HeadlineStats(HeadlineCleaner()).fit(texts)
    sized = HeadlineStats(HeadlineCleaner(), scale={"massive": 1.0, "tiny": -1.0}, harm=HARM).fit(texts)
    assert plain.names_out() == CONTENT_STAT_NAMES
    assert sized.names_out() == MAGNITUDE_STAT_NAMES
    assert MAGNITUDE_STAT_NAMES[-3:] == ("quantity", "harm_quantity", "scale")
    for t in texts:
        a, b = plain.row(t), sized.row(t)
        assert sorted(a) == sorted(b[:-2])  # the same statistics, reordered, plus the toll and the size axis
        assert b[-3] == a[CONTENT_STAT_NAMES.index("quantity")]
        assert len(sized.labels(t)) == len(MAGNITUDE_STAT_NAMES)
    assert sized.row("A massive flood hits the city")[-1] > sized.row("A tiny flood in one street")[-1]
    # The gate is centred on the training headlines' median harm.
    cleaner = sized.cleaner_
    assert sized.harm_centre_ == pytest.approx(float(np.median([harm_of(cleaner.clean(t), HARM) for t in texts])))
    # The same count is a toll where the headline speaks of harm, nearly nothing where it speaks of money.
    assert sized.row("Storm kills 2,000 in coastal towns")[-2] > 0.5
    assert abs(sized.row("Bank fined 2,000 dollars")[-2]) < 0.05


@pytest.mark.parametrize("scale, harm, cleaner", [({"massive": 1.0}, None, HeadlineCleaner()),
                                                  (None, HARM, HeadlineCleaner()),
                                                  ({"massive": 1.0}, HARM, None)])
def test_the_axes_need_each_other_and_cleaned_text(scale, harm, cleaner):
    with pytest.raises(ValueError, match="both tables|cleaner"):
        HeadlineStats(cleaner, scale=scale, harm=harm).fit(["a headline"])


def test_harm_of_is_the_most_harmful_known_word():
    assert harm_of("storm kills 3 near the bank", HARM) == 0.5
    assert harm_of("bank fined dollars", HARM) == -0.4
    assert harm_of("zyx qwv", HARM) == 0.0


@given(q=st.floats(0.0, 14.0), h=st.floats(-1.0, 1.0), centre=st.floats(-0.5, 0.5))
def test_toll_is_centred_capped_and_gated(q, h, centre):
    toll = harm_quantity(q, h, centre)
    if q == 0.0:
        assert toll == 0.0  # no quantity, no toll
        return
    gate = 1.0 / (1.0 + math.exp(-max(min((h - centre) / HARM_WIDTH, 50.0), -50.0)))
    assert toll == pytest.approx(gate * (min(q, QUANTITY_CAP) - QUANTITY_CENTRE))
    # More harm never shrinks a large toll; a larger count never lowers it; beyond the cap more is not more.
    assert harm_quantity(max(q, QUANTITY_CENTRE + 0.5), h + 0.1, centre) >= harm_quantity(max(q, QUANTITY_CENTRE + 0.5), h, centre)
    assert harm_quantity(q + 1.0, h, centre) >= toll
    assert harm_quantity(QUANTITY_CAP + 3.0, h, centre) == harm_quantity(QUANTITY_CAP, h, centre)


def test_prior_adds_fixed_weights_to_the_last_columns_only():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 6))
    y = np.column_stack([X[:, 0] + rng.normal(size=300), np.where(X[:, 1] > 0, 100.0, 0.0)])
    plain = EditorialBlendRegressor(alpha=1.0, desk_alpha=1.0).fit(X, y)
    prior = EditorialBlendRegressor(alpha=1.0, desk_alpha=1.0, prior=(1.0, 0.5)).fit(X, y)
    spread = float(np.std(X @ plain.coef_))
    expected = plain.coef_.copy()
    expected[-2:] += np.asarray([1.0, 0.5]) * spread / np.std(X[:, -2:], axis=0)
    assert np.allclose(prior.coef_, expected)
    # The engagement blend (the dial's popularity end) carries no prior.
    assert np.allclose(prior.blend_terms("engagement")[0], plain.blend_terms("engagement")[0])


def test_prior_skips_a_constant_column():
    rng = np.random.default_rng(4)
    X = np.column_stack([rng.normal(size=(200, 3)), np.zeros(200)])
    y = np.column_stack([X[:, 0], np.where(X[:, 1] > 0, 100.0, 0.0)])
    a = EditorialBlendRegressor(prior=(0.0, 1.0)).fit(X, y)
    b = EditorialBlendRegressor().fit(X, y)
    assert np.allclose(a.coef_, b.coef_)


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Toy headlines whose engagement label ignores size entirely."""
    rng = np.random.default_rng(seed)
    subjects = ["storm", "flood", "fire", "crash", "recipes", "dress", "party", "bank"]
    texts, desk = [], []
    for _ in range(n):
        s = str(rng.choice(subjects))
        amount = str(rng.choice(["1", "3", "40", "2,000", "immense", "trivial"]))
        texts.append(f"{s} {amount} hits the city {rng.choice(['today', 'again', 'now'])}")
        desk.append(100.0 if s in ("storm", "flood", "fire", "crash", "bank") else 0.0)
    return pd.DataFrame({"text": texts, "source": "", "y": rng.normal(size=n), "desk": desk})


def _embedder() -> StaticEmbedder:
    words = sorted({w for t in _frame()["text"] for w in t.split()} | {"huge", "slight", "immense", "trivial"}
                   | set(HARM_WORDS[:3]) | set(COMMERCE_WORDS[:3]))
    vocab, v = _vectors(words, seed=1)
    return StaticEmbedder(vocab=vocab, vectors=v)


def _fit(prior: tuple[float, float]):
    df = _frame()
    cfg = ModelConfig(min_df=1, use_source=False, use_embeddings=True, desk_weight=1.0, magnitude_prior=prior)
    return build_pipeline(cfg, _embedder()).fit(df[["text", "source"]], df[["y", "desk"]].to_numpy())


def test_pipeline_layout_follows_the_prior():
    assert [name for name, _ in feature_union(_fit((1.0, 0.25))).transformer_list][-1] == "stats"
    assert [name for name, _ in feature_union(_fit((0.0, 0.0))).transformer_list] == ["words", "stats", "semantic"]
    # The prior needs the desk head: an engagement-only model keeps the old layout.
    on = (1.0, 0.5)
    assert ModelConfig(desk_weight=1.0, magnitude_prior=on).uses_prior
    assert not ModelConfig(desk_weight=0.0, magnitude_prior=on).uses_prior
    assert not ModelConfig(desk_weight=1.0, magnitude_prior=on, clean_text=False).uses_prior
    assert ModelConfig(desk_weight=1.0).uses_prior  # on by default wherever the desk head is
    assert not ModelConfig(desk_weight=1.0, magnitude_prior=(0.0, 0.0)).uses_prior


def test_prior_orders_bigger_stories_first_where_the_label_ignores_size():
    with_prior, without = _fit((1.0, 0.25)), _fit((0.0, 0.0))
    pairs = [("storm 2,000 hits the city today", "storm 1 hits the city today"),
             ("fire 40 hits the city again", "fire 3 hits the city again"),
             ("flood immense hits the city now", "flood trivial hits the city now")]
    s = score(with_prior, [{"text": t, "source": ""} for p in pairs for t in p]).reshape(-1, 2)
    assert (s[:, 0] > s[:, 1]).all()
    # Without it the label's noise decides: the prior, not luck, orders them (at least one pair differs).
    s0 = score(without, [{"text": t, "source": ""} for p in pairs for t in p]).reshape(-1, 2)
    s1 = score(with_prior, [{"text": t, "source": ""} for p in pairs for t in p]).reshape(-1, 2)
    assert not np.allclose(s0, s1)


words = st.lists(st.sampled_from(["storm", "immense", "trivial", "huge", "slight", "2,000", "3", "city", "Zyx", "!",
                                  "hits", "the", "Obama"]), max_size=12).map(" ".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=st.lists(st.fixed_dictionaries({"text": words, "source": st.just("")}), min_size=1, max_size=8))
def test_compiled_scorer_and_explanations_carry_the_prior(recs):
    pipe = _fit((1.0, 0.25))
    compiled = compile_pipeline(pipe)
    for blend in compiled.blends:
        assert np.abs(compiled.score(recs, blend) - score(pipe, recs, blend)).max() <= 1e-9
    rows = contributions(pipe, recs)
    labels = [c.feature for row in rows for c in row]
    assert any(lab.startswith("words of ") for lab in labels)
    # Terms plus intercept still sum to the raw prediction with the prior folded in.
    from iscore.model import linear_terms, raw_score

    _, intercept = linear_terms(pipe)
    sums = np.asarray([sum(c.value for c in row) + intercept for row in rows])
    assert np.allclose(sums, raw_score(pipe, recs), atol=1e-6) and all(math.isfinite(x) for x in sums)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_magnitude_statistics_of_any_text_are_finite(text):
    stats = HeadlineStats(HeadlineCleaner(), scale={"massive": 1.0, "tiny": -1.0}, harm=HARM).fit(_texts())
    row = stats.row(text)
    assert len(row) == len(MAGNITUDE_STAT_NAMES) and all(math.isfinite(x) for x in row)
    assert -QUANTITY_CENTRE <= row[-2] <= QUANTITY_CAP - QUANTITY_CENTRE  # the toll stays within its bounds
    assert len(stats.labels(text)) == len(row)


def test_a_version_from_before_the_toll_keeps_its_layout():
    # Fitted with the first magnitude prior (size axis, no harm table): unpickled, it scores as it did.
    texts = _texts()
    now = HeadlineStats(HeadlineCleaner(), scale={"massive": 1.0, "tiny": -1.0}, harm=HARM).fit(texts)
    old = pickle.loads(pickle.dumps(now))
    old.harm = None
    del old.harm_centre_
    assert old.names_out() == SIZE_STAT_NAMES
    for t in texts:
        plain = content_stats(old.cleaner_.clean(t))
        assert old.row(t) == [*plain[:6], plain[7], plain[6], now.row(t)[-1]]
        assert len(old.labels(t)) == len(SIZE_STAT_NAMES)
