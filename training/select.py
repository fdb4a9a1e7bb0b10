"""Model selection by time-ordered cross-validation on the training part only.

The final hold-out (newest rows) is never looked at here: each fold trains on everything older
than its validation block, like a retrain that scores tomorrow's news.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from iscore.model import ModelConfig
from training.behaviour import run_suite
from training.evaluate import evaluate_on

DEFAULT_GRID: dict[str, dict[str, Any]] = {
    "words a10": {"alpha": 10.0, "use_embeddings": False},
    "words a30": {"alpha": 30.0, "use_embeddings": False},
    "words a100": {"alpha": 100.0, "use_embeddings": False},
    "words+emb a30": {"alpha": 30.0, "use_embeddings": True, "embedding_weight": 3.0},
    "words+emb a100": {"alpha": 100.0, "use_embeddings": True, "embedding_weight": 3.0},
    "words+emb(x10) a100": {"alpha": 100.0, "use_embeddings": True, "embedding_weight": 10.0},
    "emb only a3": {"alpha": 3.0, "use_embeddings": True, "use_words": False},
}


def time_folds(n: int, folds: int = 2, first: float = 0.5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over time-sorted rows: (older rows, next block)."""
    edges = np.linspace(first, 1.0, folds + 1)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        cut, end = int(n * a), int(n * b)
        out.append((np.arange(cut), np.arange(cut, end)))
    return out


def cross_validate(
    train: pd.DataFrame,
    base: ModelConfig,
    grid: dict[str, dict[str, Any]],
    *,
    embedder: Any = None,
    folds: int = 2,
    log: Any = print,
) -> dict[str, dict[str, Any]]:
    """Mean fold metrics of every candidate (plus behaviour of the last fold's fit)."""
    from training.pipeline import fit

    results: dict[str, dict[str, Any]] = {}
    for name, changes in grid.items():
        if changes.get("use_embeddings") and embedder is None:
            log(f"skip {name}: no embeddings given")
            continue
        cfg = replace(base, **changes)
        scores, ndcgs, model = [], [], None
        for tr_idx, va_idx in time_folds(len(train), folds):
            tr, va = train.iloc[tr_idx], train.iloc[va_idx]
            model = fit(tr, cfg, embedder)
            m = evaluate_on(model, va, va["y"].to_numpy())
            scores.append(m["spearman"])
            ndcgs.append(m.get("ndcg10_daily") or np.nan)
        beh = run_suite(model)
        results[name] = {
            "spearman": round(float(np.mean(scores)), 4),
            "ndcg10_daily": round(float(np.nanmean(ndcgs)), 4),
            "behaviour_pairs": beh["pairs"],
            "invariance": beh["invariance"],
            "config": changes,
        }
        log(f"candidate {name}: {results[name]}")
    return results


def best(results: dict[str, dict[str, Any]]) -> str:
    """The candidate with the highest mean CV Spearman (behaviour breaks ties)."""
    return max(results, key=lambda k: (results[k]["spearman"], results[k]["behaviour_pairs"] or 0))
