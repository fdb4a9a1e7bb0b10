"""Pure scoring functions: records in, 0-100 scores, tiers, rankings, explanations and reply items out."""

from __future__ import annotations

import functools
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn

from iscore.model import feature_union, fitted_regressor, known_words, median_score, trained_sources
from iscore.sources import normalize_source
from iscore.triage import FLAGS, shrink, triage

REPLY_FLAGS = (*FLAGS, "unknown_source")  # every flag a reply item can carry


def score(pipeline: Any, records: Sequence[Any]) -> np.ndarray:
    """i-Scores (0-100, finite) of ``records`` in order."""
    if len(records) == 0:
        return np.zeros(0, dtype=np.float64)
    # Inputs come from our own validated records; skipping sklearn's per-call checks halves the
    # cost of scoring one headline.
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        out = np.asarray(pipeline.predict(records), dtype=np.float64)
    return np.clip(np.nan_to_num(out, nan=0.0, posinf=100.0, neginf=0.0), 0.0, 100.0)


def tier(i_score: float, red_threshold: float) -> str:
    """'red' at or above the threshold, else 'blue'."""
    return "red" if i_score >= red_threshold else "blue"


def rank_order(scores: np.ndarray, keys: Sequence[str]) -> list[int]:
    """Indices from highest to lowest score; ties broken by key, then input position."""
    return sorted(range(len(scores)), key=lambda i: (-round(float(scores[i]), 6), keys[i], i))


@functools.lru_cache(maxsize=4)  # feature names of a big vocabulary take ~50 ms to build
def _linear_parts(pipeline: Any) -> tuple[Any, np.ndarray, np.ndarray] | None:
    """(feature step, coefficients, feature names) when the model is linear in its features."""
    try:
        features = feature_union(pipeline)
        coef = np.ravel(fitted_regressor(pipeline).coef_)
        names = np.asarray(features.get_feature_names_out(), dtype=object)
    except (AttributeError, KeyError, ValueError):
        return None
    if coef.shape[0] != names.shape[0]:
        return None
    return features, coef, names


def explain(pipeline: Any, records: Sequence[Any], top: int = 3) -> list[dict[str, list[dict[str, Any]]]]:
    """Per record, the features that pushed its raw prediction up and down most.

    Contribution of a feature = its value times the model coefficient, so up and down sum (with
    the intercept) to the raw prediction. Empty lists where the model is not linear.
    """
    parts = _linear_parts(pipeline)
    if parts is None or len(records) == 0:
        return [{"up": [], "down": []} for _ in records]
    features, coef, names = parts
    X = features.transform(records)
    out = []
    for i in range(X.shape[0]):
        row = X[i]
        if hasattr(row, "indices"):
            idx, vals = row.indices, row.data
        else:
            row = np.ravel(row)
            idx = np.flatnonzero(row)
            vals = row[idx]
        contrib = vals * coef[idx]
        order = np.argsort(contrib)
        up = [j for j in order[::-1][:top] if contrib[j] > 0]
        down = [j for j in order[:top] if contrib[j] < 0]
        out.append({
            "up": [{"feature": str(names[idx[j]]), "contribution": round(float(contrib[j]), 4)} for j in up],
            "down": [{"feature": str(names[idx[j]]), "contribution": round(float(contrib[j]), 4)} for j in down],
        })
    return out


def model_record(text: str, source: str | None) -> dict[str, str]:
    """The record the pipeline takes, with the source as users write it resolved to its key."""
    return {"text": text, "source": normalize_source(source).key if source else ""}


@dataclass(frozen=True)
class InputContext:
    """What triage needs from a model: its vocabulary, its trained source keys, its median score."""

    known_words: Container[str]
    trained_sources: Container[str]
    median: float

    @classmethod
    def of(cls, pipeline: Any) -> "InputContext":
        """The context of a fitted i-Score pipeline."""
        return cls(known_words(pipeline), trained_sources(pipeline), median_score(pipeline))


def reply_items(pipeline: Any, headlines: Sequence[tuple[str, str, str | None]], *, red_threshold: float,
                explain_top: int, with_explain: bool, context: InputContext | None = None) -> list[dict[str, Any]]:
    """Reply items ``{id, text, i_score, tier, flags[, explain]}`` for ``(id, text, source)``, in order.

    Each headline is triaged first (iscore/triage.py): its flags go in the reply, and a score built
    on little evidence (too short, a URL, another language, words the model never saw) is pulled
    toward the median headline's score by ``shrink``. ``unknown_source`` says a given source has no
    weight in this model (unknown outlet, or too rare in the training data), so it did not count.
    """
    records = [model_record(text, source) for _, text, source in headlines]
    ctx = context or InputContext.of(pipeline)
    items = []
    for (hid, text, source), record, value in zip(headlines, records, score(pipeline, records)):
        t = triage(text, known=ctx.known_words.__contains__)
        flags = list(t.flags)
        if source and record["source"] not in ctx.trained_sources:
            flags.append("unknown_source")
        # The tier follows the score the client sees, not the raw value.
        i_score = round(shrink(float(value), t.evidence, ctx.median), 1)
        items.append({"id": hid, "text": text, "i_score": i_score, "tier": tier(i_score, red_threshold),
                      "flags": flags})
    if with_explain:
        for item, why in zip(items, explain(pipeline, records, explain_top)):
            item["explain"] = why
    return items
