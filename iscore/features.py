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
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

_NUMBER = re.compile(r"\d")
_LEAD_NUMBER = re.compile(r"^\d+\b")
_QUOTE = re.compile(r"[\"'\u2018\u2019\u201c\u201d]")
_SECOND_PERSON = re.compile(r"\byou(r|'re|rs)?\b", re.IGNORECASE)
# A word as StaticEmbedder looks it up (in lower-cased text); `iscore-train embed` builds its vocabulary with it.
WORD_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def normalize_text(text: str) -> str:
    """Collapse runs of whitespace (newlines, tabs, NBSP) and strip the ends."""
    return " ".join(text.split())  # str.split() knows the same Unicode white space as re's \s, faster


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
    """Select one string field of the records, whitespace-normalised, as a list."""

    def __init__(self, field: str = "text"):
        self.field = field

    def fit(self, X: Any, y: Any = None) -> "ColumnPicker":
        return self

    def transform(self, X: Any) -> Any:
        return [self.one(v) for v in column(X, self.field)]

    def one(self, value: str) -> str:
        """The field of one record as the next step sees it (a compiled scorer calls this too)."""
        return normalize_text(value)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([self.field], dtype=object)


class SourceEncoder(TransformerMixin, BaseEstimator):
    """One-hot of the (lower-cased) source; sources seen fewer than ``min_count`` times share none."""

    def __init__(self, min_count: int = 20):
        self.min_count = min_count

    def fit(self, X: Any, y: Any = None) -> "SourceEncoder":
        from collections import Counter

        counts = Counter(self._key(s) for s in column(X, "source"))
        self.categories_ = sorted(s for s, c in counts.items() if s and c >= self.min_count)
        self.index_ = {s: i for i, s in enumerate(self.categories_)}
        return self

    def transform(self, X: Any) -> sp.csr_matrix:
        idx = [self.index_.get(self._key(s), -1) for s in column(X, "source")]
        rows = [r for r, i in enumerate(idx) if i >= 0]
        cols = [i for i in idx if i >= 0]
        return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                             shape=(len(idx), len(self.categories_)))

    @staticmethod
    def _key(source: str) -> str:
        return normalize_text(source).lower()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"source={s}" for s in self.categories_], dtype=object)


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
    words = text.split()
    t = " ".join(words)
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def stat_labels(text: str) -> list[str]:
    """What each of :func:`headline_stats` says about ``text``, in words a reader understands (STAT_NAMES order).

    A statistic that is absent is named too ("no question mark"): once scaled, absence has a value
    and a contribution of its own.
    """
    words = text.split()
    t = " ".join(words)
    n_words = len(words)
    upper = sum(1 for w in words if len(w) > 1 and w.isupper())
    if upper and upper == n_words:
        capitals = "all capitals"
    elif upper:
        capitals = f"capitals: {upper} of {_plural(n_words, 'word')}"
    else:
        capitals = "no words in capitals"

    def said(present: bool, name: str) -> str:
        return name if present else f"no {name}"

    return [
        f"length: {_plural(len(t), 'character')}",
        f"length: {_plural(n_words, 'word')}",
        said(bool(_NUMBER.search(t)), "number"),
        "starts with a number" if _LEAD_NUMBER.match(t) else "does not start with a number",
        said("?" in t, "question mark"),
        said("!" in t, "exclamation mark"),
        said(bool(_QUOTE.search(t)), "quotation marks"),
        said(":" in t, "colon"),
        capitals,
        "speaks to the reader (you, your)" if _SECOND_PERSON.search(t) else "does not say you",
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
        return np.asarray([self.row(t) for t in texts], dtype=np.float64)

    def row(self, text: str) -> list[float]:
        """The statistics of one headline's text (a compiled scorer calls this too)."""
        return headline_stats(text)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(STAT_NAMES, dtype=object)


class StaticEmbedder(TransformerMixin, BaseEstimator):
    """Mean of static token vectors (a distilled sentence encoder), numpy only at serving time.

    ``vocab`` maps a lower-cased token to a row of ``vectors``; the vectors are stored inside the
    fitted pipeline (float16) so the artifact carries everything it needs.
    """

    def __init__(self, vocab: Mapping[str, int] | None = None, vectors: np.ndarray | None = None,
                 weight: float = 1.0):
        self.vocab = vocab
        self.vectors = vectors
        self.weight = weight

    def fit(self, X: Any, y: Any = None) -> "StaticEmbedder":
        if self.vocab is None or self.vectors is None:
            raise ValueError("StaticEmbedder needs vocab and vectors (see `iscore-train embed`)")
        self.dim_ = int(self.vectors.shape[1])
        return self

    def transform(self, X: Any) -> np.ndarray:
        texts = column(X, "text")
        # Token ids of all rows as one sparse count matrix, then one product with the vectors:
        # far faster than averaging row by row in Python.
        indptr, indices = [0], []
        for text in texts:
            indices.extend(self.token_ids(text))
            indptr.append(len(indices))
        counts = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
            shape=(len(texts), self.vectors.shape[0]),
        )
        out = np.asarray(counts @ self._vectors32(), dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out * np.float32(self.weight)

    def tokens(self, text: str) -> list[tuple[str, int]]:
        """Each known token of ``text`` with its vocabulary row, in order (a compiled scorer calls this too)."""
        vocab = self.vocab
        return [(w, i) for w in WORD_TOKEN.findall(text.lower()) if (i := vocab.get(w)) is not None]

    def token_ids(self, text: str) -> list[int]:
        """The vocabulary rows of the known tokens of ``text``, in order."""
        return [i for _, i in self.tokens(text)]

    def projection(self, coef: np.ndarray) -> np.ndarray:
        """Every vocabulary vector dotted with ``coef`` (one coefficient per output dimension), as float64."""
        return self._vectors32() @ np.asarray(coef, dtype=np.float64)

    def token_shares(self, text: str, projection: np.ndarray) -> list[tuple[str, float]]:
        """Each known token of ``text`` with its exact share of ``transform([text])[0] @ coef``.

        The row is ``weight * s / |s|`` with ``s`` the sum of the token vectors, so its product with
        ``coef`` is ``sum_t weight * (v_t . coef) / |s|``: linear in the tokens once this row's norm
        is fixed. ``projection`` is :meth:`projection` of ``coef``; a repeated token appears each time.
        """
        tokens = self.tokens(text)
        if not tokens:
            return []
        ids = np.fromiter((i for _, i in tokens), dtype=np.int64, count=len(tokens))
        # The norm as transform computes it (a float32 sum of the float32 vectors).
        norm = float(np.linalg.norm(self._vectors32()[ids].sum(axis=0, dtype=np.float32)))
        if norm == 0.0:
            return []
        shares = projection[ids] * (float(np.float32(self.weight)) / norm)
        return [(w, float(v)) for (w, _), v in zip(tokens, shares)]

    def _vectors32(self) -> np.ndarray:
        cached = getattr(self, "_v32", None)
        if cached is None:  # float16 on disk, float32 for the product; cached per process
            cached = self._v32 = np.asarray(self.vectors, dtype=np.float32)
        return cached

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_v32", None)  # keep the artifact small: only the float16 vectors are stored
        return state

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"emb{i}" for i in range(self.vectors.shape[1])], dtype=object)


def as_records(texts: Sequence[str], sources: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Build records from parallel lists of texts and sources."""
    if sources is None:
        return [{"text": t} for t in texts]
    return [{"text": t, "source": s} for t, s in zip(texts, sources, strict=True)]
