"""The batch forms of the text parts read every text as the per-record methods and scikit-learn do."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer

from iscore.features import ROW_BREAK, WORD_TOKEN, HeadlineCleaner, StaticEmbedder, WordNgrams

# Words, names, digits, apostrophes, underscores, one-letter words, non-ASCII letters (Greek capital sigma
# lower-cases by context), line breaks (the row break itself) and other white space.
PIECES = st.one_of(
    st.sampled_from(["storm", "Storm", "STORM", "it's", "Obama's", "o'clock", "a", "I", "x9", "_", "__init__", "3",
                     "2,000", "caf\u00e9", "\u0394\u0399\u039f\u03a3", "\u03a3", "na\u00efve", "\u00c9lan", "-", ",", ".",
                     ROW_BREAK, "\r\n", "\t", "\u00a0", "\u2028", "  ", "'", "\u2019"]),
    st.text(max_size=4))
TEXTS = st.lists(PIECES, max_size=14).map(" ".join)


def _vectorizer(ngram_range: tuple[int, int], lowercase: bool = True) -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=ngram_range, lowercase=lowercase).fit(["storm hits coast", "it's a storm"])


@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2), (2, 3), (1, 3)])
@pytest.mark.parametrize("lowercase", [True, False])
@settings(max_examples=150, deadline=None)
@given(texts=st.lists(TEXTS, max_size=6))
def test_word_ngrams_are_the_analyzers(ngram_range, lowercase, texts):
    vec = _vectorizer(ngram_range, lowercase)
    analyze, batch = vec.build_analyzer(), WordNgrams.of(vec)
    assert batch is not None
    for text in texts:  # one text: the same n-grams (another order)
        assert Counter(batch.grams(text)) == Counter(analyze(text))
    # A batch: each n-gram belongs to the row of its first token, and one spanning a row break to none.
    tokens, streams = batch.streams(texts)
    assert tokens.count(ROW_BREAK) == max(0, len(texts) - 1)
    row_of = np.cumsum([t == ROW_BREAK for t in tokens])
    got: list[Counter] = [Counter() for _ in texts]
    for grams in streams:
        for p, g in enumerate(grams):
            if ROW_BREAK not in g:
                got[row_of[p]][g] += 1
    assert got == [Counter(analyze(t)) for t in texts]


def test_only_the_plain_word_analyzer_has_a_batch_form():
    docs = ["storm hits coast", "it's a storm"]
    assert WordNgrams.of(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3)).fit(docs)) is None
    assert WordNgrams.of(TfidfVectorizer(token_pattern=r"\S+").fit(docs)) is None
    assert WordNgrams.of(TfidfVectorizer(stop_words=["a"]).fit(docs)) is None
    assert WordNgrams.of(TfidfVectorizer(strip_accents="unicode").fit(docs)) is None
    assert WordNgrams.of(TfidfVectorizer().fit(docs)) is not None


def _embedder(cleaned: bool) -> StaticEmbedder:
    words = ["storm", "it's", "obama's", "x9", "3", "caf", "o'clock", "hits", "coast"]
    vocab = {w: i for i, w in enumerate(words)}
    vectors = np.random.default_rng(0).normal(size=(len(words), 8)).astype(np.float16)
    cleaner = HeadlineCleaner(min_kicker=1).fit(["Storm hits coast", "BREAKING: Obama visits coast"] * 3) if cleaned else None
    return StaticEmbedder(vocab=vocab, vectors=vectors, cleaner=cleaner).fit(["x"])


@pytest.mark.parametrize("cleaned", [True, False])
@settings(max_examples=150, deadline=None)
@given(texts=st.lists(TEXTS, max_size=6))
def test_embedder_token_rows_are_the_per_text_tokens(cleaned, texts):
    emb = _embedder(cleaned)
    # The per-record reading, written out: WORD_TOKEN over the cleaned (else lower-cased) text.
    read = [emb.cleaner_.clean(t) if cleaned else t.lower() for t in texts]
    expected = [[emb.vocab[w] for w in WORD_TOKEN.findall(r) if w in emb.vocab] for r in read]
    assert [emb.token_ids(t) for t in texts] == expected
    ids, lens = emb.token_id_rows(texts)
    assert lens.tolist() == [len(e) for e in expected] and ids.tolist() == [i for e in expected for i in e]
    # transform is built on the batch form: each row the float32 sum, in token order, normalised and weighted.
    got = emb.transform(texts)
    for row, e in zip(got, expected):
        total = np.zeros(8, dtype=np.float32)
        for i in e:
            total += emb.vectors[i].astype(np.float32)
        norm = np.linalg.norm(total[None, :], axis=1)[0]
        assert np.array_equal(row, (total / norm if norm > 0 else total) * np.float32(emb.weight))
