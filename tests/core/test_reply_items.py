"""iscore.scoring.reply_items: headlines to reply items (score, triage, round, tier, explain), no Flask."""

from __future__ import annotations

import numpy as np
import pytest

from iscore.scoring import InputContext, explain, model_record, reply_items, score
from iscore.triage import shrink, triage

EVERY_WORD = InputContext(known_words=type("All", (), {"__contains__": lambda self, t: True})(),
                          trained_sources={"bbcnews"}, median=35.0)
HEADLINES = ["Floods kill dozens in Kenya", "Parliament passes the budget bill", "Court rules on the election",
             "Markets fall as rates rise"]


class FixedPipeline:
    """Predicts the given values in order (not linear: explain has nothing to say)."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def predict(self, records):
        return np.asarray(self.values[: len(records)], dtype=np.float64)


def triples(texts: list[str], source: str | None = None) -> list[tuple[str, str, str | None]]:
    return [(str(i), t, source) for i, t in enumerate(texts)]


def items_of(values, texts, **kw):
    kw = {"red_threshold": 60.0, "explain_top": 3, "with_explain": False, "context": EVERY_WORD, **kw}
    return reply_items(FixedPipeline(values), triples(texts), **kw)


def test_rounds_to_one_decimal_and_tiers_the_rounded_score():
    # 59.96 rounds to 60.0, which is red at a threshold of 60: the tier follows the score shown.
    items = items_of([59.96, 59.94, 12.345], HEADLINES[:3])
    assert [(it["i_score"], it["tier"], it["flags"]) for it in items] == [
        (60.0, "red", []), (59.9, "blue", []), (12.3, "blue", [])]
    assert all(type(it["i_score"]) is float for it in items)  # plain floats, as JSON takes them


def test_out_of_range_and_nan_predictions_are_clipped_to_0_100():
    items = items_of([-5.0, 250.0, float("nan"), float("inf")], HEADLINES, red_threshold=50.0)
    assert [it["i_score"] for it in items] == [0.0, 100.0, 0.0, 100.0]


def test_little_evidence_shrinks_toward_the_median_and_says_why():
    texts = ["Trump", "https://www.bbc.co.uk/news/world-12345", "Erdbeben tötet mindestens 300 Menschen in der Türkei",
             HEADLINES[0]]
    items = items_of([99.0, 80.0, 90.0, 90.0], texts)
    assert items[0]["flags"] == ["too_short"] and items[0]["i_score"] == round(shrink(99.0, 0.25, 35.0), 1)
    assert "looks_like_url" in items[1]["flags"] and items[1]["i_score"] < 50
    assert "not_english" in items[2]["flags"] and abs(items[2]["i_score"] - 35.0) < 5
    assert items[3]["flags"] == [] and items[3]["i_score"] == 90.0
    # A single word cannot reach red however the model scores it.
    assert all(it["tier"] == "blue" for it in items[:3])


def test_unknown_words_and_sources_are_flagged():
    none_known = InputContext(known_words=set(), trained_sources={"bbcnews"}, median=35.0)
    items = reply_items(FixedPipeline([80.0]), triples([HEADLINES[0]]), red_threshold=60.0, explain_top=3,
                        with_explain=False, context=none_known)
    assert "few_known_words" in items[0]["flags"] and items[0]["i_score"] == 35.0
    trained = reply_items(FixedPipeline([80.0]), triples([HEADLINES[0]], "bbc-news"), red_threshold=60.0,
                          explain_top=3, with_explain=False, context=EVERY_WORD)
    untrained = reply_items(FixedPipeline([80.0]), triples([HEADLINES[0]], "Some Parish Newsletter"),
                            red_threshold=60.0, explain_top=3, with_explain=False, context=EVERY_WORD)
    assert "unknown_source" not in trained[0]["flags"] and "unknown_source" in untrained[0]["flags"]


def test_the_model_sees_the_resolved_source_key():
    seen = []

    class Recording(FixedPipeline):
        def predict(self, records):
            seen.extend(records)
            return super().predict(records)

    heads = [("z", HEADLINES[0], "BBC News"), ("a", HEADLINES[1], None)]
    items = reply_items(Recording([1.0, 2.0]), heads, red_threshold=60.0, explain_top=3, with_explain=False,
                        context=EVERY_WORD)
    assert [(it["id"], it["text"]) for it in items] == [("z", HEADLINES[0]), ("a", HEADLINES[1])]
    assert seen == [model_record(HEADLINES[0], "BBC News"), {"text": HEADLINES[1], "source": ""}]
    assert seen[0]["source"] == model_record(HEADLINES[0], "https://www.bbc.co.uk/news")["source"] != "bbc news"


def test_no_headlines_no_items():
    assert items_of([], [], with_explain=True) == []


def test_explain_only_when_asked_and_empty_for_a_model_that_is_not_linear():
    assert "explain" not in items_of([70.0], HEADLINES[:1])[0]
    explained = items_of([70.0], HEADLINES[:1], with_explain=True)
    assert explained[0]["explain"] == {"up": [], "down": []}
    assert list(explained[0]) == ["id", "text", "i_score", "tier", "flags", "explain"]  # the reply's field order


@pytest.mark.parametrize("top", [1, 3])
def test_a_fitted_model_matches_score_triage_and_explain(tiny_model, top):
    pipeline, df = tiny_model
    texts, sources = list(df["text"][:5]), list(df["source"][:5])
    heads = [(f"h{i}", t, s) for i, (t, s) in enumerate(zip(texts, sources))]
    records = [model_record(t, s) for t, s in zip(texts, sources)]
    items = reply_items(pipeline, heads, red_threshold=50.0, explain_top=top, with_explain=True)
    ctx = InputContext.of(pipeline)
    expected = [round(shrink(float(v), triage(t, known=ctx.known_words.__contains__).evidence, ctx.median), 1)
                for v, t in zip(score(pipeline, records), texts)]
    assert [it["i_score"] for it in items] == expected
    assert [it["tier"] for it in items] == ["red" if v >= 50.0 else "blue" for v in expected]
    assert [it["explain"] for it in items] == explain(pipeline, records, top)
    assert any(it["explain"]["up"] or it["explain"]["down"] for it in items)  # the tiny model is linear
    assert ctx.median == 35.0  # the display curve puts the median training headline at 35


@pytest.mark.parametrize("cfg", [{"use_source": False}, {"out_of_core": True}, {"use_words": False}])
def test_models_without_a_vocabulary_or_a_source_part_still_reply(cfg):
    # --no-source and --out-of-core (hashed words) are documented recipes; their replies once raised.
    from tests.conftest import fit_tiny

    pipeline, _ = fit_tiny(**cfg)
    items = reply_items(pipeline, [("a", "Zorblax vantrel quimbo frandle kills dozens", "bbc-news")],
                        red_threshold=60.0, explain_top=3, with_explain=True)
    assert 0.0 <= items[0]["i_score"] <= 100.0 and "explain" in items[0]
    ctx = InputContext.of(pipeline)
    if cfg.get("use_source") is False:
        assert "unknown_source" in items[0]["flags"]  # a model without sources gives no source a weight
    if cfg.get("out_of_core") or cfg.get("use_words") is False:
        assert ctx.known_words is None and "few_known_words" not in items[0]["flags"]


# Remembered triage and source keys (a cache per model context, one per process): the same answers as the functions.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from iscore.scoring import source_key  # noqa: E402
from iscore.sources import normalize_source  # noqa: E402

_WORDS = st.sampled_from(["Floods", "kill", "dozens", "in", "Kenya", "KENYA", "300", "2019", "www.bbc.co.uk",
                          "https://x.org/a", "Erdbeben", "tötet", "Türkei", "l'été", "\u00a0", "\t", "zzqx", ""])
_TEXTS = st.lists(_WORDS | st.text(max_size=6), max_size=10).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_TEXTS, min_size=1, max_size=8), vocab=st.frozensets(st.sampled_from(
    ["floods", "kill", "dozens", "in", "kenya", "erdbeben", "l'été"]), max_size=7), none=st.booleans())
def test_remembered_triage_is_triage(texts, vocab, none):
    """A context's triage, asked twice per text (the second from the cache), is triage with its vocabulary."""
    ctx = InputContext(known_words=None if none else set(vocab), trained_sources=set(), median=40.0)
    for text in texts + texts:
        assert ctx.triage(text) == triage(text, known=None if none else set(vocab).__contains__)


def test_triage_is_remembered_per_context():
    a = InputContext(known_words={"floods"}, trained_sources=set(), median=40.0)
    b = InputContext(known_words=set(), trained_sources=set(), median=40.0)
    text = "Floods kill dozens in Kenya"
    assert a.triage(text) is a.triage(text)  # the second answer is the remembered one
    assert "few_known_words" in b.triage(text).flags and "few_known_words" in a.triage(text).flags
    assert InputContext(known_words={"floods", "kill", "dozens", "in", "kenya"}, trained_sources=set(),
                        median=40.0).triage(text).flags == ()  # another vocabulary: not a's answer


@settings(max_examples=300, deadline=None)
@given(sources=st.lists(st.sampled_from(["bbc", "BBC News", "https://www.bbc.co.uk/news", "reuters.com", "the guardian",
                                         "Some Parish Newsletter", "www.", "é", " "]) | st.text(max_size=12),
                        min_size=1, max_size=6))
def test_remembered_source_key_is_normalize_source(sources):
    for source in sources + sources:
        assert source_key(source) == normalize_source(source).key
        assert model_record("x", source)["source"] == (normalize_source(source).key if source else "")


def test_reply_items_remember_triage_and_give_the_same_items():
    ctx = InputContext(known_words={"floods", "kill"}, trained_sources={"bbcnews"}, median=35.0)
    fresh = lambda: InputContext(known_words={"floods", "kill"}, trained_sources={"bbcnews"}, median=35.0)  # noqa: E731
    texts = HEADLINES + ["Trump", "https://www.bbc.co.uk/news/world-12345"]
    values = [80.0, 20.0, 55.5, 61.0, 99.0, 70.0]
    kw = {"red_threshold": 60.0, "explain_top": 3, "with_explain": False}
    first = reply_items(FixedPipeline(values), triples(texts, "BBC News"), context=ctx, **kw)
    again = reply_items(FixedPipeline(values), triples(texts, "BBC News"), context=ctx, **kw)
    assert first == again == reply_items(FixedPipeline(values), triples(texts, "BBC News"), context=fresh(), **kw)
    assert ctx.triage.cache_info().hits >= len(texts)
