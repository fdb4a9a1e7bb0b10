"""Headline features shared by the trainer and the service.

Every transformer here takes *records*: a sequence of mappings with a ``text`` and an optional
``source`` key (plain strings are accepted as text-only records), or a pandas DataFrame with those
columns. Keeping the raw-record interface inside the Pipeline means the artifact that training
publishes is exactly what the service calls: nothing about featurisation is re-implemented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

_WS = re.compile(r"\s+")
_NUMBER = re.compile(r"\d")
_LEAD_NUMBER = re.compile(r"^\d+\b")
_QUOTE = re.compile(r"[\"'\u2018\u2019\u201c\u201d]")
_SECOND_PERSON = re.compile(r"\byou(r|'re|rs)?\b", re.IGNORECASE)

UNKNOWN_SOURCE = ""


def normalize_text(text: str) -> str:
    """Collapse runs of whitespace (newlines, tabs, NBSP) and strip the ends."""
    return _WS.sub(" ", text).strip()


def column(records: Any, field: str) -> list[str]:
    """Return one string field of every record, '' where absent; strings count as text."""
    if hasattr(records, "columns"):  # a pandas DataFrame, without importing pandas here
        if field not in records.columns:
            return [""] * len(records)
        return ["" if v is None or v != v else str(v) for v in records[field].tolist()]
    out: list[str] = []
    for rec in records:
        if isinstance(rec, str):
            out.append(rec if field == "text" else "")
        elif isinstance(rec, Mapping):
            value = rec.get(field)
            out.append("" if value is None else str(value))
        else:
            raise TypeError(f"a record must be a string or a mapping, not {type(rec).__name__}")
    return out


class ColumnPicker(TransformerMixin, BaseEstimator):
    """Select one string field of the records, normalised, as a list (or an (n, 1) array)."""

    def __init__(self, field: str = "text", two_d: bool = False, lowercase: bool = False):
        self.field = field
        self.two_d = two_d
        self.lowercase = lowercase

    def fit(self, X: Any, y: Any = None) -> "ColumnPicker":
        return self

    def transform(self, X: Any) -> Any:
        values = [normalize_text(v) for v in column(X, self.field)]
        if self.lowercase:
            values = [v.lower() for v in values]
        if self.two_d:
            return np.asarray(values, dtype=object).reshape(-1, 1)
        return values

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([self.field], dtype=object)


STAT_NAMES = (
    "log_chars",
    "words",
    "has_number",
    "leading_number",
    "question",
    "exclamation",
    "quote",
    "colon",
    "upper_word_share",
    "second_person",
)


def headline_stats(text: str) -> list[float]:
    """Simple surface features of one headline (length, numbers, punctuation, capitals)."""
    t = normalize_text(text)
    words = t.split(" ") if t else []
    n_words = len(words)
    upper = sum(1 for w in words if len(w) > 1 and w.isupper())
    return [
        float(np.log1p(len(t))),
        float(min(n_words, 40)),
        1.0 if _NUMBER.search(t) else 0.0,
        1.0 if _LEAD_NUMBER.match(t) else 0.0,
        1.0 if "?" in t else 0.0,
        1.0 if "!" in t else 0.0,
        1.0 if _QUOTE.search(t) else 0.0,
        1.0 if ":" in t else 0.0,
        upper / n_words if n_words else 0.0,
        1.0 if _SECOND_PERSON.search(t) else 0.0,
    ]


class HeadlineStats(TransformerMixin, BaseEstimator):
    """Dense matrix of :func:`headline_stats` for every record."""

    def fit(self, X: Any, y: Any = None) -> "HeadlineStats":
        self.n_features_out_ = len(STAT_NAMES)
        return self

    def transform(self, X: Any) -> np.ndarray:
        texts = column(X, "text")
        if not texts:
            return np.zeros((0, len(STAT_NAMES)), dtype=np.float64)
        return np.asarray([headline_stats(t) for t in texts], dtype=np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(STAT_NAMES, dtype=object)


class StaticEmbedder(TransformerMixin, BaseEstimator):
    """Mean of static token vectors (a distilled sentence encoder), numpy only at serving time.

    ``vocab`` maps a lower-cased token to a row of ``vectors``; the vectors are stored inside the
    fitted pipeline (float16) so the artifact carries everything it needs.
    """

    _TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

    def __init__(self, vocab: Mapping[str, int] | None = None, vectors: np.ndarray | None = None):
        self.vocab = vocab
        self.vectors = vectors

    def fit(self, X: Any, y: Any = None) -> "StaticEmbedder":
        if self.vocab is None or self.vectors is None:
            raise ValueError("StaticEmbedder needs vocab and vectors (see `iscore-train embed`)")
        self.dim_ = int(self.vectors.shape[1])
        return self

    def transform(self, X: Any) -> np.ndarray:
        texts = column(X, "text")
        vocab = self.vocab
        vecs = self.vectors
        out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
        for i, text in enumerate(texts):
            ids = [vocab[w] for w in self._TOKEN.findall(text.lower()) if w in vocab]
            if ids:
                row = vecs[ids].astype(np.float32).mean(axis=0)
                norm = float(np.linalg.norm(row))
                out[i] = row / norm if norm > 0 else row
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"emb{i}" for i in range(self.vectors.shape[1])], dtype=object)


def as_records(texts: Sequence[str], sources: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Build records from parallel lists of texts and sources."""
    if sources is None:
        return [{"text": t} for t in texts]
    return [{"text": t, "source": s} for t, s in zip(texts, sources, strict=True)]
