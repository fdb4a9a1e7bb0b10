"""Human report: one self-contained HTML page with metric tables and plots."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

METRIC_COLUMNS = ("spearman", "kendall", "ndcg10_daily", "mae", "spearman_within_source", "desk_auc", "editorial_auc")
# Real-stream columns (training/streams.py), measured on the cross set's time windows.
STREAM_COLUMNS = ("window_top10_share", "window_ndcg10")


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))


def _table(rows: dict[str, dict[str, Any]], columns: tuple[str, ...] = METRIC_COLUMNS) -> str:
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_fmt(m.get(c))}</td>" for c in columns) + "</tr>"
        for name, m in rows.items()
    )
    return f"<table><tr><th>model</th>{head}</tr>{body}</table>"


def _plots(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].hist(y_pred, bins=50, color="#3366cc")
    axes[0].set(title="i-Score distribution (hold-out)", xlabel="i-Score", ylabel="headlines")
    axes[1].hexbin(y_pred, y_true, gridsize=40, cmap="Blues", mincnt=1)
    axes[1].set(title="predicted vs actual target", xlabel="i-Score", ylabel="target (0-100)")
    bins = np.clip((y_pred // 10).astype(int), 0, 9)
    means = [y_true[bins == b].mean() if np.any(bins == b) else np.nan for b in range(10)]
    axes[2].plot(np.arange(5, 100, 10), means, marker="o")
    axes[2].plot([0, 100], [0, 100], "--", color="grey")
    axes[2].set(title="calibration: mean target per score decile", xlabel="i-Score", ylabel="mean target")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return f'<img alt="plots" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def render(manifest: dict[str, Any], y_true: np.ndarray | None = None, y_pred: np.ndarray | None = None) -> str:
    """The HTML report of one version (plots when hold-out predictions are given)."""
    m = manifest.get("metrics", {})
    rows, columns, title = _holdout_rows(m)
    parts = [
        f"<h1>i-Score model {html.escape(str(manifest.get('version', '(unpublished)')))}</h1>",
        f"<h2>{title}</h2>", _table(rows, columns),
    ]
    stream = m.get("stream")
    if stream:
        parts.append(f"<p>window_* columns: {html.escape(str(stream.get('data', '')))}, {stream.get('windows')} windows "
                     f"({html.escape(str(stream.get('rule', '')))}); window_top10_share = share of each window's top "
                     f"{stream.get('k', 10)} that are the outlets' own top picks, window_ndcg10 = NDCG@{stream.get('k', 10)} "
                     "with top picks as relevance, both averaged over windows; the random row is the exact expectation "
                     "of a random order.</p>")
    cross = m.get("cross_source")
    if cross:
        parts += [f"<h2>Cross-source: {html.escape(cross['data'])}</h2>",
                  _table({"i-Score model": cross["model"], **cross.get("baselines", {})})]
    b = m.get("behaviour", {})
    parts += [
        "<h2>Behavioural suite</h2>",
        f"<p>pairs {_fmt(b.get('pairs'))} of {b.get('pairs_n')}, invariance {_fmt(b.get('invariance'))}, "
        f"direction {_fmt(b.get('direction'))}</p>",
        "<ul>" + "".join(f"<li>{html.escape(a)} &gt; {html.escape(c)}</li>" for a, c in b.get("failed_pairs", [])) + "</ul>",
    ]
    parts += _robust_section(m)
    if m.get("candidates"):
        cand_cols = ("spearman", "ndcg10_daily", "desk_auc", "dev_pairs", "dev_invariance")
        if any("dev_name_effect" in c for c in m["candidates"].values()):
            cand_cols += ("dev_name_effect", "dev_surface_effect", "dev_magnitude")
        if any("window_top10_share" in c for c in m["candidates"].values()):
            cand_cols += STREAM_COLUMNS  # of each candidate's last-fold fit; reported, never used to choose
        parts += ["<h2>Candidates (time-ordered cross-validation)</h2>", _table(m["candidates"], cand_cols)]
    val = manifest.get("data", {}).get("validation")
    if val:
        parts += ["<h2>Data validation</h2>", f"<pre>{html.escape(str(val))}</pre>"]
    if y_true is not None and y_pred is not None and len(y_true):
        parts += ["<h2>Plots</h2>", _plots(np.asarray(y_true, float), np.asarray(y_pred, float))]
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>i-Score report</title><style>{style}</style></head><body>{''.join(parts)}</body></html>"


def robust_rows(m: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One row of robustness figures (held-out suite, then dev_*) per model that has them: the model,
    each baseline and the champion."""
    from training.behaviour import robust_row

    rows = {}
    if m.get("robustness"):
        rows["i-Score model"] = robust_row(m["robustness"])
    for name, b in (m.get("baselines") or {}).items():
        if b.get("robustness"):
            rows[name] = robust_row(b["robustness"])
    gate = m.get("gate") or {}
    champ = gate.get("champion_metrics") or {}
    if champ.get("robustness"):
        rows[f"champion {gate.get('champion')}"] = robust_row(champ["robustness"])
    return rows


def _robust_section(m: dict[str, Any]) -> list[str]:
    """The robustness table (issue 14: names, surface, magnitude), or nothing when not measured."""
    from training.behaviour import MAGNITUDE_TARGET, NAME_EFFECT_TARGET, ROBUST_COLUMNS, SURFACE_EFFECT_TARGET

    rows = robust_rows(m)
    if not rows:
        return []
    test = (m.get("robustness") or {}).get("test") or {}
    columns = ROBUST_COLUMNS + tuple(f"dev_{c}" for c in ROBUST_COLUMNS)
    return [
        "<h2>Robustness and magnitude</h2>",
        f"<p>{html.escape(str(test.get('suite', '')))} (held-out, reported only) and dev_* (development suite): "
        f"name_effect = mean over templates of the largest score change swapping one name for another causes "
        f"(target &le; {NAME_EFFECT_TARGET:g}; name_ok = share of templates within it); surface_effect = the same "
        f"for ALL CAPS, lower case, a trailing '!', 'BREAKING:' and quotes (target &le; {SURFACE_EFFECT_TARGET:g}); "
        f"magnitude = share of hard-news pairs where the bigger story scores higher (target &ge; "
        f"{MAGNITUDE_TARGET:.0%}).</p>",
        _table(rows, columns),
        "<ul>" + "".join(f"<li>{html.escape(a)} &gt; {html.escape(c)}</li>"
                         for a, c in test.get("failed_magnitude", [])) + "</ul>",
    ]


def _holdout_rows(m: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], tuple[str, ...], str]:
    """The one table of hold-out metrics, with the stream columns beside them when a cross set gave windows."""
    rows = {"i-Score model": dict(m.get("holdout", {})), **{k: dict(v) for k, v in m.get("baselines", {}).items()}}
    title = "Time-ordered hold-out (train on older, test on newer)"
    stream = m.get("stream")
    champ = (m.get("gate") or {}).get("champion_metrics")
    if champ:
        rows[f"champion {(m.get('gate') or {}).get('champion')}"] = dict(champ.get("holdout", {}))
    if not stream:
        return rows, METRIC_COLUMNS, title
    rows["i-Score model"].update(stream.get("model", {}))
    for name, figures in stream.get("baselines", {}).items():
        rows.setdefault(name, {}).update(figures)
    if champ and champ.get("stream"):
        rows[f"champion {(m.get('gate') or {}).get('champion')}"].update(champ["stream"].get("model", {}))
    rows["random (expectation)"] = dict(stream.get("random", {}))
    return rows, METRIC_COLUMNS + STREAM_COLUMNS, title + " and real-stream windows"


def unwritable_dir_reason(path: Path) -> str | None:
    """Why ``path`` cannot become a directory we write into, or None when it can (nothing is created)."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{probe} is a file, not a directory" if probe == path else f"{probe} is a file, so {path} cannot be a directory in it"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None
