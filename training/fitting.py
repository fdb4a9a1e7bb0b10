"""Fit, evaluate and gate: pure functions from cleaned data to a fitted pipeline and its metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iscore.model import MODEL_STEP, ModelConfig, blends, build_pipeline, feature_parts
from iscore.scoring import score
from training.behaviour import robustness, run_suite
from training.data import DatasetSpec, ValidationReport, fingerprint, load_dataset
from training.desk import desk_labels
from training.evaluate import (
    PRIMARY_METRIC,
    baseline_predictions,
    days_of,
    fit_baselines,
    evaluate_on,
    label_aucs,
    ranking_metrics,
    time_split,
)
from training.progress import phase, rows
from training.streams import STREAM_TOLERANCE, has_stream_labels, stream_evaluation
from training.target import dataset_target, importance_target


@dataclass(frozen=True)
class TrainOptions:
    """How labels become targets and how the hold-out is cut."""

    target: str = "percentile"
    window: str = "week"
    holdout_fraction: float = 0.2
    min_rows: int = 200
    model: ModelConfig = field(default_factory=ModelConfig)


@dataclass
class Prepared:
    """Cleaned rows with their 0-100 target, and how they were obtained."""

    spec: DatasetSpec
    df: pd.DataFrame
    report: ValidationReport
    fingerprint: str
    span: tuple[str | None, str | None] | None = None  # (min, max) time when df is not all rows


def prepare(spec: DatasetSpec, opts: TrainOptions, feedback_rows: list[dict[str, Any]] | None = None,
            feedback_weight: float = 1.0, log: Any = None) -> Prepared:
    """Load, validate and attach the importance target ``y`` (plus production feedback, if any)."""
    log = log or (lambda _msg: None)
    phase(log, "loading data", spec.path.name)
    df, rep = load_dataset(spec, min_rows=opts.min_rows)
    phase(log, "preparing target", f"{rows(len(df))}, {opts.target} within {opts.window}")
    df["y"] = dataset_target(df, spec, method=opts.target, window=opts.window)
    df["desk"] = desk_labels(df["url"]) if "url" in df.columns else np.nan
    df["origin"] = "base"
    df["weight"] = 1.0
    if feedback_rows:
        df = pd.concat([df, feedback_frame(feedback_rows, opts, feedback_weight)], ignore_index=True)
    return Prepared(spec=spec, df=df, report=rep, fingerprint=fingerprint(df))


def feedback_frame(rows: list[dict[str, Any]], opts: TrainOptions, weight: float) -> pd.DataFrame:
    """Feedback rows as training rows: 0-100 'score' labels pass through, counts become percentiles."""
    fb = pd.DataFrame(rows)
    fb["time"] = pd.to_datetime(fb["published_at"].fillna(fb["observed_at"]), utc=True)
    fb["y"] = 0.0
    for kind, idx in fb.groupby("label_kind").groups.items():
        part = fb.loc[idx]
        fb.loc[idx, "y"] = importance_target(
            part["label"], part["source"], part["time"],
            method="passthrough" if kind == "score" else opts.target, window=opts.window)
    fb["origin"] = "feedback"
    fb["weight"] = float(weight)
    return fb[["text", "label", "source", "time", "y", "origin", "weight"]]


MIN_DESK_ROWS = 100  # per desk; fewer hard- or soft-news rows than this cannot train the desk head


def desk_counts(df: pd.DataFrame) -> tuple[int, int]:
    """How many rows carry a hard-news and a soft-news desk label."""
    if "desk" not in df.columns:
        return 0, 0
    d = df["desk"].to_numpy(dtype=float)
    return int((d == 100.0).sum()), int((d == 0.0).sum())


def with_usable_desk(config: ModelConfig, df: pd.DataFrame, log: Any = print) -> ModelConfig:
    """``config``, with the desk head switched off when the data has too few desk labels for it."""
    if config.desk_weight <= 0 or config.out_of_core:
        return config
    hard, soft = desk_counts(df)
    if min(hard, soft) >= MIN_DESK_ROWS:
        return config
    log(f"desk head off: {hard} hard-news and {soft} soft-news rows (need {MIN_DESK_ROWS} of each; "
        "map a URL column whose paths name sections)"
        + ("; the magnitude prior rides on the editorial blend, so it is off too" if any(config.magnitude_prior) else ""))
    return replace(config, desk_weight=0.0)


def targets(df: pd.DataFrame, config: ModelConfig) -> np.ndarray:
    """What the regressor fits: ``y``, plus the desk label as a second column when the desk head is on."""
    y = df["y"].to_numpy(dtype=np.float64)
    if config.desk_weight > 0 and not config.out_of_core:
        if "desk" not in df.columns:
            raise ValueError("desk_weight > 0 needs a 'desk' column (prepare() derives it from the URL column); "
                             "use with_usable_desk() or desk_weight=0")
        return np.column_stack([y, df["desk"].to_numpy(dtype=np.float64)])
    return y


def fit(df: pd.DataFrame, config: ModelConfig, embedder: Any = None) -> Any:
    """Fit a fresh i-Score pipeline on rows with a ``y`` (and optional ``weight`` and ``desk``) column."""
    pipeline = build_pipeline(config, embedder)
    y = targets(df, config)
    if "weight" in df.columns and (df["weight"] != 1.0).any():
        return pipeline.fit(df, y, **{f"{MODEL_STEP}__sample_weight": df["weight"].to_numpy()})
    return pipeline.fit(df, y)


def evaluate_candidate(pipeline: Any, test: pd.DataFrame) -> dict[str, Any]:
    """Hold-out metrics (and the primary one named) plus the behavioural suite of one fitted pipeline."""
    holdout = evaluate_on(pipeline, test, test["y"].to_numpy())
    out = {"holdout": holdout, "primary": {"name": PRIMARY_METRIC, "value": holdout[PRIMARY_METRIC]},
           "behaviour": run_suite(pipeline), "robustness": robustness(pipeline)}
    # The dial's other blends, on the same rows (the engagement head alone is what the target measures).
    others = blends(pipeline)[1:]
    if others:
        out["holdout_by_blend"] = {b: evaluate_on(pipeline, test, test["y"].to_numpy(), b) for b in others}
    return out


def evaluate_baselines(train: pd.DataFrame, test: pd.DataFrame,
                       preds: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, Any]]:
    """Metrics of every baseline on the same hold-out (``preds``: their predictions on ``test``, if already made)."""
    if preds is None:
        preds = baseline_predictions(train, test, train["y"].to_numpy())
    days = days_of(test)
    out = {}
    for name, p in preds.items():
        out[name] = {**ranking_metrics(test["y"].to_numpy(), p, days), **label_aucs(test, p)}
    return out


def train_and_evaluate(
    prepared: Prepared,
    opts: TrainOptions,
    *,
    embedder: Any = None,
    cross: Prepared | None = None,
    log: Any = print,
) -> tuple[Any, dict[str, Any], pd.DataFrame]:
    """Fit on the older rows, evaluate on the newer ones (and a cross-source set).

    Returns the pipeline, its metrics and the hold-out rows it was evaluated on (the gate and the
    report use the same rows).
    """
    train, test = time_split(prepared.df, opts.holdout_fraction)
    phase(log, "fitting final model", f"{len(train):,} older rows ({len(test):,} newer held out)")
    t0 = time.perf_counter()
    pipeline = fit(train, opts.model, embedder)
    fit_seconds = time.perf_counter() - t0
    log(f"fitted in {fit_seconds:.1f}s")
    phase(log, "evaluating", f"hold-out {rows(len(test))} and the behavioural suite")
    metrics = evaluate_candidate(pipeline, test)
    phase(log, "baselines", f"3 baselines fitted on {rows(len(train))}")
    base_models = fit_baselines(train, train["y"].to_numpy())
    metrics["baselines"] = evaluate_baselines(
        train, test, baseline_predictions(train, test, train["y"].to_numpy(), base_models))
    for name, model in base_models.items():  # the same behaviour suites as the model's
        metrics["baselines"][name]["robustness"] = robustness(model)
    if "origin" in test.columns and (test["origin"] == "feedback").any():
        fb = test[test["origin"] == "feedback"].reset_index(drop=True)
        metrics["holdout_feedback"] = evaluate_on(pipeline, fb, fb["y"].to_numpy())
    if cross is not None:
        phase(log, "cross-source evaluation", f"{rows(len(cross.df))} of {cross.spec.path.name}")
        base_preds = baseline_predictions(train, cross.df, train["y"].to_numpy(), base_models)
        metrics["cross_source"] = {
            "data": str(cross.spec.path.name),
            "model": evaluate_on(pipeline, cross.df, cross.df["y"].to_numpy()),
            "baselines": evaluate_baselines(train, cross.df, base_preds),
        }
        stream = stream_metrics(pipeline, cross, base_preds)
        if stream is not None:
            metrics["stream"] = stream
            log(f"stream windows: {stream['windows']}; top-ten share of outlet top picks "
                f"{stream['model'].get('window_top10_share')} (random {stream['random']['window_top10_share']})")
    metrics["fit_seconds"] = round(fit_seconds, 2)
    metrics["split"] = {
        "train_rows": len(train), "test_rows": len(test),
        "train_max_time": _iso(train["time"].max()), "test_min_time": _iso(test["time"].min()),
        "test_max_time": _iso(test["time"].max()),
    }
    return pipeline, metrics, test


def stream_metrics(pipeline: Any, cross: Prepared,
                   baseline_preds: dict[str, np.ndarray] | None = None) -> dict[str, Any] | None:
    """Windowed top-pick metrics (training/streams.py) of ``pipeline`` and the baselines on the cross set;
    None when it has no time, source and editorial flag or no window qualifies."""
    df = cross.df
    if not has_stream_labels(df):
        return None
    others = blends(pipeline)[1:]
    preds = {"model": score(pipeline, df), **{f"blend {b}": score(pipeline, df, b) for b in others},
             **(baseline_preds or {})}
    ev = stream_evaluation(df, preds)
    if not ev["windows"]:
        return None
    models = ev.pop("models")
    model = models.pop("model")
    by_blend = {b: models.pop(f"blend {b}") for b in others}
    random = {"window_top10_share": model["window_random_share"], "window_ndcg10": model["window_random_ndcg10"]}
    out = {"data": str(cross.spec.path.name), **ev, "model": model, "baselines": models, "random": random}
    if by_blend:
        out["model_by_blend"] = by_blend
    return out


def _iso(t: Any) -> str | None:
    return None if t is None or pd.isna(t) else pd.Timestamp(t).isoformat()


@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger may replace the champion, and why."""

    promote: bool
    reason: str
    challenger: float | None
    champion: float | None


def gate(
    challenger: dict[str, Any],
    champion: dict[str, Any] | None,
    *,
    tolerance: float = 0.01,
    behaviour_tolerance: float = 0.03,
    stream_tolerance: float = STREAM_TOLERANCE,
) -> GateDecision:
    """Promote unless the challenger is worse than the champion beyond the tolerances.

    The real-stream check (window top-ten share of outlet top picks) runs only when both sides were
    measured on a cross set's windows; otherwise it is skipped and the reason says so.
    """
    c = challenger["holdout"].get(PRIMARY_METRIC)
    if c is None or not np.isfinite(c):
        return GateDecision(False, f"challenger has no {PRIMARY_METRIC}", c, None)
    if champion is None:
        return GateDecision(True, "no champion in production", c, None)
    p = champion["holdout"].get(PRIMARY_METRIC)
    if p is not None and c < p - tolerance:
        return GateDecision(False, f"{PRIMARY_METRIC} {c:.4f} < champion {p:.4f} - {tolerance}", c, p)
    cb, pb = challenger["behaviour"].get("pairs"), champion["behaviour"].get("pairs")
    if cb is not None and pb is not None and cb < pb - behaviour_tolerance:
        return GateDecision(False, f"behaviour pairs {cb:.3f} < champion {pb:.3f} - {behaviour_tolerance}", c, p)
    for part in ("invariance", "direction"):
        # Few checks per part: losing one of them is tolerated, losing two is a regression.
        cv, pv, n = challenger["behaviour"].get(part), champion["behaviour"].get(part), challenger["behaviour"].get(f"{part}_n")
        if cv is not None and pv is not None and n and cv < pv - 1.0 / n - 1e-9:
            return GateDecision(False, f"behaviour {part} {cv:.3f} < champion {pv:.3f} (more than one of {n} checks lost)", c, p)
    cs, ps = _window_share(challenger), _window_share(champion)
    if cs is None or ps is None:
        stream_note = "window top-ten share check skipped (no cross set with stream windows)"
    elif cs < ps - stream_tolerance:
        return GateDecision(False, f"window top-ten share {cs:.4f} < champion {ps:.4f} - {stream_tolerance}", c, p)
    else:
        stream_note = f"window top-ten share {cs:.4f} vs champion {ps:.4f} (tolerance {stream_tolerance})"
    return GateDecision(True, f"{PRIMARY_METRIC} {c:.4f} vs champion {p}; {stream_note}", c, p)


def _window_share(metrics: dict[str, Any]) -> float | None:
    """The mean window top-ten share recorded in ``metrics``, or None when it was not measured."""
    v = (metrics.get("stream") or {}).get("model", {}).get("window_top10_share")
    return None if v is None or not np.isfinite(v) else float(v)


def manifest_for(prepared: Prepared, opts: TrainOptions, metrics: dict[str, Any], command: str,
                 data_dir: Path | None = None) -> dict[str, Any]:
    """The manifest fields that describe how a version was made (registry adds the rest).

    The data path is recorded relative to ``data_dir`` (else as a file name) and ``command``
    must already be redacted (:func:`iscore.redact.public_argv`): manifests are public.
    """
    df = prepared.df
    return {
        "data": {
            "spec": prepared.spec.describe(data_dir),
            "fingerprint": prepared.fingerprint,
            "validation": prepared.report.to_dict(),
            "rows": {"base": int(prepared.report.kept),
                     "feedback": int((df["origin"] == "feedback").sum()) if "origin" in df.columns else 0},
            "min_time": prepared.span[0] if prepared.span else _iso(df["time"].min()),
            "max_time": prepared.span[1] if prepared.span else _iso(df["time"].max()),
        },
        "target": {"method": opts.target, "window": opts.window},
        "model_config": opts.model.to_dict(),
        "holdout_fraction": opts.holdout_fraction,
        "metrics": metrics,
        "command": command,
    }


def feature_summary(pipeline: Any) -> dict[str, Any]:
    """How many features each part of the union produces (for the manifest)."""
    out: dict[str, Any] = {}
    try:
        for name, part in feature_parts(pipeline).items():
            out[name] = int(len(part.get_feature_names_out()))
    except (AttributeError, KeyError, ValueError):
        pass
    return out
