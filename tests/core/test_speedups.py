"""The C reader (iscore/_speedups.c) reads a headline exactly as the Python code in iscore/features.py does.

Every comparison is against the Python reference itself: the fitted cleaner's ``clean``, the
vectorizer's analyzer, ``StaticEmbedder.token_ids`` and ``HeadlineStats.row``; the scorer-level
ones against the pipeline. Skipped where the extension was not built (no C compiler at install).
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iscore import compiled as compiled_module
from iscore.compiled import C_STAT_NAMES, c_reader_of, compile_pipeline, verification_records
from iscore.features import (MAGNITUDE_STAT_NAMES, SENTENCE_CASE_SHARE, HeadlineCleaner, HeadlineStats,
                             StaticEmbedder)
from iscore.scoring import score
from tests.core.test_compiled import EXACT, toy

speedups = pytest.importorskip("iscore._speedups", reason="the C extension was not built (no C compiler at install)")

# Fragments that exercise every rule the C code reproduces: names, runs and case (the cleaner), kickers,
# presentation marks, quantities and multipliers, number words, "you", the name tokens themselves, apostrophes,
# Latin-1 letters, the punctuation read beyond ASCII, white space of every kind str.split() knows.
FRAGMENTS = (
    "Trump", "trump", "TRUMP", "Obama's", "Lindqvist", "Marine", "Le", "Pen", "pen", "Paris", "BREAKING", "Watch",
    "Opinion", "says", "police", "city", "The", "A", "a", "I", "you", "You", "your", "you're", "yours", "youth",
    "xname", "xprominent", "xnamex", "million", "Million", "m", "k", "bn", "mn", "tn", "hundred", "hundreds", "one",
    "Two", "dozen", "scores", "1,000", "12,34", "1,2345", "3.5", "3.", ".5", "2019", "1999", "2100", "007", "5g",
    "10k", "$3", "5m", "5 m", "3 million", "Café", "café", "ÉCOLE", "ß", "ÿ", "Ü", "naïve", "don't", "rock'n'roll",
    "O’Brien", "‘quoted’", "“Big”", "—", "–", "…", "£5", "€", "«", "»", "!", "?", ":", "|", "'", '"', ".", ",", "_",
    "-", "\t", "\n", "\xa0", "\x1c", "\x0b", " ", "  ", "kills", "killed", "victims", "profits", "earthquake",
)
SEPARATORS = (" ", "", "  ", ": ", " | ", "\n")
headline = st.lists(st.tuples(st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from(FRAGMENTS),
                                        st.text(max_size=3)), st.sampled_from(SEPARATORS)),
                    max_size=16).map(lambda parts: "".join(f + s for f, s in parts))

CORPUS = [
    "Police say Lindqvist met Trump in the city today",
    "Trump meets Obama's team in the city as police watch",
    "Trump says the city will pay for police and schools",
    "BREAKING: storm hits the city and police close roads",
    "BREAKING: police say one killed in the city",
    "Watch | a city of one million people loses power",
    "Watch | the city says you're welcome to the show",
    "Marine Le Pen says the pen is mightier in the city",
    "Paris police say victims of the earthquake were found",
    "The city says profits rose to 3 million in 2019",
    "Police in the city say Trump will visit",
]


def _cleaner() -> HeadlineCleaner:
    cleaner = HeadlineCleaner(min_kicker=2, min_proper=2, min_prominent=4).fit(CORPUS * 2)
    # every table in play, and names both prominent and not
    assert cleaner.kickers_ and cleaner.common_ and cleaner.prominent_ and cleaner.proper_ - cleaner.prominent_
    return cleaner


CLEANER = _cleaner()
READER = c_reader_of(CLEANER)
READABLE = set(map(chr, range(128))) | set(speedups.READABLE_BEYOND_ASCII)


def test_the_characters_read_beyond_ascii_behave_as_the_c_code_assumes():
    beyond = speedups.READABLE_BEYOND_ASCII
    assert "\xa0" in beyond and "\u2019" in beyond and "é" in beyond and "\u0085" not in beyond
    for ch in beyond:
        latin = "\xc0" <= ch <= "\xff"
        word = bool(re.match(r"\w", ch))
        assert word == latin, ch  # Latin-1 letters are word characters, the punctuation is not
        assert not re.match(r"\d", ch) and not ch.isdigit()
        assert not re.match(r"[A-Za-z]", ch)
        assert ch.isspace() == (ch == "\xa0") == bool(re.match(r"\s", ch))
        expected = chr(ord(ch) + 32) if "\xc0" <= ch <= "\xde" else ch
        assert ch.lower() == expected, ch
        assert len(ch.lower()) == 1 and unicodedata.category(ch) != "Cn"
    assert "\xd7" not in beyond and "\xf7" not in beyond  # × and ÷ are signs, not letters
    # ASCII: the white space str.split() and \s know, and \w, are the ones the C code uses.
    assert [c for c in map(chr, range(128)) if c.isspace()] == list("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ")
    assert all(bool(re.match(r"\w", c)) == (c.isalnum() or c == "_") for c in map(chr, range(128)))


@settings(max_examples=1500, deadline=None)
@given(text=headline)
def test_the_c_cleaner_is_the_python_cleaner(text):
    got = READER.clean(text)
    if set(text) <= READABLE:
        assert got == CLEANER.clean(text)
    else:  # a character C does not read: the text is left to the Python code
        assert got is None


@pytest.mark.parametrize("join_runs", [True, False])
def test_name_runs_follow_the_cleaners_rule(join_runs):
    cleaner = _cleaner()
    cleaner.join_runs = join_runs  # False: versions pickled before the rule
    reader = c_reader_of(cleaner)
    for text in ("Marine Le Pen says the pen is mightier", "Marine Le Pen Says The Pen Is Mightier",
                 "police say Lindqvist Pen met"):
        assert reader.clean(text) == cleaner.clean(text)


def _magnitude_parts():
    """A fitted pipeline of every part C reads, the statistics with the toll and the size axis, and its scorer."""
    import pandas as pd

    from iscore.features import COMMERCE_WORDS, HARM_WORDS, SCALE_LARGE, SCALE_SMALL
    from iscore.model import ModelConfig, build_pipeline

    rng = np.random.default_rng(7)
    texts = CORPUS * 6 + [" ".join(rng.choice(FRAGMENTS[:60], size=int(rng.integers(2, 12)))) for _ in range(200)]
    words = sorted({*HARM_WORDS, *COMMERCE_WORDS, *SCALE_LARGE, *SCALE_SMALL,
                    *(w for t in texts for w in re.findall(r"[a-z0-9]+(?:'[a-z]+)?", t.lower()))})
    embedder = StaticEmbedder(vocab={w: i for i, w in enumerate(words)},
                              vectors=rng.normal(size=(len(words), 16)).astype(np.float16))
    frame = pd.DataFrame({"text": texts, "source": [("reuters", "bbc", "")[i % 3] for i in range(len(texts))]})
    y = np.column_stack([rng.normal(size=len(texts)),
                         [100.0 if "police" in t else (0.0 if "profits" in t or "show" in t else np.nan) for t in texts]])
    pipe = build_pipeline(ModelConfig(min_df=1, use_embeddings=True, desk_weight=1.0), embedder).fit(frame, y)
    scorer = compile_pipeline(pipe)
    assert scorer.reader is not None
    stats = scorer.reader.stats.stats
    assert tuple(stats.names_out()) == MAGNITUDE_STAT_NAMES and stats.harm and stats.scale  # the toll is in play
    return scorer


SCORER = _magnitude_parts()


@settings(max_examples=800, deadline=None)
@given(text=headline)
def test_what_c_reads_is_what_each_part_reads_in_python(text):
    reader = SCORER.reader
    got = reader.reader.read_one(text)
    if not set(text) <= READABLE:
        assert got is None
        return
    cols, ids, stats = got
    assert sorted(cols) == sorted(reader.words.columns(text))
    assert ids == reader.semantic.embedder.token_ids(text)
    assert [stats[k] for k in reader.layout] == reader.stats.stats.row(text)  # exact, not approximate


# Every readable character in every position a rule looks at (word start, inside a word, beside an apostrophe,
# a kicker, a quantity), and every number on the edges of a rule (years, thousands groups, fractions).
TEMPLATES = ("{c}", "Police {c}ay {c} Trump{c}s", "x{c}y you{c} {c}'s", "BREAKING{c}: 5{c}m victims", "3 {c}million",
             "{c}xname {c}1,000{c}", "Le {c}Pen", "{c}{c} ‘{c}’ {c}", "city's{c}one")
NUMBERS = tuple(str(y) for y in range(1890, 2111)) + ("999", "1,000", "1,000,000", "12,3456", "0.5", "5.", "1e5",
                                                     "9" * 40, "3,00", "10,000k", "2 bn", "7tn", "one2", "_5", ".5")


def test_every_readable_character_and_edge_number_is_read_as_python_reads_it():
    reader = SCORER.reader
    chars = [chr(i) for i in range(128)] + list(speedups.READABLE_BEYOND_ASCII)
    texts = [t.format(c=c) for t in TEMPLATES for c in chars]
    texts += [f"{n} killed as {n} flee" for n in NUMBERS] + [f"Profits of ${n} million" for n in NUMBERS]
    for text in texts:
        assert READER.clean(text) == CLEANER.clean(text), text
        cols, ids, stats = reader.reader.read_one(text)
        assert sorted(cols) == sorted(reader.words.columns(text)), text
        assert ids == reader.semantic.embedder.token_ids(text), text
        assert [stats[k] for k in reader.layout] == reader.stats.stats.row(text), text
    for ch in ("\u0085", "\u2028", "\u0130", "\u212a", "\u0663", "\u00b2", "\u00d7", "\u017f"):  # beyond: Python reads them
        assert READER.clean(f"Trump {ch} says") is None and reader.reader.read_one(ch) is None


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(headline, max_size=8))
def test_a_batch_read_is_each_text_read_alone(texts):
    fallback, rows_b, cols_b, ids_b, lens_b, stats_b = SCORER.reader.reader.read(texts)
    rows, cols = np.frombuffer(rows_b, dtype=np.int64), np.frombuffer(cols_b, dtype=np.int64)
    ids, lens = np.frombuffer(ids_b, dtype=np.int64), np.frombuffer(lens_b, dtype=np.int64)
    stats = np.frombuffer(stats_b, dtype=np.float64).reshape(len(texts), len(C_STAT_NAMES))
    assert len(lens) == len(texts)
    at = 0
    for i, text in enumerate(texts):
        alone = SCORER.reader.reader.read_one(text)
        assert (alone is None) == (i in fallback)
        if alone is None:
            assert lens[i] == 0 and not (rows == i).any() and not stats[i].any()
            continue
        assert sorted(cols[rows == i].tolist()) == sorted(alone[0])
        assert ids[at:at + lens[i]].tolist() == alone[1]
        assert stats[i].tolist() == alone[2]
        at += lens[i]
    assert at == len(ids)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(headline, min_size=1, max_size=10), sources=st.lists(st.sampled_from(["", "reuters", "bbc"]),
                                                                          min_size=10, max_size=10))
def test_scores_read_in_c_are_the_pipelines(texts, sources):
    pipe = SCORER.pipeline
    recs = [{"text": t, "source": s} for t, s in zip(texts, sources)]
    python = SCORER.without_c()
    assert python.reader is None
    for blend in SCORER.blends:
        expected = score(pipe, recs, blend)
        assert np.abs(SCORER.score(recs, blend) - expected).max() <= EXACT  # batch: C, its fallback spliced in
        assert np.abs(python.score(recs, blend) - expected).max() <= EXACT
        one = np.concatenate([SCORER.score([r], blend) for r in recs])  # one at a time: read_one
        assert np.abs(one - np.concatenate([score(pipe, [r], blend) for r in recs])).max() <= EXACT
    assert np.abs(SCORER.matrix(recs) - python.matrix(recs)).max() == 0


def test_large_batches_take_the_c_path_and_equal_the_pipeline():
    pipe = SCORER.pipeline
    recs = [{"text": t, "source": "reuters"} for t in (*CORPUS, "Zyxqv blorft", "Élection à Paris", "")] * 40
    assert np.abs(SCORER.score(recs) - score(pipe, recs)).max() <= EXACT


def test_keys_longer_than_a_slot_and_a_row_break_marker_are_read():
    # Keys of more than 16 bytes live outside the table's slots; a negative column is a marker (compiled.py's row
    # break) and reads as absent.
    vocabulary = {"extraordinarily": 0, "extraordinarily long": 1, "long": 2, "headline": 3,
                  "long headline": 4, "\n": -2, "extraordinarily long headline": 5}
    reader = c_reader_of(CLEANER, vocabulary, (1, 3))
    cols, ids, _ = reader.read_one("extraordinarily long headline\n")  # lower case: not a name
    assert sorted(cols) == [0, 1, 2, 3, 4, 5] and ids == []
    assert reader.read_one("") == ([], [], [0.0] * len(C_STAT_NAMES))


def test_the_size_layout_and_the_content_layout_are_read_too():
    cleaner = _cleaner()
    scale = {"earthquake": 0.25, "city": -0.125, "killed": 0.5}
    for stats in (HeadlineStats(cleaner), HeadlineStats(cleaner, scale=scale, harm={"killed": 0.4, "profits": -0.2})):
        stats.fit(CORPUS)
        reader = c_reader_of(cleaner, stats=stats)
        layout = [C_STAT_NAMES.index(n) for n in stats.names_out()]
        for text in (*CORPUS, "Earthquake killed 3,000 in the city", "You're one of hundreds"):
            assert [reader.read_one(text)[2][k] for k in layout] == stats.row(text)
    legacy = HeadlineStats(cleaner, scale=scale)  # a version from before the toll: the size axis alone
    legacy.harm = None
    legacy.cleaner_, legacy.n_features_out_ = cleaner, 9
    reader = c_reader_of(cleaner, stats=legacy)
    layout = [C_STAT_NAMES.index(n) for n in legacy.names_out()]
    assert [reader.read_one("Earthquake hits the city")[2][k] for k in layout] == legacy.row("Earthquake hits the city")


def test_where_text_is_read_is_logged(monkeypatch):
    import dataclasses

    import service.holder as holder

    said = []
    monkeypatch.setattr(holder.log, "info", lambda msg, **kw: said.append((msg, kw["extra"]["fields"])))
    loaded = dataclasses.make_dataclass("Loaded", [("version", str), ("pipeline", object), ("scorer", object)])
    holder.with_scorer(loaded("v1", SCORER.pipeline, None))
    holder.with_scorer(loaded("v2", toy("char n-grams too"), None))
    holder.with_scorer(loaded("v3", SCORER.pipeline, None), c_reader=False)
    monkeypatch.setattr(compiled_module, "_speedups", None)
    monkeypatch.setattr(compiled_module, "_SPEEDUPS_ERROR", "not built")
    holder.with_scorer(loaded("v4", SCORER.pipeline, None))
    assert said[0] == ("compiled scorer: text read in C", {"version": "v1"})
    assert [m for m, _ in said[1:]] == ["compiled scorer: text read in Python"] * 3
    assert "character n-grams" in said[1][1]["reason"]
    assert said[2][1]["reason"] == "ISCORE_C_READER=0"
    assert said[3][1]["reason"] == "iscore._speedups: not built (python3 -m pip install -e . builds it)"


def test_parts_c_does_not_know_are_read_in_python(monkeypatch):
    assert compile_pipeline(toy("char n-grams too")).reader is None  # character n-grams
    assert compile_pipeline(toy("no cleaner (before #14)")).reader is None  # raw text
    assert compile_pipeline(toy("all parts, ridge"), c_reader=False).reader is None  # asked not to
    monkeypatch.setattr(compiled_module, "_speedups", None)  # not built
    scorer = compile_pipeline(toy("all parts, ridge"))
    assert scorer.reader is None
    recs = verification_records()
    assert np.abs(scorer.score(recs) - score(scorer.pipeline, recs)).max() <= EXACT


def test_bad_tables_are_refused_with_a_clear_error():
    with pytest.raises(TypeError, match="keys must be str"):
        speedups.Reader({1}, set(), set(), set(), True, SENTENCE_CASE_SHARE, {}, {})
    with pytest.raises(ValueError, match="ngram_range"):
        speedups.Reader(set(), set(), set(), set(), True, 0.6, {}, {}, {"a": 0}, (2, 1))
    with pytest.raises(TypeError, match="must be str"):
        READER.clean(b"bytes")
    with pytest.raises(RuntimeError, match="initialised once"):
        READER.__init__(set(), set(), set(), set(), True, 0.6, {}, {})
    with pytest.raises(TypeError):
        READER.read([1, 2])


def test_a_c_reader_that_disagrees_is_dropped_not_served(monkeypatch):
    from service.holder import with_scorer

    class Wrong:
        """Reads every headline with one statistic off: what a bug in the C code would look like."""

        def __init__(self, real):
            self.real = real

        def read_one(self, text):
            got = self.real.read_one(text)
            return got if got is None else (got[0], got[1], [v + 1.0 for v in got[2]])

        def read(self, texts):
            *head, stats = self.real.read(texts)
            return (*head, (np.frombuffer(stats, dtype=np.float64) + 1.0).tobytes())

    real_compile = compiled_module.compile_pipeline

    def sabotaged(pipeline, c_reader=True):
        scorer = real_compile(pipeline, c_reader)
        if scorer.reader is not None:
            scorer.reader.reader = Wrong(scorer.reader.reader)
        return scorer

    import service.holder as holder

    monkeypatch.setattr(holder, "compile_pipeline", sabotaged)

    import dataclasses

    loaded = dataclasses.make_dataclass("Loaded", [("version", str), ("pipeline", object), ("scorer", object)])(
        "v-test", SCORER.pipeline, None)
    warned = []  # the holder's log (the service's logging set-up may not propagate to pytest's capture)
    monkeypatch.setattr(holder.log, "warning", lambda msg, **kw: warned.append((msg, kw)))
    served, uncompiled = with_scorer(loaded)
    assert uncompiled is None and served.scorer is not None  # still the compiled scorer ...
    assert served.scorer.reader is None  # ... reading text in Python
    assert [m for m, kw in warned if "text read in Python" in m
            and "differs from the pipeline" in kw["extra"]["fields"]["reason"]]
    recs = verification_records()
    assert np.abs(served.scorer.score(recs) - score(SCORER.pipeline, recs)).max() <= EXACT


def test_stats_embedder_words_share_one_cleaner_or_c_is_not_used():
    import copy

    pipe = copy.deepcopy(toy("all parts, ridge"))
    for _, part in pipe.steps[0][1].transformer_list:
        if isinstance(part, StaticEmbedder):
            part.cleaner_ = copy.deepcopy(part.cleaner_)
            part.cleaner_.common_ = frozenset()  # this part now reads names differently
    assert compile_pipeline(pipe).reader is None


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_one_texts_word_share_in_c_is_pythons_bit_for_bit(data):
    words = SCORER.reader.words
    # Columns with repeats, up to past the term-frequency table (65 and more of one n-gram go back to Python).
    cols = data.draw(st.lists(st.integers(0, words.width - 1), max_size=30))
    cols += [data.draw(st.integers(0, words.width - 1))] * data.draw(st.sampled_from([0, 2, 3, 64, 65, 80]))
    for blend in SCORER.blends:
        coef = next(p.coef[blend] for p in SCORER.parts if p.compiled is words)
        assert words.share_of_columns_c(cols, coef) == words.share_of_columns(cols, coef)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_one_texts_vector_share_in_c_is_numpys(data):
    semantic = SCORER.reader.semantic
    ids = data.draw(st.lists(st.integers(0, semantic.vectors.shape[0] - 1), max_size=25))
    for blend in SCORER.blends:
        coef = next(p.coef[blend] for p in SCORER.parts if p.compiled is semantic)
        # The float32 row is numpy's bit for bit (its norm copies numpy's pairwise sum); only the final product's
        # order of additions in double may differ from numpy's dot.
        assert abs(semantic.share_of_ids_c(ids, coef) - semantic.share_of_ids(ids, coef)) <= 1e-13


@pytest.mark.parametrize("dim", [1, 5, 8, 15, 16, 63, 64, 100, 128, 129, 200, 300])
def test_the_vector_norm_is_numpys_for_every_width(dim):
    rng = np.random.default_rng(dim)
    vectors = rng.normal(size=(40, dim)).astype(np.float32)
    coef = rng.normal(size=dim)
    weight = np.float32(1.7)
    for _ in range(50):
        ids = rng.integers(0, 40, size=int(rng.integers(1, 12))).tolist()
        total = np.add.accumulate(vectors[ids], axis=0)[-1]
        norm = np.sqrt(np.add.reduce(total * total))
        row = (total / norm) * weight
        expected = float(np.dot(row, coef))
        assert abs(speedups.embed_share(ids, vectors, coef, float(weight)) - expected) <= 1e-12 * max(1.0, abs(expected))


def test_share_functions_refuse_bad_input():
    vectors, coef = np.zeros((3, 4), dtype=np.float32), np.zeros(4)
    with pytest.raises(IndexError):
        speedups.embed_share([3], vectors, coef, 1.0)
    with pytest.raises(TypeError, match="float32"):
        speedups.embed_share([0], vectors.astype(np.float64), coef, 1.0)
    with pytest.raises(ValueError, match="one column per coefficient"):
        speedups.embed_share([0], vectors, np.zeros(5), 1.0)
    from array import array

    packed, tf = array("d", [0.0] * 9), array("d", [0.0, 1.0])
    with pytest.raises(IndexError):
        speedups.terms_share([3], packed, tf, None, True, True)
    with pytest.raises(TypeError, match="float64"):
        speedups.terms_share([0], array("f", [0.0] * 9), tf, None, True, True)
    assert speedups.terms_share([], packed, tf, None, True, True) == 0.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(headline, min_size=1, max_size=9))
def test_c_and_python_reading_give_the_same_scores_bit_for_bit(texts):
    # Beyond what the tests above compare (what is read), the arithmetic after it adds in the same order on both
    # paths: the same doubles, not only within a tolerance of the pipeline.
    recs = [{"text": t, "source": ("reuters", "")[i % 2]} for i, t in enumerate(texts)]
    python = SCORER.without_c()
    for blend in SCORER.blends:
        assert SCORER.raw(recs, blend).tolist() == python.raw(recs, blend).tolist()
        assert SCORER.score(recs, blend).tolist() == python.score(recs, blend).tolist()  # batches of 5+: the arrays
        for r in recs[:2]:  # one at a time: the one-record path
            assert SCORER.score([r], blend).tolist() == python.score([r], blend).tolist()
