"""iscore/scoring.py: scores of a fitted model are finite, within 0-100, stable under white space, thread-safe."""

from __future__ import annotations


import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from iscore.model import feature_parts
from iscore.scoring import score
from tests.conftest import run_threads

# Behaviour of a fitted model on arbitrary text.
text_st = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=200)


@settings(max_examples=80, deadline=None)
@given(st.lists(text_st, min_size=1, max_size=20))
def test_scores_are_finite_and_within_0_100(tiny_model, texts):
    s = score(tiny_model[0], texts)
    assert s.shape == (len(texts),) and np.all(np.isfinite(s)) and s.min() >= 0 and s.max() <= 100


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["Earthquake kills many in Chile today", "Cute cats in Paris again", "Court rules in Ohio"]),
       st.sampled_from([" ", "  ", "\t", "\n", "\u00a0"]))
def test_whitespace_and_case_barely_move_a_score(tiny_model, text, ws):
    base = score(tiny_model[0], [text])[0]
    spaced = score(tiny_model[0], [ws + text.replace(" ", ws + " ") + ws])[0]
    lowered = score(tiny_model[0], [text.lower()])[0]
    assert spaced == pytest.approx(base, abs=1e-9)  # whitespace is normalised away
    picker = feature_parts(tiny_model[0])["words"].steps[0][1]
    # Case reaches the model only where the cleaner reads a capitalised word it never saw in lower
    # case as a name; otherwise the model sees the same text and gives the same score.
    if picker.one(text.lower()) == picker.one(text):
        assert lowered == pytest.approx(base, abs=1e-9)
    else:
        assert "xname" in picker.one(text)


def test_many_threads_score_like_one(tiny_model):
    pipe = tiny_model[0]
    texts = [f"Floods kill {i} in Kenya" if i % 2 else f"Cute cats number {i}" for i in range(200)]
    expected = score(pipe, texts)
    results: list[np.ndarray] = []

    def work(_: int) -> None:
        for _ in range(10):
            results.append(score(pipe, texts))

    assert run_threads(work, 8) == []
    assert len(results) == 80
    for r in results:
        np.testing.assert_array_equal(r, expected)
