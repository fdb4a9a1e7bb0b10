"""Data in and target: bad rows are counted, not lost; the target is a proper 0-100 scale."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.data import DataError, DatasetSpec, ColumnMapping, load_dataset, resolve_spec
from training.target import importance_target

SPEC_KW = dict(text="headline", label="shares", time="when", source="site")


def _spec(path, **kw):
    return resolve_spec(None, path, **{**SPEC_KW, **kw})


def test_bad_rows_are_counted_by_reason(tmp_path):
    rows = [
        {"headline": "Good one", "shares": "10", "when": "2024-01-01T10:00:00Z", "site": "a"},
        {"headline": "   ", "shares": "10", "when": "2024-01-01T10:00:00Z", "site": "a"},
        {"headline": "Bad label", "shares": "many", "when": "2024-01-01T10:00:00Z", "site": "a"},
        {"headline": "Negative label", "shares": "-3", "when": "2024-01-01T10:00:00Z", "site": "a"},
        {"headline": "Bad date", "shares": "4", "when": "not a date", "site": "a"},
        {"headline": "Good one", "shares": "10", "when": "2024-01-01T10:00:00Z", "site": "a"},
        {"headline": "Good two", "shares": "0", "when": "2024-01-02 08:00:00", "site": "b"},
    ]
    path = tmp_path / "d.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    df, rep = load_dataset(_spec(path), min_rows=1)
    assert rep.read == 7 and rep.kept == 2 == len(df)
    assert rep.dropped == {"empty_text": 1, "bad_label": 2, "bad_time": 1, "duplicate": 1}
    assert rep.read == rep.kept + sum(rep.dropped.values())
    assert list(df["text"]) == ["Good one", "Good two"]


def test_jsonl_and_summed_labels(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"t": f"Headline {i}", "a": i, "b": 2 * i, "src": "x"} for i in range(5)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    df, rep = load_dataset(resolve_spec(None, path, text="t", label="a,b", source="src", time=""), min_rows=1)
    assert rep.kept == 5
    assert list(df["label"]) == [0, 3, 6, 9, 12]


def test_too_few_rows_refuses_with_counts(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame([{"headline": "", "shares": 1, "when": "2024-01-01", "site": "a"}] * 3).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"only 0 valid rows remain \(need 10\).*empty_text 3"):
        load_dataset(_spec(path), min_rows=10)


def test_missing_column_and_file_are_clear(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame([{"title": "x", "shares": 1}]).to_csv(path, index=False)
    with pytest.raises(DataError, match="headline"):
        load_dataset(_spec(path, time="", source=""), min_rows=1)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(_spec(tmp_path / "nope.csv"), min_rows=1)


def test_unknown_preset_is_clear():
    with pytest.raises(DataError, match="unknown preset"):
        resolve_spec("nope")


def test_score_labels_above_100_are_bad(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame([{"headline": f"h{i}", "rating": r} for i, r in enumerate([0, 50, 100, 101])]).to_csv(path, index=False)
    spec = DatasetSpec(path=path, mapping=ColumnMapping(text="headline", label=("rating",)), label_kind="score")
    df, rep = load_dataset(spec, min_rows=1)
    assert rep.dropped == {"bad_label": 1} and list(df["label"]) == [0, 50, 100]


labels = st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(labels, st.data())
def test_percentile_target_is_in_range_and_monotone_within_group(ys, data):
    n = len(ys)
    sources = data.draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    days = data.draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
    times = pd.to_datetime("2024-01-01", utc=True) + pd.to_timedelta(days, unit="D")
    y = importance_target(pd.Series(ys), pd.Series(sources), pd.Series(times), window="week")
    assert y.shape == (n,) and np.all((y > 0) & (y < 100))
    weeks = pd.Series(times).dt.tz_localize(None).dt.to_period("W").astype(str)
    for i in range(n):
        for j in range(n):
            if sources[i] == sources[j] and weeks[i] == weeks[j]:
                if ys[i] > ys[j]:
                    assert y[i] > y[j]
                if ys[i] == ys[j]:
                    assert y[i] == y[j]


def test_percentile_target_normalises_audience_size():
    # Page b has 1000x the audience; its best and worst stories map to the same targets as a's.
    y = importance_target(pd.Series([1, 5, 10, 1000, 5000, 10000]), pd.Series(list("aaabbb")))
    np.testing.assert_allclose(y[:3], y[3:])


def test_single_row_group_scores_50():
    assert importance_target(pd.Series([7]), pd.Series(["a"])).tolist() == [50.0]


@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=50))
def test_passthrough_keeps_0_100_labels(ys):
    np.testing.assert_array_equal(importance_target(pd.Series(ys), method="passthrough"), np.asarray(ys))


@pytest.mark.parametrize("kw", [{"method": "passthrough"}, {"method": "percentile"}])
def test_invalid_labels_are_refused(kw):
    with pytest.raises(ValueError):
        importance_target(pd.Series([-1.0, 300.0]), **kw)


def test_log_target_is_bounded_and_monotone():
    y = importance_target(pd.Series([0, 1, 10, 100]), method="log")
    assert y[0] == 0 and y[-1] == 100 and np.all(np.diff(y) > 0)


def test_label_blend_is_a_weighted_mean_of_per_column_targets(tmp_path):
    from training.data import parse_blend
    from training.target import dataset_target

    rows = [{"headline": f"h{i}", "shares": i, "comments": 9 - i, "site": "a"} for i in range(10)]
    path = tmp_path / "d.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    spec = resolve_spec(None, path, text="headline", label="shares", source="site", label_blend="shares=3,comments=1")
    assert spec.label_blend == (("shares", 3.0), ("comments", 1.0)) and spec.mapping.label == ("shares", "comments")
    df, _ = load_dataset(spec, min_rows=1)
    y = dataset_target(df, spec)
    ys = importance_target(df["label:shares"], df["source"])
    yc = importance_target(df["label:comments"], df["source"])
    np.testing.assert_allclose(y, 0.75 * ys + 0.25 * yc)
    with pytest.raises(DataError, match="column=weight"):
        parse_blend("shares:3")
    with pytest.raises(DataError, match="above 0"):
        parse_blend("shares=0")


def test_a_negative_blend_column_is_a_bad_label(tmp_path):
    rows = [{"headline": "a", "shares": 5, "comments": -1}, {"headline": "b", "shares": 5, "comments": 1}]
    path = tmp_path / "d.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    spec = resolve_spec(None, path, text="headline", label="shares", label_blend="shares=1,comments=1")
    df, rep = load_dataset(spec, min_rows=1)
    assert rep.dropped == {"bad_label": 1} and list(df["text"]) == ["b"]


def test_explicit_label_column_replaces_the_preset_blend():
    assert resolve_spec("fb_news").label_blend is not None
    spec = resolve_spec("fb_news", label="num_reactions")
    assert spec.label_blend is None and spec.mapping.label == ("num_reactions",)
