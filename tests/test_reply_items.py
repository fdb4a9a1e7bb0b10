"""iscore.scoring.reply_items: headlines to reply items (score, round, tier, explain), no Flask."""

from __future__ import annotations

import numpy as np
import pytest

from iscore.scoring import explain, reply_items, score


class FixedPipeline:
    """Predicts the given values in order (not linear: explain has nothing to say)."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def predict(self, records):
        return np.asarray(self.values[: len(records)], dtype=np.float64)


def triples(texts: list[str]) -> list[tuple[str, str, dict[str, str]]]:
    return [(str(i), t, {"text": t, "source": ""}) for i, t in enumerate(texts)]


def test_rounds_to_one_decimal_and_tiers_the_rounded_score():
    # 59.96 rounds to 60.0, which is red at a threshold of 60: the tier follows the score shown.
    items = reply_items(FixedPipeline([59.96, 59.94, 12.345]), triples(["a", "b", "c"]),
                        red_threshold=60.0, explain_top=3, with_explain=False)
    assert items == [
        {"id": "0", "text": "a", "i_score": 60.0, "tier": "red"},
        {"id": "1", "text": "b", "i_score": 59.9, "tier": "blue"},
        {"id": "2", "text": "c", "i_score": 12.3, "tier": "blue"},
    ]
    assert all(type(it["i_score"]) is float for it in items)  # plain floats, as JSON takes them


def test_out_of_range_and_nan_predictions_are_clipped_to_0_100():
    items = reply_items(FixedPipeline([-5.0, 250.0, float("nan"), float("inf")]), triples(list("abcd")),
                        red_threshold=50.0, explain_top=3, with_explain=False)
    assert [it["i_score"] for it in items] == [0.0, 100.0, 0.0, 100.0]


def test_ids_texts_and_order_are_kept_and_records_alone_are_scored():
    seen = []

    class Recording(FixedPipeline):
        def predict(self, records):
            seen.extend(records)
            return super().predict(records)

    heads = [("z", "Shown text", {"text": "model text", "source": "bbc"}), ("a", "Other", {"text": "o", "source": ""})]
    items = reply_items(Recording([1.0, 2.0]), heads, red_threshold=60.0, explain_top=3, with_explain=False)
    assert [(it["id"], it["text"]) for it in items] == [("z", "Shown text"), ("a", "Other")]
    assert seen == [heads[0][2], heads[1][2]]


def test_no_headlines_no_items():
    assert reply_items(FixedPipeline([]), [], red_threshold=60.0, explain_top=3, with_explain=True) == []


def test_explain_only_when_asked_and_empty_for_a_model_that_is_not_linear():
    plain = reply_items(FixedPipeline([70.0]), triples(["a"]), red_threshold=60.0, explain_top=3, with_explain=False)
    assert "explain" not in plain[0]
    explained = reply_items(FixedPipeline([70.0]), triples(["a"]), red_threshold=60.0, explain_top=3, with_explain=True)
    assert explained[0]["explain"] == {"up": [], "down": []}
    assert list(explained[0]) == ["id", "text", "i_score", "tier", "explain"]  # the reply's field order


@pytest.mark.parametrize("top", [1, 3])
def test_a_fitted_model_matches_score_and_explain(tiny_model, top):
    pipeline, df = tiny_model
    records = [{"text": t, "source": s} for t, s in zip(df["text"][:5], df["source"][:5])]
    heads = [(f"h{i}", r["text"], r) for i, r in enumerate(records)]
    items = reply_items(pipeline, heads, red_threshold=50.0, explain_top=top, with_explain=True)
    expected = score(pipeline, records)
    assert [it["i_score"] for it in items] == [round(float(v), 1) for v in expected]
    assert [it["tier"] for it in items] == ["red" if round(float(v), 1) >= 50.0 else "blue" for v in expected]
    assert [it["explain"] for it in items] == explain(pipeline, records, top)
    assert any(it["explain"]["up"] or it["explain"]["down"] for it in items)  # the tiny model is linear
    assert all(len(it["explain"]["up"]) <= top and len(it["explain"]["down"]) <= top for it in items)
