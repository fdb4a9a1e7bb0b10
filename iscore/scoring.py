"""Pure scoring functions: records in, 0-100 scores, tiers, rankings, explanations and reply items out."""

from __future__ import annotations

import functools
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import sklearn

from iscore.features import NAME_TOKEN, PROMINENT_TOKEN, HeadlineStats, StaticEmbedder, column
from iscore.model import (blends, calibrated_model, feature_union, known_words, linear_terms, median_score,
                          part_columns, trained_sources)
from iscore.sources import normalize_source
from iscore.triage import FLAGS, Triage, shrink, triage

REPLY_FLAGS = (*FLAGS, "unknown_source")  # every flag a reply item can carry


def score(pipeline: Any, records: Sequence[Any], blend: str | None = None) -> np.ndarray:
    """i-Scores (0-100, finite) of ``records`` in order; ``blend`` one of the model's blends (default its own)."""
    if len(records) == 0:
        return np.zeros(0, dtype=np.float64)
    # Inputs come from our own validated records; skipping sklearn's per-call checks halves the
    # cost of scoring one headline.
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        if blend is None or blend == blends(pipeline)[0]:
            out = np.asarray(pipeline.predict(records), dtype=np.float64)
        else:
            out = calibrated_model(pipeline).predict_blend(feature_union(pipeline).transform(records), blend)
    return np.clip(np.nan_to_num(out, nan=0.0, posinf=100.0, neginf=0.0), 0.0, 100.0)


def tier(i_score: float, red_threshold: float) -> str:
    """'red' at or above the threshold, else 'blue'."""
    return "red" if i_score >= red_threshold else "blue"


def rank_order(scores: np.ndarray, keys: Sequence[str]) -> list[int]:
    """Indices from highest to lowest score; ties broken by key, then input position."""
    return sorted(range(len(scores)), key=lambda i: (-round(float(scores[i]), 6), keys[i], i))


EXPLAIN_KINDS = ("word", "phrase", "signal", "source")  # what an explain entry can name


@dataclass(frozen=True)
class Contribution:
    """One readable term of a raw prediction: a word, a phrase, a headline signal or the source."""

    feature: str
    kind: str
    value: float


@dataclass(frozen=True)
class _Explainer:
    """What explaining a linear pipeline needs, built once per pipeline (feature names cost ~50 ms)."""

    features: Any
    coef: np.ndarray
    intercept: float
    labels: list[tuple[str, str]]  # (kind, label) of every column; stats and semantic columns are read per row
    stats: slice | None
    stats_part: Any  # the HeadlineStats that names each statistic for a given headline
    semantic: slice | None
    embedder: Any
    projection: np.ndarray | None  # every vocabulary vector . the semantic coefficients


def _column_labels(part: str, names: np.ndarray) -> list[tuple[str, str]]:
    if part == "words":
        # NAME_TOKEN stands for any run of names (HeadlineCleaner): say so rather than show the token.
        return [("phrase" if " " in n else "word",
                 str(n).replace(PROMINENT_TOKEN, "(a prominent name)").replace(NAME_TOKEN, "(a name)")) for n in names]
    if part == "source":
        return [("source", f"source: {str(n).partition('=')[2]}") for n in names]
    return [("signal", f"{part}: {n}") for n in names]  # stats (labelled per row), char n-grams, anything else


@functools.lru_cache(maxsize=8)
def _explainer(pipeline: Any, blend: str | None = None) -> _Explainer | None:
    """The explainer of a pipeline that is linear in its features; None for any other model."""
    try:
        coef, intercept = linear_terms(pipeline, blend)
        parts = part_columns(pipeline)
    except (AttributeError, KeyError, ValueError):
        return None
    labels: list[tuple[str, str]] = []
    stats = stats_part = semantic = embedder = projection = None
    for part, transformer, names in parts:
        cols = slice(len(labels), len(labels) + len(names))
        first = transformer.steps[0][1] if hasattr(transformer, "steps") else transformer
        if part == "stats" and isinstance(first, HeadlineStats) and len(names) == len(first.names_out()):
            stats, stats_part = cols, first
        elif part == "semantic" and isinstance(transformer, StaticEmbedder):
            semantic, embedder = cols, transformer
        labels.extend(_column_labels(part, names))
    if len(labels) != coef.shape[0]:
        return None
    if semantic is not None:
        projection = embedder.projection(coef[semantic])
    return _Explainer(feature_union(pipeline), coef, intercept, labels, stats, stats_part, semantic, embedder,
                      projection)


def contributions(pipeline: Any, records: Sequence[Any], blend: str | None = None, *,
                  scorer: Any = None) -> list[list[Contribution]] | None:
    """Per record, every readable term of its raw prediction; None when the model is not linear.

    The terms and the intercept (``linear_terms(pipeline)[1]``) sum to the raw prediction. A column's
    term is its value times its coefficient. Word and phrase columns (TF-IDF) are named by their
    text, headline statistics by what they say of this headline ("question mark", "length: 9 words"),
    the source one-hot by "source: KEY". The static word vectors ("semantic", ``weight * s / |s|`` with
    ``s`` the sum of the token vectors) are not named by dimension: their total is split over the
    tokens that carry it (StaticEmbedder.token_shares), and a word's share there is added to its
    TF-IDF term, so "kills" is one entry.
    """
    ex = _explainer(pipeline, blend)
    if ex is None:
        return None
    if len(records) == 0:
        return []
    # A compiled scorer of this pipeline builds the same matrix without scikit-learn's per-call costs.
    X = ex.features.transform(records) if scorer is None else scorer.matrix(records)
    X = X.tocsr() if sp.issparse(X) else sp.csr_matrix(X)
    # Every stored value times its coefficient at once; rows are then slices of these arrays.
    cols, terms = X.indices, np.asarray(X.data, dtype=np.float64) * ex.coef[X.indices]
    if ex.semantic is not None:  # replaced by the shares of its tokens below
        keep = (cols < ex.semantic.start) | (cols >= ex.semantic.stop)
        bounds = np.concatenate(([0], np.cumsum(keep)))[X.indptr]
        cols, terms = cols[keep], terms[keep]
    else:
        bounds = X.indptr
    texts = column(records, "text")
    out = []
    for i, text in enumerate(texts):
        idx, row_terms = cols[bounds[i]:bounds[i + 1]], terms[bounds[i]:bounds[i + 1]]
        stat_words = ex.stats_part.labels(text) if ex.stats is not None else None
        totals: dict[tuple[str, str], float] = {}
        for j, term in zip(idx.tolist(), row_terms.tolist()):
            if ex.stats is not None and ex.stats.start <= j < ex.stats.stop:
                key = ("signal", stat_words[j - ex.stats.start])
            else:
                key = ex.labels[j]
            totals[key] = totals.get(key, 0.0) + term
        if ex.semantic is not None:
            for token, share in ex.embedder.token_shares(text, ex.projection):
                totals[("word", token)] = totals.get(("word", token), 0.0) + share
        out.append([Contribution(label, kind, value) for (kind, label), value in totals.items()])
    return out


def _entry(c: Contribution) -> dict[str, Any]:
    return {"feature": c.feature, "kind": c.kind, "contribution": round(c.value, 4)}


def explain(pipeline: Any, records: Sequence[Any], top: int = 3,
            blend: str | None = None, *, scorer: Any = None) -> list[dict[str, list[dict[str, Any]]]]:
    """Per record, the ``top`` readable terms (see :func:`contributions`) that pushed its raw prediction
    up and down most: ``{"up": [{"feature", "kind", "contribution"}, ...], "down": [...]}``, largest
    first. Empty lists where the model is not linear.
    """
    terms = contributions(pipeline, records, blend, scorer=scorer)
    if terms is None:
        return [{"up": [], "down": []} for _ in records]
    out = []
    for row in terms:
        up = sorted((c for c in row if c.value > 0), key=lambda c: (-c.value, c.kind, c.feature))[:top]
        down = sorted((c for c in row if c.value < 0), key=lambda c: (c.value, c.kind, c.feature))[:top]
        out.append({"up": [_entry(c) for c in up], "down": [_entry(c) for c in down]})
    return out


SOURCE_CACHE_SIZE = 4096  # sources (as clients write them) whose key each process remembers
TRIAGE_CACHE_SIZE = 4096  # texts whose triage each model's context remembers (about 1.5 MB when full)


@functools.lru_cache(maxsize=SOURCE_CACHE_SIZE)
def source_key(source: str) -> str:
    """``normalize_source(source).key``, remembered: a few hundred outlets send most headlines, and resolving
    one (NFKD folding, host rules, several look-ups) costs 2-6 us; the source table never changes."""
    return normalize_source(source).key


def model_record(text: str, source: str | None) -> dict[str, str]:
    """The record the pipeline takes, with the source as users write it resolved to its key."""
    return {"text": text, "source": source_key(source) if source else ""}


@dataclass(frozen=True)
class InputContext:
    """What triage needs from a model: its vocabulary, its trained source keys, its median score."""

    known_words: Container[str] | None  # None: the model learned no vocabulary (hashed words, no word part)
    trained_sources: Container[str]
    median: float
    # ``triage(text, known=<this vocabulary>)``, remembered per text: triage is a pure function of the text and
    # the vocabulary, and sidebars send the same headlines again and again (tests/core/test_reply_items.py
    # checks the remembered answer is triage's).
    triage: Callable[[str], Triage] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        known = None if self.known_words is None else self.known_words.__contains__
        object.__setattr__(self, "triage", functools.lru_cache(maxsize=TRIAGE_CACHE_SIZE)(
            functools.partial(triage, known=known)))

    @classmethod
    def of(cls, pipeline: Any) -> "InputContext":
        """The context of a fitted i-Score pipeline."""
        return cls(known_words(pipeline), trained_sources(pipeline), median_score(pipeline))


@functools.lru_cache(maxsize=4)
def _context(pipeline: Any) -> InputContext:
    """InputContext.of, once per pipeline (the served model answers many requests)."""
    return InputContext.of(pipeline)


def reply_items(pipeline: Any, headlines: Sequence[tuple[str, str, str | None]], *, red_threshold: float,
                explain_top: int, with_explain: bool, context: InputContext | None = None,
                blend: str | None = None, scorer: Any = None) -> list[dict[str, Any]]:
    """Reply items ``{id, text, i_score, tier, flags[, explain]}`` for ``(id, text, source)``, in order.

    Each headline is triaged first (iscore/triage.py): its flags go in the reply, and a score built
    on little evidence (too short, a URL, another language, words the model never saw) is pulled
    toward the median headline's score by ``shrink``. ``unknown_source`` says a given source has no
    weight in this model (unknown outlet, or too rare in the training data), so it did not count.
    ``blend`` is one of the model's blends (``iscore.model.blends``; default its own).
    ``scorer``, the compiled form of ``pipeline`` (iscore.compiled, checked against it at load), scores
    and explains in its place.
    """
    records = [model_record(text, source) for _, text, source in headlines]
    ctx = context or _context(pipeline)
    values = score(pipeline, records, blend) if scorer is None else scorer.score(records, blend)
    items = []
    for (hid, text, source), record, value in zip(headlines, records, values):
        t = ctx.triage(text)
        flags = list(t.flags)
        if source and record["source"] not in ctx.trained_sources:
            flags.append("unknown_source")
        # The tier follows the score the client sees, not the raw value.
        i_score = round(shrink(float(value), t.evidence, ctx.median), 1)
        items.append({"id": hid, "text": text, "i_score": i_score, "tier": tier(i_score, red_threshold),
                      "flags": flags})
    if with_explain:
        for item, why in zip(items, explain(pipeline, records, explain_top, blend, scorer=scorer)):
            item["explain"] = why
    return items
