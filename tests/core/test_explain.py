"""iscore.scoring.explain / contributions: readable terms (words, phrases, signals, source) that add up exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iscore import registry
from iscore.features import STAT_NAMES, StaticEmbedder, stat_labels
from iscore.model import ModelConfig, build_pipeline, feature_parts, linear_terms, part_columns, raw_score
from iscore.scoring import EXPLAIN_KINDS, contributions, explain, model_record
from tests.conftest import ROOT, make_rows

WEIGHT = 2.5  # the embedder's weight: a share that forgot it would not add up


@pytest.fixture(scope="module")
def embed_model():
    """A tiny pipeline with all four parts, the static vectors included (random vectors of its words)."""
    from training.target import importance_target

    df = pd.DataFrame(make_rows(seed=3)).rename(columns={"headline": "text", "site": "source"})
    df["y"] = importance_target(df["shares"], df["source"], pd.to_datetime(df["when"]))
    # "kenya" has no vector (TF-IDF only); "dozens" has only a vector (never in the training text).
    words = sorted({w for t in df["text"] for w in t.lower().split()} - {"kenya"} | {"dozens"})
    rng = np.random.default_rng(0)
    emb = StaticEmbedder(vocab={w: i for i, w in enumerate(words)},
                         vectors=rng.normal(size=(len(words), 8)).astype(np.float16))
    # Raw text (no cleaner): this tiny corpus is too small to learn which capitalised words are names.
    config = ModelConfig(min_df=1, use_embeddings=True, embedding_weight=WEIGHT, clean_text=False)
    return build_pipeline(config, emb).fit(df, df["y"].to_numpy())


@pytest.fixture(scope="module")
def shipped():
    models = ROOT / "models"
    return registry.load_version(models, registry.current_version(models)).pipeline


TEXTS = [("Earthquake kills at least 300 in central Turkey", "reuters"),
         ("Ten easy recipes for a quick weekday dinner", None),
         ("Is this the end of the euro?", None),
         ("BREAKING: President resigns after corruption scandal!", "CNN"),
         ("You won't believe what this cat did next", "buzzfeed.com"),
         ("Floods kill dozens in Kenya as floods spread", "site_a"),
         ("Cute cats in Paris again", "Some Parish Newsletter"),
         ("?!", None),
         ("zzzq xqxq", None)]


def records_of(texts=TEXTS):
    return [model_record(t, s) for t, s in texts]


def by_key(row):
    return {(c.kind, c.feature): c.value for c in row}


@pytest.mark.parametrize("which", ["tiny_model", "embed_model", "shipped"])
def test_all_terms_and_the_intercept_sum_to_the_raw_prediction(request, which):
    pipe = request.getfixturevalue(which)
    pipe = pipe[0] if isinstance(pipe, tuple) else pipe
    records = records_of()
    terms = contributions(pipe, records)
    totals = np.array([sum(c.value for c in row) for row in terms]) + linear_terms(pipe)[1]
    np.testing.assert_allclose(totals, raw_score(pipe, records), rtol=0, atol=1e-6)
    assert all(len(by_key(row)) == len(row) for row in terms)  # one entry per (kind, name)
    assert {c.kind for row in terms for c in row} <= set(EXPLAIN_KINDS)


def test_the_vector_part_is_shared_by_its_tokens_with_the_rows_own_norm(embed_model):
    emb = feature_parts(embed_model)["semantic"]
    cols = {name: len(names) for name, _, names in part_columns(embed_model)}
    start = cols["words"] + cols["stats"] + cols["source"]
    coef = linear_terms(embed_model)[0][start:start + cols["semantic"]]
    proj = emb.projection(coef)
    text = "Floods kill dozens in Kenya as floods spread"  # "floods" twice; "kenya", "spread" have no vector
    shares = emb.token_shares(text, proj)
    assert [t for t, _ in shares] == ["floods", "kill", "dozens", "in", "as", "floods"]
    part_total = float(emb.transform([text])[0].astype(np.float64) @ coef)
    assert sum(v for _, v in shares) == pytest.approx(part_total, abs=1e-6)
    vecs = emb.vectors.astype(np.float64)
    norm = np.linalg.norm(sum(vecs[emb.vocab[t]] for t, _ in shares))
    for token, value in shares:  # weight * (v_t . coef) / |sum of the row's token vectors|
        assert value == pytest.approx(WEIGHT * vecs[emb.vocab[token]] @ coef / norm, rel=1e-5)
    assert emb.token_shares("Kenya spread", proj) == []  # no known token, no vector part


def test_a_word_is_one_entry_holding_its_tfidf_and_vector_terms(embed_model):
    text = "Floods kill dozens in Kenya as floods spread"
    emb = feature_parts(embed_model)["semantic"]
    cols = {name: len(names) for name, _, names in part_columns(embed_model)}
    coef = linear_terms(embed_model)[0]
    start = cols["words"] + cols["stats"] + cols["source"]
    shares = emb.token_shares(text, emb.projection(coef[start:]))
    words = feature_parts(embed_model)["words"]
    x = words.transform([text])
    tfidf = {name: x[0, j] * coef[j] for name, j in words.steps[-1][1].vocabulary_.items() if x[0, j]}
    row = by_key(contributions(embed_model, [model_record(text, None)])[0])
    vector_floods = sum(v for t, v in shares if t == "floods")
    assert vector_floods != 0 and tfidf["floods"] != 0
    assert row[("word", "floods")] == pytest.approx(tfidf["floods"] + vector_floods, abs=1e-9)
    assert row[("phrase", "in kenya")] == pytest.approx(tfidf["in kenya"], abs=1e-9)
    assert row[("word", "kenya")] == pytest.approx(tfidf["kenya"], abs=1e-9)  # no vector: TF-IDF alone
    assert "dozens" not in tfidf and row[("word", "dozens")] == pytest.approx(
        sum(v for t, v in shares if t == "dozens"), abs=1e-9)  # no TF-IDF column: its vector share alone
    assert ("word", "spread") not in row
    assert not any("emb" in f or "__" in f for _, f in row)


def test_statistics_say_what_they_saw():
    assert stat_labels("BREAKING: 3 things you need to know?!") == [
        "length: 37 characters", "length: 7 words", "number", "does not start with a number", "question mark",
        "exclamation mark", "no quotation marks", "colon", "capitals: 1 of 7 words",
        "speaks to the reader (you, your)"]
    assert stat_labels('10 "CATS" ROCK') == [
        "length: 14 characters", "length: 3 words", "number", "starts with a number", "no question mark",
        "no exclamation mark", "quotation marks", "no colon", "capitals: 2 of 3 words", "does not say you"]
    assert stat_labels("STORM HITS") == [
        "length: 10 characters", "length: 2 words", "no number", "does not start with a number",
        "no question mark", "no exclamation mark", "no quotation marks", "no colon", "all capitals",
        "does not say you"]
    assert len(stat_labels("")) == len(STAT_NAMES) and stat_labels("")[8] == "no words in capitals"


def test_the_shipped_model_explains_in_words_a_reader_knows(shipped):
    rows = [by_key(r) for r in contributions(shipped, records_of(TEXTS[:7]))]
    names = [f for row in rows for _, f in row]
    assert names and not any("__" in f or "emb" in f or "=" in f or "xname" in f or "xprominent" in f for f in names)
    quake, recipes, question, breaking, cat, floods, paris = rows
    assert quake[("word", "kills")] > 0 and quake[("word", "earthquake")] > 0
    assert quake[("source", "source: reuters")] and ("signal", "no question mark") in quake
    assert quake[("signal", "quantity: 300")] > 0 and ("signal", "no names") in quake
    assert recipes[("word", "recipes")] < 0 and ("source", "source: reuters") not in recipes
    assert ("signal", "question mark") in question and ("phrase", "the end") in question
    # The cleaned text: no kicker, no "!", so neither can be a reason (#14 item 1).
    assert ("word", "breaking") not in breaking and not any("exclamation" in f for _, f in breaking)
    assert breaking[("word", "resigns")] > 0 and ("source", "source: cnn") in breaking
    # Names are a class, said in words: Kenya is "a name", Paris a prominent one.
    assert ("word", "(a name)") in floods and ("signal", "names: 1") in floods
    assert ("word", "(a prominent name)") in paris
    assert ("signal", "speaks to the reader (you, your)") in cat
    # "won't" is one word for the vectors; TF-IDF sees "won" (its token pattern drops the "t").
    assert ("word", "won't") in cat and ("word", "won") in cat


@pytest.mark.parametrize("top", [1, 2, 4])
def test_explain_keeps_the_largest_terms_each_way(embed_model, top):
    records = records_of()
    for row, ex in zip(contributions(embed_model, records), explain(embed_model, records, top)):
        ups = sorted((c for c in row if c.value > 0), key=lambda c: -c.value)[:top]
        downs = sorted((c for c in row if c.value < 0), key=lambda c: c.value)[:top]
        assert ex["up"] == [{"feature": c.feature, "kind": c.kind, "contribution": round(c.value, 4)} for c in ups]
        assert ex["down"] == [{"feature": c.feature, "kind": c.kind, "contribution": round(c.value, 4)}
                              for c in downs]
    assert max(len(ex["up"]) for ex in explain(embed_model, records, top)) == top
