"""Model selection by time-ordered cross-validation on the training part only.

The final hold-out (newest rows) is never looked at here: each fold trains on everything older
than its validation block, like a retrain that scores tomorrow's news. Behaviour during selection
is measured on the development suite (behaviour_dev.json); behaviour-v1 stays the test.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from iscore.model import ModelConfig
from training.behaviour import DEV_SUITE_PATH, ROBUST_DEV_SUITE_PATH, load_suite, run_robust_suite, run_suite
from training.evaluate import evaluate_on
from training.progress import phase

DEFAULT_GRID: dict[str, dict[str, Any]] = {
    "words a10": {"alpha": 10.0, "use_embeddings": False},
    "words a30": {"alpha": 30.0, "use_embeddings": False},
    "words a100": {"alpha": 100.0, "use_embeddings": False},
    "words+emb a30": {"alpha": 30.0, "use_embeddings": True, "embedding_weight": 3.0},
    "words+emb a100": {"alpha": 100.0, "use_embeddings": True, "embedding_weight": 3.0},
    "words+emb(x10) a100": {"alpha": 100.0, "use_embeddings": True, "embedding_weight": 10.0},
    "emb only a3": {"alpha": 3.0, "use_embeddings": True, "use_words": False},
}

# Second stage, on the features chosen by the first: how much the desk (hard vs soft news) head
# counts against the engagement head, and its regularisation.
DESK_GRID: dict[str, dict[str, Any]] = {
    f"desk {w:g} a{a:g}": {"desk_weight": w, "desk_alpha": a}
    for w in (0.25, 0.5, 1.0, 2.0) for a in (30.0, 100.0)
}

# The behavioural target of issue #7: at least 95 % of clearly ordered pairs right.
PAIRS_TARGET = 0.95


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
    stream: pd.DataFrame | None = None,
) -> dict[str, dict[str, Any]]:
    """Mean fold metrics of every candidate (plus dev-suite behaviour and, with a ``stream`` frame,
    the window top-pick figures of the last fold's fit; reported only, never used to choose)."""
    from training.fitting import fit

    dev_suite = load_suite(DEV_SUITE_PATH)
    robust_dev = load_suite(ROBUST_DEV_SUITE_PATH)
    results: dict[str, dict[str, Any]] = {}
    for i, (name, changes) in enumerate(grid.items(), 1):
        if changes.get("use_embeddings") and embedder is None:
            log(f"skip {name}: no embeddings given")
            continue
        phase(log, f"selection candidate {i}/{len(grid)}", f"{name}, {folds} folds of {len(train):,} rows")
        cfg = replace(base, **changes)
        scores, ndcgs, aucs, model = [], [], [], None
        for tr_idx, va_idx in time_folds(len(train), folds):
            tr, va = train.iloc[tr_idx], train.iloc[va_idx]
            model = fit(tr, cfg, embedder)
            m = evaluate_on(model, va, va["y"].to_numpy())
            scores.append(m["spearman"])
            ndcgs.append(_nan_if_none(m.get("ndcg10_daily")))
            aucs.append(_nan_if_none(m.get("desk_auc")))
        beh = run_suite(model, dev_suite)
        rob = run_robust_suite(model, robust_dev)  # recorded for every candidate; not (yet) used to choose
        results[name] = {
            "spearman": round(float(np.mean(scores)), 4),
            "ndcg10_daily": round(float(np.nanmean(ndcgs)), 4),
            "desk_auc": None if np.all(np.isnan(aucs)) else round(float(np.nanmean(aucs)), 4),
            "dev_pairs": beh["pairs"],
            "dev_invariance": beh["invariance"],
            "dev_name_effect": rob.get("name_effect"),
            "dev_surface_effect": rob.get("surface_effect"),
            "dev_magnitude": rob.get("magnitude"),
            "config": changes,
        }
        if stream is not None:
            results[name].update(_stream_figures(model, stream))
        log(f"candidate {name}: {results[name]}")
    return results


def _stream_figures(model: Any, stream: pd.DataFrame) -> dict[str, float | None]:
    """Window top-ten share and NDCG@10 of ``model`` on ``stream`` (empty when no window qualifies)."""
    from iscore.scoring import score
    from training.streams import has_stream_labels, stream_evaluation

    if not has_stream_labels(stream):
        return {}
    m = stream_evaluation(stream, {"m": score(model, stream)})["models"].get("m", {})
    return {k: m[k] for k in ("window_top10_share", "window_ndcg10") if k in m}


def _nan_if_none(value: float | None) -> float:
    return np.nan if value is None else float(value)


def best(results: dict[str, dict[str, Any]]) -> str:
    """The candidate with the highest mean CV Spearman (dev-suite behaviour breaks ties)."""
    return max(results, key=lambda k: (results[k]["spearman"], results[k]["dev_pairs"] or 0))


def best_meeting_target(results: dict[str, dict[str, Any]], target: float = PAIRS_TARGET) -> str:
    """Among candidates whose dev-suite pair rate reaches ``target``, the best CV Spearman;
    when none does, the best pair rate (CV Spearman breaks ties)."""
    meeting = {k: v for k, v in results.items() if (v["dev_pairs"] or 0) >= target}
    if meeting:
        return best(meeting)
    return max(results, key=lambda k: (results[k]["dev_pairs"] or 0, results[k]["spearman"]))


def select(
    train: pd.DataFrame, base: ModelConfig, *, embedder: Any = None, log: Any = print,
    stream: pd.DataFrame | None = None,
) -> tuple[dict[str, dict[str, Any]], ModelConfig]:
    """Every candidate's CV results and the chosen config, in two stages.

    1. Features and ridge alpha by CV Spearman, engagement only (DEFAULT_GRID).
    2. When ``base`` has the desk head on: desk weight and alpha (DESK_GRID) on the chosen features,
       by :func:`best_meeting_target` over the stage-1 winner and the desk candidates.
    """
    engagement_only = replace(base, desk_weight=0.0)
    results = cross_validate(train, engagement_only, DEFAULT_GRID, embedder=embedder, log=log, stream=stream)
    first = best(results)
    model = replace(engagement_only, **results[first]["config"])
    log(f"features: {first} (best time-ordered CV Spearman)")
    if base.desk_weight <= 0:
        return results, model
    desk = {f"{first} + {k}": v
            for k, v in cross_validate(train, model, DESK_GRID, embedder=embedder, log=log, stream=stream).items()}
    pick = best_meeting_target({first: results[first], **desk})
    log(f"desk head: {pick} (best CV Spearman among those meeting the dev-suite pair target)")
    results.update(desk)
    if pick != first:
        model = replace(model, **desk[pick]["config"])
    return results, model
