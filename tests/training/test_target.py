"""training/target.py: the target is a proper 0-100 scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.data import DataError, load_dataset, resolve_spec
from training.target import importance_target

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
