"""Out-of-core training: two streamed passes over a file too large for memory.

Pass 1 reads only what the target needs (label, source, time, a text hash) chunk by chunk,
validates rows exactly as the in-memory path does, drops cross-chunk duplicates and page
templates, computes the 0-100 target and fits the small stateful parts (stat scaler, source
encoder). Pass 2 streams the texts again through stateless hashing features into an SGD
regressor's ``partial_fit``; the newest rows (by time) are kept aside as the hold-out. Memory is
bounded by the chunk size plus a few numbers per row, not by the text.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from iscore.features import HeadlineStats
from iscore.model import add_stats_scaler, build_pipeline, calibrated_model, feature_parts, feature_union
from training.data import DataError, DatasetSpec, ValidationReport, clean, read_raw
from training.progress import phase
from training.target import dataset_target

REFERENCE_ROWS = 100_000  # training rows whose predictions define the 0-100 scale


def _text_keys(df: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(df["text"] + "\x1f" + df["source"] + "\x1f" + df["time"].astype(str)
                                      + "\x1f" + df["label"].astype(str), index=False).to_numpy()


def _chunks(spec: DatasetSpec, chunksize: int):
    spec_nb = replace(spec, boilerplate_min_count=None)  # templates need global counts: done here
    for raw in read_raw(spec, chunksize=chunksize):
        yield clean(raw.reset_index(drop=True), spec_nb)


def train_streaming(spec: DatasetSpec, opts: Any, chunksize: int = 100_000, log: Any = print) -> dict[str, Any]:
    """Fit an out-of-core pipeline; returns pipeline, metrics inputs and the hold-out rows."""
    config = replace(opts.model, out_of_core=True)
    pipeline = build_pipeline(config)
    features = feature_union(pipeline)
    parts = feature_parts(pipeline)
    report = ValidationReport()
    seen: set[int] = set()
    labels, sources, times, lower_keys, keep = [], [], [], [], []
    stats = HeadlineStats().fit(None)
    scaler = StandardScaler()
    fp = hashlib.sha256()
    phase(log, "out-of-core pass 1", f"validate, target and scaler over {spec.path.name} in chunks of {chunksize:,}")
    for i, (df, rep) in enumerate(_chunks(spec, chunksize)):
        keys = _text_keys(df)
        fresh = np.fromiter((k not in seen and not seen.add(k) for k in keys), bool, len(keys))
        dup = ~fresh
        rep.dropped["duplicate"] = rep.dropped.get("duplicate", 0) + int(dup.sum())
        rep.kept -= int(dup.sum())
        report.merge(rep)
        keep.append(fresh)
        d = df[fresh]
        labels.append(d[[c for c in d.columns if c == "label" or c.startswith("label:")]].reset_index(drop=True))
        sources.append(d["source"].to_numpy(object))
        times.append(d["time"].to_numpy())
        lower_keys.append(pd.util.hash_pandas_object(d["text"].str.lower(), index=False).to_numpy())
        fp.update(keys[fresh].tobytes())
        if len(d) and "stats" in parts:
            scaler.partial_fit(stats.transform(d))
        log(f"pass 1: chunk {i + 1}, {report.read} rows read, {report.kept} kept")
    if not labels:
        raise DataError(f"{spec.path}: no rows")
    label_frame = pd.concat(labels, ignore_index=True)
    label = label_frame["label"].to_numpy(float)
    source = np.concatenate(sources)
    when = pd.to_datetime(np.concatenate(times), utc=True) if spec.mapping.time else None
    lk = np.concatenate(lower_keys)
    template = np.zeros(len(label), bool)
    if spec.boilerplate_min_count:
        _, inv, counts = np.unique(lk, return_inverse=True, return_counts=True)
        template = counts[inv] >= spec.boilerplate_min_count
        if template.any():
            report.dropped["boilerplate_text"] = int(template.sum())
            report.kept -= int(template.sum())
    if report.kept < opts.min_rows:
        raise DataError(f"only {report.kept} valid rows remain (need {opts.min_rows}): {report.summary()}")
    ok = ~template
    y = np.full(len(label), np.nan)
    frame = label_frame[ok].reset_index(drop=True).assign(
        source=source[ok], time=pd.Series(when[ok]) if when is not None else pd.NaT)
    y[ok] = dataset_target(frame, spec, method=opts.target, window=opts.window)
    if when is not None:
        cutoff = np.quantile(when[ok].asi8, 1.0 - opts.holdout_fraction)
        is_test = when.asi8 > cutoff
    else:
        is_test = np.arange(len(label)) >= int(len(label) * (1.0 - opts.holdout_fraction))
    if "source" in parts:
        parts["source"].fit(pd.DataFrame({"source": source[ok & ~is_test]}))
    if "stats" in parts:
        add_stats_scaler(pipeline, scaler)
    reg = calibrated_model(pipeline)
    n_train = int((ok & ~is_test).sum())
    ref_every = max(1, n_train // REFERENCE_ROWS)
    reference, test_rows = [], []
    offset = 0
    phase(log, "out-of-core pass 2", f"stream {n_train:,} training rows into the SGD regressor")
    for i, (df, _) in enumerate(_chunks(spec, chunksize)):
        df = df[keep[i]].reset_index(drop=True)
        sl = slice(offset, offset + len(df))
        offset += len(df)
        m_ok, m_test, yy = ok[sl], is_test[sl], y[sl]
        train = df[m_ok & ~m_test]
        if len(train):
            X = features.transform(train)
            reg.partial_fit_raw(X, (yy[m_ok & ~m_test] - 50.0) / 50.0)
            pos = np.arange(len(train))
            reference.append(train.iloc[pos[pos % ref_every == 0]])
        test = df[m_ok & m_test].assign(y=yy[m_ok & m_test])
        if len(test):
            test_rows.append(test)
        log(f"pass 2: chunk {i + 1}, {offset} rows streamed")
    ref = pd.concat(reference, ignore_index=True)
    reg.set_reference(reg.predict_raw(features.transform(ref)))
    test_df = pd.concat(test_rows, ignore_index=True) if test_rows else pd.DataFrame(columns=["text", "y"])
    return {
        "pipeline": pipeline, "report": report, "fingerprint": fp.hexdigest(), "test": test_df,
        "train_rows": n_train, "reference_rows": len(ref),
        "min_time": None if when is None else str(when[ok].min()), "max_time": None if when is None else str(when[ok].max()),
    }
