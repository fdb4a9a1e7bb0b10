"""training/evaluate.py: the desk and editorial AUC metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.evaluate import desk_auc

def test_desk_auc_needs_both_desks():
    df = pd.DataFrame({"desk": [100.0] * 30 + [0.0] * 30 + [np.nan] * 5})
    pred = np.r_[np.linspace(60, 90, 30), np.linspace(0, 50, 30), np.zeros(5)]
    assert desk_auc(df, pred) == 1.0
    assert desk_auc(df, -pred) == 0.0
    assert desk_auc(df.iloc[25:], pred[25:]) is None  # only 5 hard-news rows
    assert desk_auc(df.drop(columns="desk"), pred) is None


def test_editorial_auc_is_the_mean_within_source():
    from training.evaluate import editorial_auc

    # Source a: flagged rows score highest (AUC 1); source b: lowest (AUC 0); c: too few flags.
    df = pd.DataFrame({"source": ["a"] * 40 + ["b"] * 40 + ["c"] * 40,
                       "flag": [1.0] * 20 + [0.0] * 20 + [1.0] * 20 + [0.0] * 20 + [1.0] * 5 + [0.0] * 35})
    pred = np.r_[np.arange(40, 0, -1), np.arange(40), np.arange(40)].astype(float)
    assert editorial_auc(df, pred) == 0.5
    assert editorial_auc(df.iloc[:40], pred[:40]) == 1.0
    assert editorial_auc(df.assign(flag=np.nan), pred) is None
    assert editorial_auc(df.drop(columns="flag"), pred) is None
