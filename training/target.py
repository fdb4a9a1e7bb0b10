"""Turn raw engagement into a 0-100 importance target."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

METHODS = ("percentile", "log", "passthrough")
WINDOWS = {"none": None, "day": "D", "week": "W", "month": "M"}


def importance_target(
    label: pd.Series,
    source: pd.Series | None = None,
    time: pd.Series | None = None,
    *,
    method: str = "percentile",
    window: str = "week",
) -> np.ndarray:
    """Map labels to 0-100.

    - ``percentile`` (default): percentile rank of log1p(label) within the same source and time
      window, so a story's target says how it did against its own page's audience that week.
      Ties share their mean rank; a group of one scores 50.
    - ``log``: 100 * log1p(label) / log1p(max label), for data from one audience.
    - ``passthrough``: labels already on 0-100 (editor ratings) are used as they are.
    """
    y = np.asarray(label, dtype=np.float64)
    if method == "passthrough":
        if np.any((y < 0) | (y > 100)) or not np.all(np.isfinite(y)):
            raise ValueError("passthrough labels must be finite and within 0..100")
        return y.copy()
    if np.any(y < 0) or not np.all(np.isfinite(y)):
        raise ValueError("engagement labels must be finite and >= 0")
    logy = np.log1p(y)
    if method == "log":
        top = logy.max() if len(logy) else 0.0
        return np.zeros_like(logy) if top == 0 else 100.0 * logy / top
    if method != "percentile":
        raise ValueError(f"unknown target method {method!r}; choose one of {', '.join(METHODS)}")
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; choose one of {', '.join(WINDOWS)}")
    n = len(y)
    keys: list[pd.Series] = [pd.Series(np.zeros(n, dtype=np.int8))]
    if source is not None:
        keys.append(pd.Series(np.asarray(source, dtype=object)))
    freq = WINDOWS[window]
    if time is not None and freq is not None:
        t = pd.Series(pd.to_datetime(pd.Series(time).reset_index(drop=True), utc=True))
        keys.append(t.dt.tz_localize(None).dt.to_period(freq).astype(str))
    frame = pd.DataFrame({f"k{i}": k.reset_index(drop=True) for i, k in enumerate(keys)})
    frame["y"] = logy
    g = frame.groupby([c for c in frame.columns if c != "y"], sort=False, dropna=False)["y"]
    ranks = g.rank(method="average").to_numpy()
    sizes = g.transform("size").to_numpy()
    return 100.0 * (ranks - 0.5) / sizes


def dataset_target(df: pd.DataFrame, spec: Any, *, method: str = "percentile", window: str = "week") -> np.ndarray:
    """The 0-100 target of cleaned rows under a data set's spec (blended over label columns if set)."""
    source = df["source"] if spec.mapping.source else None
    time = df["time"] if spec.mapping.time else None
    method = "passthrough" if spec.label_kind == "score" else method
    if not spec.label_blend:
        return importance_target(df["label"], source, time, method=method, window=window)
    total = sum(w for _, w in spec.label_blend)
    return sum(w * importance_target(df[f"label:{c}"], source, time, method=method, window=window)
               for c, w in spec.label_blend) / total
