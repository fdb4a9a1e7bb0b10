"""Real-stream evaluation: rank what outlets published in the same few hours, as a desk would see it.

An editor never ranks a whole month at once; they rank what arrived in the last hours. So the
cross-source set (news_engagement_2019, whose ``flag`` column is the outlets' own ``top_article``
pick) is cut into time windows and each window is ranked on its own:

* **Windows.** Half-open ``[start, start + hours)`` intervals on the ``time`` column (the data set's
  ``published_at``, parsed to UTC by :func:`training.data.parse_times`). Starts are aligned to
  multiples of ``hours`` since the Unix epoch in UTC, so 3-hour windows start at 00, 03, ..., 21 UTC
  whatever the data: the same rows always fall in the same windows. Naive timestamps are taken as
  UTC; aware ones are converted to UTC first. Rows without a time or without a known flag are left
  out. A window counts when it has at least ``min_rows`` headlines from at least ``min_sources``
  distinct outlets (``source``), so one outlet's burst is not a "stream".
* **Per window.** ``top_share``: the share of the top ``k`` (by score) that are top picks
  (precision@k); ``ndcg``: NDCG@k with the flag as relevance (windows without a pick have none).
  Ties are averaged over all orders of the tied rows, so a constant ranker scores exactly the
  random expectation rather than whatever the input order says.
* **Random expectation.** A random order puts a pick at each of the top ``k`` places with
  probability p = picks / rows, so its expected share is p and its expected DCG is
  p * sum(discounts); both are exact, not simulated.

Aggregates are plain means over windows (each window weighs the same, as each shift does for an
editor). Plain functions; no Flask, no model loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import ndcg_score

WINDOW_HOURS = 3
MIN_ROWS = 20
MIN_SOURCES = 5
TOP_K = 10
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")

# Largest drop of the mean window top-ten share a challenger may show against the champion.
# Measured with bench/stream_eval.py on the 67 windows of news_engagement_2019: a per-window share
# moves in steps of 0.1, and a paired bootstrap over windows (windows resampled, 2000 draws) of the
# difference in mean share gives a standard error of 0.012 between the two shipped versions and
# 0.015-0.019 between the shipped model and each baseline. 0.03 is about two standard errors: a
# drop the windows cannot tell from noise passes, losing half of today's lift over random
# (0.175 vs 0.118) does not.
STREAM_TOLERANCE = 0.03


@dataclass(frozen=True)
class Window:
    """One time window: its UTC start and the positions (``iloc``) of its rows in the frame."""

    start: pd.Timestamp
    rows: np.ndarray
    sources: int


def _utc(times: pd.Series) -> pd.Series:
    """``times`` as tz-aware UTC timestamps (naive values are taken to be UTC already)."""
    t = pd.to_datetime(times, errors="coerce")
    if getattr(t.dt, "tz", None) is None:
        return t.dt.tz_localize("UTC")
    return t.dt.tz_convert("UTC")


def stream_windows(df: pd.DataFrame, *, hours: int = WINDOW_HOURS, min_rows: int = MIN_ROWS,
                   min_sources: int = MIN_SOURCES) -> list[Window]:
    """Epoch-aligned UTC windows of ``df`` (columns time, source, flag) with enough rows and outlets, oldest first."""
    if hours <= 0:
        raise ValueError("hours must be positive")
    if df.empty:
        return []
    t = _utc(df["time"]).reset_index(drop=True)
    flag = pd.to_numeric(df["flag"], errors="coerce").reset_index(drop=True)
    source = df["source"].astype(str).str.strip().reset_index(drop=True)
    usable = (t.notna() & flag.isin([0, 1])).to_numpy()
    # Integer nanoseconds floor-divided by the window length: exact, no float rounding at boundaries.
    width = np.int64(hours) * np.int64(3_600_000_000_000)
    ns = (t[usable] - _EPOCH).to_numpy(dtype="timedelta64[ns]").astype(np.int64)
    slot = np.floor_divide(ns, width)
    positions = np.flatnonzero(usable)
    out = []
    for s in np.unique(slot):
        rows = positions[slot == s]
        n_sources = source.iloc[rows][source.iloc[rows] != ""].nunique()
        if len(rows) >= min_rows and n_sources >= min_sources:
            out.append(Window(start=_EPOCH + pd.Timedelta(int(s) * int(width), "ns"), rows=rows, sources=int(n_sources)))
    return out


def top_k_share(relevant: np.ndarray, scores: np.ndarray, k: int = TOP_K) -> float:
    """Expected share of the top ``k`` by score that are relevant, ties broken uniformly at random."""
    relevant = np.asarray(relevant, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    k = min(k, len(scores))
    if k == 0:
        return float("nan")
    kth = np.sort(scores)[::-1][k - 1]
    above = scores > kth
    tied = scores == kth
    # The tied rows at the cut fill the remaining places; each is equally likely to get one.
    hits = relevant[above].sum() + (k - above.sum()) * relevant[tied].mean()
    return float(hits / k)


def ndcg_at_k(relevant: np.ndarray, scores: np.ndarray, k: int = TOP_K) -> float | None:
    """NDCG@k of ``scores`` for 0/1 relevance (ties averaged); None when nothing is relevant."""
    rel = np.asarray(relevant, dtype=np.float64)
    if len(rel) < 2 or rel.sum() == 0:
        return None
    return float(ndcg_score(rel[None, :], np.asarray(scores, dtype=np.float64)[None, :], k=k))


def random_ndcg(relevant: np.ndarray, k: int = TOP_K) -> float | None:
    """Exact expected NDCG@k of a uniformly random order; None when nothing is relevant."""
    rel = np.asarray(relevant, dtype=bool)
    picks = int(rel.sum())
    if len(rel) < 2 or picks == 0:
        return None
    discounts = 1.0 / np.log2(np.arange(2, min(k, len(rel)) + 2))
    return float(picks / len(rel) * discounts.sum() / discounts[:min(picks, len(discounts))].sum())


def window_scores(windows: list[Window], flag: np.ndarray, scores: np.ndarray, k: int = TOP_K) -> dict[str, np.ndarray]:
    """Per window: top-k share and NDCG@k of ``scores``, and the random expectation of both (NaN: no picks)."""
    flag = np.asarray(flag, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    out: dict[str, list[float]] = {"top_share": [], "ndcg": [], "random_share": [], "random_ndcg": []}
    for w in windows:
        rel, s = flag[w.rows] == 1, scores[w.rows]
        out["top_share"].append(top_k_share(rel, s, k))
        out["random_share"].append(float(rel.mean()))
        for name, v in (("ndcg", ndcg_at_k(rel, s, k)), ("random_ndcg", random_ndcg(rel, k))):
            out[name].append(np.nan if v is None else v)
    return {name: np.asarray(v, dtype=np.float64) for name, v in out.items()}


def _mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return round(float(values.mean()), 4) if len(values) else None


def summarise(per_window: dict[str, np.ndarray]) -> dict[str, Any]:
    """Means over windows: the ranker's share and NDCG, the random expectation and the ratio to it."""
    share, rnd = _mean(per_window["top_share"]), _mean(per_window["random_share"])
    return {
        "window_top10_share": share,
        "window_ndcg10": _mean(per_window["ndcg"]),
        "window_random_share": rnd,
        "window_random_ndcg10": _mean(per_window["random_ndcg"]),
        "window_share_vs_random": round(share / rnd, 3) if share is not None and rnd else None,
    }


def stream_evaluation(df: pd.DataFrame, predictions: dict[str, np.ndarray], *, hours: int = WINDOW_HOURS,
                      min_rows: int = MIN_ROWS, min_sources: int = MIN_SOURCES, k: int = TOP_K) -> dict[str, Any]:
    """Windowed metrics of every named ranker in ``predictions`` (aligned with ``df``'s rows), plus the windows used."""
    windows = stream_windows(df, hours=hours, min_rows=min_rows, min_sources=min_sources)
    flag = pd.to_numeric(df["flag"], errors="coerce").to_numpy(dtype=np.float64)
    out: dict[str, Any] = {
        "windows": len(windows), "rows": int(sum(len(w.rows) for w in windows)), "k": k,
        "rule": f"{hours}h UTC windows aligned to 00:00 UTC, >= {min_rows} headlines from >= {min_sources} outlets",
        "models": {},
    }
    if not windows:
        return out
    for name, pred in predictions.items():
        out["models"][name] = summarise(window_scores(windows, flag, np.asarray(pred), k))
    return out


def has_stream_labels(df: pd.DataFrame) -> bool:
    """Whether ``df`` carries what windows need: time, source and an editorial flag."""
    return {"time", "source", "flag"} <= set(df.columns) and df["flag"].notna().any()
