"""Evaluation: time-ordered hold-out, ranking metrics and baselines computed in the same run."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.metrics import ndcg_score, roc_auc_score
from sklearn.pipeline import Pipeline

from iscore.features import ColumnPicker, column
from iscore.scoring import score

PRIMARY_METRIC = "spearman"


def time_split(df: pd.DataFrame, holdout_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Oldest rows for training, newest for testing (input order when there is no time).

    With an ``origin`` column (base data and production feedback), each origin is split on its
    own, so recent feedback is both learned from and tested on.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError("holdout_fraction must be between 0 and 1")
    if "origin" in df.columns and df["origin"].nunique() > 1:
        parts = [time_split(g, holdout_fraction) for _, g in df.groupby("origin", sort=True)]
        return (pd.concat([a for a, _ in parts], ignore_index=True),
                pd.concat([b for _, b in parts], ignore_index=True))
    if df["time"].notna().all():
        df = df.sort_values("time", kind="stable")
    cut = int(round(len(df) * (1.0 - holdout_fraction)))
    return df.iloc[:cut].reset_index(drop=True), df.iloc[cut:].reset_index(drop=True)


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def ndcg_by_group(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, k: int = 10) -> float | None:
    """Mean NDCG@k over groups (days) with at least two rows and some relevance."""
    vals = []
    order = np.argsort(groups, kind="stable")
    g_sorted = groups[order]
    bounds = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = order[a:b]
        if len(idx) < 2 or np.all(y_true[idx] == 0):
            continue
        vals.append(ndcg_score(y_true[idx][None, :], y_pred[idx][None, :], k=k))
    return float(np.mean(vals)) if vals else None


def ranking_metrics(y_true: Any, y_pred: Any, days: Any = None) -> dict[str, float | None]:
    """Spearman, Kendall, NDCG@10 within each day and MAE (0-100 scale)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    constant = np.ptp(y_pred) == 0 if len(y_pred) else True
    out: dict[str, float | None] = {
        "spearman": None if constant else _finite(stats.spearmanr(y_true, y_pred).statistic),
        "kendall": None if constant else _finite(stats.kendalltau(y_true, y_pred).statistic),
        "mae": _finite(float(np.mean(np.abs(y_true - y_pred)))) if len(y_true) else None,
        "n": int(len(y_true)),
    }
    if days is not None:
        out["ndcg10_daily"] = _finite(ndcg_by_group(y_true, y_pred, np.asarray(days)) or float("nan"))
    return out


def days_of(df: pd.DataFrame) -> np.ndarray | None:
    """Calendar day (UTC) of each row, or None when the data has no time."""
    if df["time"].isna().all():
        return None
    return df["time"].dt.strftime("%Y-%m-%d").fillna("unknown").to_numpy()


def within_source_spearman(df: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray, min_rows: int = 30) -> float | None:
    """Mean Spearman within each source with enough rows (sources differ in audience)."""
    vals = []
    for _, idx in df.groupby("source").indices.items():
        if len(idx) >= min_rows and np.ptp(y_pred[idx]) > 0 and np.ptp(y_true[idx]) > 0:
            vals.append(stats.spearmanr(y_true[idx], y_pred[idx]).statistic)
    return _finite(float(np.mean(vals))) if vals else None


def plain_tfidf_ridge() -> Pipeline:
    """The plain TF-IDF + ridge baseline (text only, default settings)."""
    return Pipeline([
        ("pick", ColumnPicker("text")),
        ("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype=np.float32)),
        ("ridge", Ridge(alpha=1.0)),
    ])


class ConstantScorer:
    """The constant baseline as a model: every record scores the training median."""

    def __init__(self, value: float):
        self.value = float(value)

    def predict(self, records: Any) -> np.ndarray:
        return np.full(len(records), self.value)


class LengthScorer:
    """The headline-length baseline as a model: 100 x the share of training headlines not longer.

    On a hold-out the baseline ranks lengths within the hold-out (:func:`baseline_predictions`); this
    form scores any list of records the same way whatever else is in the batch (behaviour suites).
    """

    def __init__(self, train_texts: Any):
        self.lengths = np.sort(np.asarray([len(t) for t in train_texts], dtype=np.float64))

    def predict(self, records: Any) -> np.ndarray:
        lengths = np.asarray([len(t) for t in column(records, "text")], dtype=np.float64)
        return 100.0 * np.searchsorted(self.lengths, lengths, side="right") / max(len(self.lengths), 1)


def fit_baselines(train: pd.DataFrame, y_train: np.ndarray) -> dict[str, Any]:
    """Every baseline fitted on ``train``, as objects with ``predict(records)`` (scored like pipelines)."""
    return {
        "constant": ConstantScorer(np.median(y_train)),
        "headline_length": LengthScorer(column(train, "text")),
        "tfidf_ridge": plain_tfidf_ridge().fit(train, y_train),
    }


def baseline_predictions(train: pd.DataFrame, test: pd.DataFrame, y_train: np.ndarray,
                         models: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Predictions of each baseline on ``test`` (fitted on ``train`` in this run, or ``models``
    from :func:`fit_baselines` when already fitted)."""
    lengths = np.asarray([len(t) for t in column(test, "text")], dtype=np.float64)
    tfidf = models["tfidf_ridge"] if models else plain_tfidf_ridge().fit(train, y_train)
    return {
        "constant": np.full(len(test), float(np.median(y_train))),
        "headline_length": 100.0 * stats.rankdata(lengths) / max(len(lengths), 1),
        "tfidf_ridge": np.clip(tfidf.predict(test), 0, 100),
    }


def _binary_auc(labels: np.ndarray, positive: float, pred: np.ndarray, min_rows: int) -> float | None:
    """ROC AUC of ``pred`` for ``labels == positive`` against the other finite labels (NaN = unknown);
    None when either side has fewer than ``min_rows`` rows."""
    known = np.isfinite(labels)
    pos = labels[known] == positive
    if pos.sum() < min_rows or (~pos).sum() < min_rows:
        return None
    return float(roc_auc_score(pos, pred[known]))


def desk_auc(df: pd.DataFrame, pred: np.ndarray, min_rows: int = 20) -> float | None:
    """ROC AUC of the scores for hard news (desk 100) against soft news (desk 0), where labelled."""
    if "desk" not in df.columns:
        return None
    auc = _binary_auc(df["desk"].to_numpy(dtype=float), 100.0, np.asarray(pred), min_rows)
    return None if auc is None else _finite(round(auc, 4))


def editorial_auc(df: pd.DataFrame, pred: np.ndarray, min_rows: int = 20) -> float | None:
    """Mean within-source ROC AUC of the scores for flagged rows (e.g. the publisher's top
    articles) against the rest; sources with fewer than ``min_rows`` of either kind are skipped."""
    if "flag" not in df.columns:
        return None
    flag, pred = df["flag"].to_numpy(dtype=float), np.asarray(pred)
    aucs = [a for idx in df.groupby("source").indices.values()
            if (a := _binary_auc(flag[idx], 1.0, pred[idx], min_rows)) is not None]
    return _finite(round(float(np.mean(aucs)), 4)) if aucs else None


def evaluate_on(pipeline: Any, df: pd.DataFrame, y: np.ndarray, blend: str | None = None) -> dict[str, Any]:
    """All metrics of a fitted i-Score pipeline (``blend``: one of its blends, default its own) on rows ``df``."""
    pred = score(pipeline, df, blend)
    m = ranking_metrics(y, pred, days_of(df))
    if df["source"].nunique() > 1:
        m["spearman_within_source"] = within_source_spearman(df, y, pred)
    m.update(label_aucs(df, pred))
    return m


def label_aucs(df: pd.DataFrame, pred: np.ndarray) -> dict[str, float]:
    """The desk and editorial AUCs of ``pred`` where ``df`` has those labels."""
    out = {"desk_auc": desk_auc(df, pred), "editorial_auc": editorial_auc(df, pred)}
    return {k: v for k, v in out.items() if v is not None}
