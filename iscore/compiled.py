"""A compiled scorer: the fitted pipeline's linear model read out once, then scored with look-ups.

The fitted pipeline stays the artifact of record. :func:`compile_pipeline` reads out of it what a
score needs (n-gram -> column, idf and coefficient; the scaler's mean and scale; source -> weight;
the float32 token vectors; the calibration) and :class:`CompiledScorer` scores records in one of two
ways: a small batch (up to SMALL_BATCH records) record by record in plain Python floats, each part's
share of the raw prediction computed from tables packed per column; a larger one with dict look-ups
and a few numpy operations per *batch*, instead of scikit-learn's per-call machinery.

Text handling is never re-implemented in this module: every part reads a headline through its own
methods in iscore/features.py (``ColumnPicker.one``; the vectorizer's ``build_analyzer()``, or for a
whole batch :class:`iscore.features.WordNgrams`, tested equal to it; ``HeadlineStats.row``;
``StaticEmbedder.token_ids`` and ``token_id_rows``, which its own ``transform`` uses;
``SourceEncoder._key``), so a change to how a part reads a headline reaches the compiled form by
itself. Those methods run on shallow copies of the parts that share one stand-in for their equal
fitted cleaners (:class:`_SharedClean`), so a headline is cleaned once per batch, not once per part.
The one exception is the optional C reader (iscore/_speedups.c, :class:`_CReader`): where it is
built it reads a whole batch as those methods do (compared with them in
tests/core/test_speedups.py), and a part it does not know turns it off. The arithmetic copies the
pipeline's rounding (TF-IDF and the vector sum in float32, in the same order; one record's float32
values rounded by ``array("f")`` as numpy's casts round), so both give the same scores to about
1e-12, and :func:`verify` checks that on sample records, one at a time and as a batch, before a
version serves.

A pipeline with any part, union or regressor this module does not know raises
:class:`NotCompilable`: the caller then scores with the pipeline itself, never with a guess.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge, SGDRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from iscore import features
from iscore.features import (ROW_BREAK, ColumnPicker, HeadlineCleaner, HeadlineStats, SourceEncoder, StaticEmbedder,
                             WordNgrams, column)
from iscore.model import (FEATURES_STEP, MODEL_STEP, EditorialBlendRegressor, FastFeatureUnion,
                          PercentileCalibratedRegressor, hstack_csr)

try:  # built by setup.py where a C compiler is at hand; without it the Python code reads every headline
    from iscore import _speedups

    _SPEEDUPS_ERROR = ""
except ImportError as e:  # pragma: no cover - depends on the install
    _speedups = None
    # Why, for the log line; not the message, which names the file's path when a build does not load.
    _SPEEDUPS_ERROR = ("not built" if isinstance(e, ModuleNotFoundError)
                       else f"built but does not load: {type(e).__name__}, a build for another Python?")

# Every compiled score must be within this of the pipeline's on the verification records.
TOLERANCE = 1e-6
# Regressors whose prediction is exactly X @ coef_ + intercept_ (and which predict_raw computes so).
LINEAR_REGRESSORS = (Ridge, SGDRegressor, EditorialBlendRegressor)

# Headlines the load-time check scores both ways, besides the service's smoke batch: numbers,
# quotes, repeated words (counts above 1), capitals, a question, unknown words, Latin-1 and Greek text.
VERIFY_TEXTS = (
    "Earthquake kills at least 300 in central Turkey as rescuers search rubble",
    "Ten easy recipes for a quick weekday dinner",
    "Central bank raises interest rates to fight inflation, inflation, inflation",
    "'We will not back down': PM vows to fight on after vote of no confidence",
    "Is this the end of the office? Why your boss wants you back",
    "WATCH: Storm batters coast",
    "Zyxqv blorft wumple",
    "Élection présidentielle : le second tour aura lieu dimanche",
    "Σεισμός 6,1 Ρίχτερ στην Κρήτη",  # beyond what iscore._speedups reads: its fallback to Python is checked too
    "5 things to know about the new tax rules!",
    "   spaced\tout \n headline  with   odd   whitespace   ",
    "Trump",
    "",
)
VERIFY_SOURCES = ("reuters", "", "bbc", "no-such-outlet-xyz")


class NotCompilable(Exception):
    """The pipeline has a part, union or regressor the compiled scorer does not know."""


class CompiledMismatch(Exception):
    """The compiled form and the pipeline disagree on a verification record."""


def _texts(records: Sequence[Any], field: str, cache: dict[str, list[str]]) -> list[str]:
    """One string field of every record (as iscore.features.column reads it), read once per batch."""
    got = cache.get(field)
    if got is None:
        got = cache[field] = column(records, field)
    return got


# Cleaned texts a shared cleaner remembers at most (a batch's worth; scoring forgets them after each batch).
MEMO_LIMIT = 50_000


class _SharedClean:
    """Stands in for the equal fitted cleaners of several parts: each text is cleaned once per batch.

    Every text part of a #14 model holds its own fitted copy of one HeadlineCleaner, and each part's own
    per-record method cleans the headline again (three times per headline on the shipped model, about
    12 us each). The compiled parts call those same methods on shallow copies of the parts whose
    ``cleaner_`` is this object: ``clean`` answers from what another part already asked in this batch,
    else asks the real cleaner. Only cleaners equal in every fitted attribute share one.
    """

    def __init__(self, cleaner: Any):
        self.cleaner = cleaner
        self.memo: dict[str, str] = {}

    def clean(self, text: str) -> str:
        got = self.memo.get(text)
        if got is None:
            if len(self.memo) >= MEMO_LIMIT:
                self.memo.clear()
            got = self.memo[text] = self.cleaner.clean(text)
        return got

    def __getattr__(self, name: str) -> Any:  # anything else a part reads of its cleaner
        return getattr(self.cleaner, name)


def _with_cleaner(estimator: Any, shared: dict[int, _SharedClean]) -> Any:
    """``estimator`` itself without a fitted cleaner, else a shallow copy whose ``cleaner_`` is the shared
    stand-in of every cleaner equal to its own (the fitted pipeline is never changed)."""
    cleaner = getattr(estimator, "cleaner_", None)
    if cleaner is None:
        return estimator
    stand_in = next((c for c in shared.values()
                     if type(c.cleaner) is type(cleaner) and vars(c.cleaner) == vars(cleaner)), None)
    if stand_in is None:
        stand_in = shared[id(cleaner)] = _SharedClean(cleaner)
    twin = object.__new__(type(estimator))
    twin.__dict__.update(vars(estimator))
    twin.cleaner_ = stand_in
    return twin


@dataclass(frozen=True)
class _Block:
    """One part's values for a batch: sparse triplets (rows, part columns, values) or a dense array."""

    rows: np.ndarray | None
    cols: np.ndarray | None
    values: np.ndarray  # the part's dtype, exactly as the pipeline computes it
    width: int

    def raw(self, coef: np.ndarray, n: int) -> np.ndarray:
        """Each record's share of the raw prediction: values times this part's coefficients."""
        if self.rows is None:
            # einsum, not @: a matrix-vector product goes to a multi-threaded BLAS, whose threads compete
            # with the other workers for the cores (1,000-headline requests served 0.7x the pipeline's rate).
            return np.einsum("ij,j->i", self.values.astype(np.float64), coef)
        return np.bincount(self.rows, weights=self.values.astype(np.float64) * coef[self.cols], minlength=n)

    def matrix(self, n: int) -> Any:
        """The part's block of the union's feature matrix."""
        if self.rows is None:
            return self.values
        return sp.csr_matrix((self.values, (self.rows, self.cols)), shape=(n, self.width))


# Counts up to this get their term frequency from a table made once (larger ones are computed when met).
TF_TABLE = 64


class _TextTerms:
    """A ``Pipeline([ColumnPicker, TfidfVectorizer])`` part (word or character n-grams)."""

    def __init__(self, part: Pipeline, shared: dict[int, _SharedClean]):
        (_, picker), (_, vec) = part.steps
        if (type(picker) is not ColumnPicker or type(vec) is not TfidfVectorizer or vec.input != "content"
                or vec.norm not in ("l2", None) or np.dtype(vec.dtype) not in (np.float32, np.float64)):
            raise NotCompilable(f"text part {type(picker).__name__} -> {type(vec).__name__} is not "
                                "ColumnPicker -> TfidfVectorizer (l2 or no norm)")
        self.picker = _with_cleaner(picker, shared)
        self.analyzer: Callable[[str], list[str]] = vec.build_analyzer()
        # A whole batch's word n-grams in a few C-level calls (None: character n-grams and other analyzers,
        # read text by text with the analyzer itself).
        self.ngrams = WordNgrams.of(vec)
        # Plain ints: a fitted vocabulary holds numpy integers, slower to look up and to turn into arrays.
        # With the row break of a batch's token stream as -2 (no n-gram holds one): one table, not two copies
        # of a 60,000-entry vocabulary in every worker.
        vocabulary = {str(g): int(j) for g, j in vec.vocabulary_.items()}
        vocabulary[ROW_BREAK] = -2  # added, not merged into a copy: no second 60,000-entry dict made
        self.vocabulary: Mapping[str, int] = vocabulary
        self.dtype = np.dtype(vec.dtype)
        self.idf = np.asarray(vec.idf_) if vec.use_idf else None
        self.sublinear, self.binary, self.l2 = bool(vec.sublinear_tf), bool(vec.binary), vec.norm == "l2"
        self.width = len(vec.vocabulary_)
        # For one headline at a time, in plain Python floats: array(code, ...) rounds to the part's dtype as
        # numpy's casts do (to nearest), so the values are the pipeline's bit for bit.
        self._code = "f" if self.dtype == np.float32 else "d"
        self._tf_table = [0.0, *self._tf(np.arange(1, TF_TABLE + 1)).tolist()]
        # Per column, the value (in the dtype) of an n-gram met once, as block() computes it.
        self._once = self._tf(np.ones(self.width, dtype=np.int64))
        if self.idf is not None:
            self._once *= self.idf
        self._tables: dict[int, tuple[np.ndarray, array]] = {}  # per blend's coefficients
        # What the C form of share_of_columns reads: the term frequencies and idf as contiguous doubles.
        self._tf_doubles = array("d", self._tf_table)
        self._idf_doubles = None if self.idf is None else np.ascontiguousarray(self.idf, dtype=np.float64)

    def _tf(self, counts: np.ndarray) -> np.ndarray:
        """Term frequencies in the part's dtype as TfidfTransformer computes them from counts."""
        data = counts.astype(self.dtype)
        if self.binary:
            data.fill(1)
        if self.sublinear:  # TfidfTransformer: np.log in place, then + 1, in the matrix's dtype
            np.log(data, data)
            data += 1.0
        return data

    def _texts(self, texts: Sequence[str]) -> list[str]:
        """Each text as the vectorizer receives it (the picker's own per-record method)."""
        return list(map(self.picker.one, texts))

    def columns(self, text: str) -> list[int]:
        """The vocabulary columns of ``text``'s n-grams, as the vectorizer reads it (repeats kept)."""
        get = self.vocabulary.get
        picked = self.picker.one(text)
        grams = self.analyzer(picked) if self.ngrams is None else self.ngrams.grams(picked)
        return [j for g in grams if (j := get(g, -1)) >= 0]  # not the row break's -2

    def _table(self, coef: np.ndarray) -> array:
        """Per column j of ``coef``'s blend, ``packed[3j:3j+3]``: the value and square (in the dtype) of an
        n-gram met once, as block() computes them, and its coefficient.

        Packed side by side in one array of doubles: a headline's columns are scattered over the vocabulary,
        and one cache line per column instead of three lists' float objects was a third of this part's time
        on distinct headlines (bench/inprocess_bench.py)."""
        got = self._tables.get(id(coef))
        if got is None or got[0] is not coef:
            packed = np.empty((self.width, 3), dtype=np.float64)
            packed[:, 0], packed[:, 1], packed[:, 2] = self._once, self._once * self._once, coef
            got = self._tables[id(coef)] = (coef, array("d", packed.ravel().tobytes()))
        return got[1]

    def share(self, text: str, coef: np.ndarray) -> float:
        """One text's share of the raw prediction (``coef``: this part's coefficients), in Python floats."""
        return self.share_of_columns(self.columns(text), coef)

    def share_of_columns_c(self, cols: list[int], coef: np.ndarray) -> float:
        """:meth:`share_of_columns` computed in C, the same operations in the same order (Python's where C declines)."""
        got = _speedups.terms_share(cols, self._table(coef), self._tf_doubles, self._idf_doubles,
                                    self._code == "f", self.l2)
        return self.share_of_columns(cols, coef) if got is None else got

    def share_of_columns(self, cols: list[int], coef: np.ndarray) -> float:
        """:meth:`share` of a text whose n-gram columns (:meth:`columns`, repeats kept) are ``cols``."""
        js = sorted(set(cols))  # the vectorizer's CSR order: columns ascending
        if not js:
            return 0.0
        packed = self._table(coef)
        at = [3 * j for j in js]
        values = [packed[k] for k in at]  # an n-gram met once: the table's value and square
        squares = [packed[k + 1] for k in at]
        if len(js) != len(cols):  # some n-gram more than once (a name twice, a repeated word): those computed
            code = self._code
            counts = dict.fromkeys(js, 0)
            for j in cols:
                counts[j] += 1
            for i, j in enumerate(js):
                c = counts[j]
                if c > 1:
                    tf = self._tf_table[c] if c <= TF_TABLE else float(self._tf(np.asarray([c]))[0])
                    # data *= idf: the product in double, stored in the dtype; its square in the dtype.
                    values[i] = v = array(code, [tf if self.idf is None else tf * float(self.idf[j])])[0]
                    squares[i] = array(code, [v * v])[0]
        if self.l2:  # as in block(): the squares' sum in double, each value / norm in double, back in the dtype
            norm = math.sqrt(sum(squares))
            if norm != 0.0:
                values = array(self._code, [v / norm for v in values])
        return sum([v * packed[k + 2] for v, k in zip(values, at)])

    def block(self, records: Sequence[Any], cache: dict[str, list[str]]) -> _Block:
        n = len(records)
        texts = self._texts(_texts(records, self.picker.field, cache))
        if self.ngrams is not None:
            # The batch's n-grams as streams: one vocabulary look-up per n-gram in C (map), rows from the breaks.
            get = self.vocabulary.get
            tokens, streams = self.ngrams.streams(texts)
            found = np.fromiter(map(get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))
            token_rows = np.cumsum(found == -2)
            cols_list, rows_list = [], []
            for grams in streams:
                cols_n = found if grams is tokens else np.fromiter(map(get, grams, repeat(-1)), dtype=np.int64,
                                                                  count=len(grams))
                keep = cols_n >= 0
                cols_list.append(cols_n[keep])
                rows_list.append(token_rows[:len(grams)][keep])
            all_cols, all_rows = np.concatenate(cols_list), np.concatenate(rows_list)
        else:
            get, analyze = self.vocabulary.get, self.analyzer
            cols_py: list[int] = []
            lens = []
            for text in texts:
                js = [j for g in analyze(text) if (j := get(g, -1)) >= 0]
                cols_py.extend(js)
                lens.append(len(js))
            all_rows = np.repeat(np.arange(n, dtype=np.int64), lens)
            all_cols = np.asarray(cols_py, dtype=np.int64)
        return self.block_of(all_rows, all_cols, n)

    def block_of(self, all_rows: np.ndarray, all_cols: np.ndarray, n: int) -> _Block:
        """The part's block for ``n`` texts from every n-gram met: its row and its column (any order, repeats kept)."""
        # Count each column once per row, rows then columns ascending: the vectorizer's CSR order.
        keys, counts = np.unique(all_rows * self.width + all_cols, return_counts=True)
        rows, cols = keys // self.width, keys % self.width
        data = self._tf(counts)
        if self.idf is not None:
            data *= self.idf[cols]
        if self.l2:
            # sklearn's inplace_csr_row_normalize_l2: a double sum of squares taken in the data's dtype,
            # in column order, then each value divided by its square root in double and stored back.
            sums = np.bincount(rows, weights=(data * data).astype(np.float64), minlength=n)
            norms = np.sqrt(sums)[rows]
            scaled = data.astype(np.float64)
            np.divide(scaled, norms, out=scaled, where=norms != 0.0)
            data = scaled.astype(self.dtype)
        return _Block(rows, cols, data, self.width)


class _Stats:
    """A ``Pipeline([HeadlineStats(, StandardScaler)])`` part: a few numbers per headline."""

    def __init__(self, part: Any, shared: dict[int, _SharedClean]):
        steps = part.steps if type(part) is Pipeline else [("stats", part)]
        stats, scaler = steps[0][1], (steps[1][1] if len(steps) > 1 else None)
        if (type(stats) is not HeadlineStats or len(steps) > 2
                or (scaler is not None and type(scaler) is not StandardScaler)):
            names = " -> ".join(type(t).__name__ for _, t in steps)
            raise NotCompilable(f"statistics part {names} is not HeadlineStats -> StandardScaler")
        self.stats = _with_cleaner(stats, shared)
        self.mean = None if scaler is None or not scaler.with_mean else np.asarray(scaler.mean_, dtype=np.float64)
        self.scale = None if scaler is None or not scaler.with_std else np.asarray(scaler.scale_, dtype=np.float64)
        self.width = len(stats.get_feature_names_out())
        self.dtype = np.dtype(np.float64)
        self._mean = None if self.mean is None else self.mean.tolist()
        self._scale = None if self.scale is None else self.scale.tolist()
        self._coefs: dict[int, tuple[np.ndarray, list[float]]] = {}

    def share(self, text: str, coef: np.ndarray) -> float:
        """One text's share of the raw prediction, in Python floats (the scaler's double arithmetic)."""
        return self.share_of_row(self.stats.row(text), coef)

    def share_of_row(self, row: list[float], coef: np.ndarray) -> float:
        """:meth:`share` of a text whose statistics (``HeadlineStats.row``) are ``row``."""
        got = self._coefs.get(id(coef))
        if got is None or got[0] is not coef:  # per blend's coefficients, as a list once
            got = self._coefs[id(coef)] = (coef, coef.tolist())
        if self.mean is not None:
            row = [v - m for v, m in zip(row, self._mean)]
        if self.scale is not None:
            row = [v / d for v, d in zip(row, self._scale)]
        return sum([v * c for v, c in zip(row, got[1])])

    def block(self, records: Sequence[Any], cache: dict[str, list[str]]) -> _Block:
        texts = _texts(records, "text", cache)
        return self.block_of(np.asarray([self.stats.row(t) for t in texts], dtype=np.float64).reshape(len(texts), self.width))

    def block_of(self, values: np.ndarray) -> _Block:
        """The part's block from the texts' statistics (one row each; changed in place)."""
        if self.mean is not None:  # StandardScaler.transform: subtract, then divide, in float64
            values -= self.mean
        if self.scale is not None:
            values /= self.scale
        return _Block(None, None, values, self.width)


class _Source:
    """A ``SourceEncoder`` part: one column per trained source key."""

    def __init__(self, part: SourceEncoder, shared: dict[int, _SharedClean]):
        self.encoder = part
        self.index: Mapping[str, int] = part.index_
        self.width = len(part.categories_)
        self.dtype = np.dtype(np.float32)
        self._weights: dict[int, tuple[np.ndarray, dict[str, float]]] = {}  # per coef: source key -> coefficient

    def _table(self, coef: np.ndarray) -> dict[str, float]:
        """Source key -> coefficient, one table per blend's coefficients."""
        weights = self._weights.get(id(coef))
        if weights is None or weights[0] is not coef:
            weights = self._weights[id(coef)] = (coef, {s: float(coef[i]) for s, i in self.index.items()})
        return weights[1]

    def share_of(self, source: str, coef: np.ndarray) -> float:
        """One record's share of the raw prediction: its source's coefficient, else 0."""
        return self._table(coef).get(self.encoder._key(source), 0.0)

    def raw(self, records: Sequence[Any], cache: dict[str, list[str]], coef: np.ndarray) -> np.ndarray:
        """Each record's share of the raw prediction: its source's coefficient (the one-hot value is 1)."""
        sources = _texts(records, "source", cache)
        # A batch names few distinct sources: each is resolved once (its key, then its weight), then looked up.
        key, get = self.encoder._key, self._table(coef).get
        weight = {s: get(key(s), 0.0) for s in set(sources)}
        return np.fromiter(map(weight.__getitem__, sources), dtype=np.float64, count=len(sources))

    def block(self, records: Sequence[Any], cache: dict[str, list[str]]) -> _Block:
        key, get = self.encoder._key, self.index.get
        found = [(r, i) for r, s in enumerate(_texts(records, "source", cache)) if (i := get(key(s), -1)) >= 0]
        rows = np.asarray([r for r, _ in found], dtype=np.int64)
        cols = np.asarray([i for _, i in found], dtype=np.int64)
        return _Block(rows, cols, np.ones(len(found), dtype=np.float32), self.width)


class _Semantic:
    """A ``StaticEmbedder`` part: ``weight * s / |s|``, ``s`` the float32 sum of the token vectors."""

    def __init__(self, part: StaticEmbedder, shared: dict[int, _SharedClean]):
        # What transform multiplies with: the embedder's own float32 copy, shared rather than made twice.
        self.vectors = part._vectors32()
        self.embedder = _with_cleaner(part, shared)
        self.weight = np.float32(part.weight)
        self.width = int(self.vectors.shape[1])
        self.dtype = np.dtype(np.float32)

    def share(self, text: str, coef: np.ndarray) -> float:
        """One text's share of the raw prediction: its row as transform computes it, times ``coef``."""
        return self.share_of_ids(self.embedder.token_ids(text), coef)

    def share_of_ids_c(self, ids: list[int], coef: np.ndarray) -> float:
        """:meth:`share_of_ids` computed in C: the float32 sum and norm as numpy computes them, the product in doubles."""
        return _speedups.embed_share(ids, self.vectors, coef, float(self.weight))

    def share_of_ids(self, ids: list[int], coef: np.ndarray) -> float:
        """:meth:`share` of a text whose known tokens' vector rows (``StaticEmbedder.token_ids``) are ``ids``."""
        if not ids:
            return 0.0  # a zero row
        # The float32 sum in token order (accumulate adds one after another), then linalg.norm's
        # sqrt(add.reduce(x * x)), the division and the weight, each in float32 as transform does them.
        vectors = self.vectors[ids]
        total = vectors[0] if len(ids) == 1 else np.add.accumulate(vectors, axis=0)[-1]
        norm = np.sqrt(np.add.reduce(total * total))
        row = (total / norm if norm > 0 else total) * self.weight
        # The float32 row as doubles times the coefficients, added one after another (as embed_share adds them; a
        # BLAS dot adds in an order of its own, a last bit apart).
        return sum((row.astype(np.float64) * coef).tolist())

    def rows(self, texts: Sequence[str]) -> np.ndarray:
        """The part's float32 rows for ``texts``, as StaticEmbedder.transform computes them (its own code)."""
        return self.rows_of(*self.embedder.token_id_rows(texts))

    def rows_of(self, ids: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """The part's float32 rows from the texts' token vector rows: ``lens[r]`` of ``ids`` (in order) per text ``r``."""
        out = self.embedder._sums_of(ids, lens)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out * self.weight

    def block(self, records: Sequence[Any], cache: dict[str, list[str]]) -> _Block:
        return _Block(None, None, self.rows(_texts(records, "text", cache)), self.width)


class _Scale:
    """One blend's raw prediction -> 0-100 score, from the calibrated model's tables read out once.

    PercentileCalibratedRegressor.score_of_raw computes ``curve(clip(nan_to_num(interp(raw, quantiles,
    levels), nan=50), 0, 100))``; this does the same arithmetic on the same tables without its per-call
    checks. :func:`_scale` uses it only where it gives score_of_raw's values bit for bit on probe values
    spanning the whole scale, else score_of_raw itself.
    """

    exact_one = False  # whether one() equals score_of_raw on the probes (set by _scale)

    def __init__(self, quantiles: np.ndarray, levels: np.ndarray, curve: Any):
        self.quantiles = np.asarray(quantiles, dtype=np.float64)
        self.levels = np.asarray(levels, dtype=np.float64)
        xs, ys = zip(*curve) if curve else ((), ())
        self.xs, self.ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        self._q, self._l = self.quantiles.tolist(), self.levels.tolist()
        self._xs, self._ys = self.xs.tolist(), self.ys.tolist()

    def one(self, raw: float) -> float:
        """The score of one finite raw prediction in Python floats (the same arithmetic as np.interp's)."""
        if self.quantiles.size == 1:
            pct = 50.0
        else:
            pct = _interp(raw, self._q, self._l)
            pct = 50.0 if pct != pct else min(max(pct, 0.0), 100.0)
        return _interp(pct, self._xs, self._ys) if self._xs else pct

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.quantiles.size == 1:
            pct = np.full(raw.shape, 50.0)
        else:
            pct = np.interp(raw, self.quantiles, self.levels)  # finite tables: only a NaN raw gives a NaN
            pct[np.isnan(pct)] = 50.0
            np.clip(pct, 0.0, 100.0, out=pct)
        return np.interp(pct, self.xs, self.ys) if self.xs.size else pct


def _interp(x: float, xp: list[float], fp: list[float]) -> float:
    """np.interp(x, xp, fp) of one finite x, step for step as numpy's C loop computes it (xp ascending)."""
    if x < xp[0]:
        return fp[0]
    if x > xp[-1]:
        return fp[-1]
    j = bisect_right(xp, x) - 1  # the last knot at or below x, as numpy's binary search finds it
    if j == len(xp) - 1 or xp[j] == x:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    out = slope * (x - xp[j]) + fp[j]
    if out != out:  # numpy: NaN one way, try the other
        out = slope * (x - xp[j + 1]) + fp[j + 1]
        if out != out and fp[j] == fp[j + 1]:
            out = fp[j]
    return out


def _scale(calibrated: PercentileCalibratedRegressor, blend: str, default: bool) -> Callable[[np.ndarray], np.ndarray]:
    """The raw -> score mapping of ``blend``: a :class:`_Scale` when it equals score_of_raw exactly, else
    score_of_raw."""
    def own(raw: np.ndarray) -> np.ndarray:
        return calibrated.score_of_raw(raw, blend)

    try:
        quantiles, levels = ((calibrated.quantiles_, calibrated.levels_) if default
                             else calibrated.blend_references_[blend])
        fast = _Scale(quantiles, levels, getattr(calibrated, "curve", None))
    except (AttributeError, KeyError, TypeError, ValueError):
        return own
    q = fast.quantiles
    span = float(q[-1] - q[0]) if q.size else 1.0
    probes = np.concatenate([q, (q[:-1] + q[1:]) / 2, q[:1] - span - 1.0, q[-1:] + span + 1.0,
                             np.linspace(q[0] - span, q[-1] + span, 257) if q.size else [],
                             [np.nan, np.inf, -np.inf, 0.0]])
    try:
        expected = np.asarray(own(probes.copy()), dtype=np.float64)
        same = np.array_equal(fast(probes.copy()), expected, equal_nan=True)
        # The one-headline form too, on every finite probe (a raw that is not finite goes through __call__).
        fast.exact_one = all(fast.one(float(p)) == e for p, e in zip(probes, expected) if math.isfinite(p))
    except Exception:  # noqa: BLE001 - whatever it is, the model's own mapping is the one to use
        same = False
    return fast if same else own


# The statistics iscore._speedups computes for a cleaned headline, in its order; each statistics layout picks its own.
C_STAT_NAMES = ("log_chars", "words", "has_number", "leading_number", "question", "second_person", "quantity", "names",
                "harm_quantity", "scale")
C_LAYOUTS = (features.CONTENT_STAT_NAMES, features.SIZE_STAT_NAMES, features.MAGNITUDE_STAT_NAMES)


def c_reader_of(cleaner: HeadlineCleaner, vocabulary: Mapping[str, int] | None = None,
             ngram_range: tuple[int, int] = (1, 1), embed_vocab: Mapping[str, int] | None = None,
             stats: HeadlineStats | None = None) -> Any:
    """An ``iscore._speedups.Reader`` of a fitted cleaner's tables, and of those of the parts that read its text."""
    magnitude = stats is not None and stats.harm is not None
    return _speedups.Reader(
        cleaner.proper_, cleaner.common_, getattr(cleaner, "prominent_", frozenset()), cleaner.kickers_,
        bool(cleaner.join_runs), features.SENTENCE_CASE_SHARE, features._NUMBER_WORDS, features._MULTIPLIERS,
        vocabulary, ngram_range, embed_vocab, stats.harm if magnitude else None,
        None if stats is None else stats.scale, float(stats.harm_centre_) if magnitude else 0.0,
        features.QUANTITY_CENTRE, features.QUANTITY_CAP, features.HARM_WIDTH)


class _CReader:
    """The text parts of a model read in C, a whole batch per call (iscore/_speedups.c).

    For every headline it can read exactly (ASCII, Latin-1 letters, a few punctuation marks) the C code gives the
    cleaned text's n-gram columns, token vector rows and statistics, which the parts' own ``*_of``
    methods turn into shares and blocks; any other headline is read by the parts' Python methods, as
    without it. :func:`verify` checks both against the pipeline before a version serves.
    """

    def __init__(self, reader: Any, words: _TextTerms | None, stats: _Stats | None, semantic: _Semantic | None):
        self.reader, self.words, self.stats, self.semantic = reader, words, stats, semantic
        self.layout = None if stats is None else [C_STAT_NAMES.index(n) for n in stats.stats.names_out()]

    @classmethod
    def of(cls, parts: list[Any], shared: dict[int, _SharedClean]) -> "tuple[_CReader | None, str | None]":
        """The C reader of these compiled parts and None; or None and why not (iscore._speedups not built, or a
        text part that reads headlines in a way it does not know: then every part reads in Python)."""
        if _speedups is None:
            return None, f"iscore._speedups: {_SPEEDUPS_ERROR} (python3 -m pip install -e . builds it)"
        if len(shared) != 1:
            return None, ("no text part cleans its text" if not shared
                          else f"the text parts' cleaners differ ({len(shared)} distinct fitted cleaners)")
        (stand_in,) = shared.values()
        cleaner = stand_in.cleaner
        if type(cleaner) is not HeadlineCleaner or not hasattr(cleaner, "proper_"):
            return None, f"a cleaner the C reader does not know ({type(cleaner).__name__})"
        found: dict[type, Any] = {}
        for part in parts:
            if type(part) is _Source:
                continue
            if type(part) is _TextTerms and part.ngrams is None:
                return None, "an n-gram part the C reader does not know (character n-grams or another analyzer)"
            if type(part) in found or type(part) not in (_TextTerms, _Stats, _Semantic):
                return None, f"a text part the C reader does not know or a second one ({type(part).__name__})"
            found[type(part)] = part
        words, stats, semantic = found.get(_TextTerms), found.get(_Stats), found.get(_Semantic)
        if words is not None and (words.ngrams is None or words.picker.field != "text"
                                  or words.picker.cleaner_ is not stand_in):
            return None, "an n-gram part that is not word n-grams of the cleaned text (character n-grams, raw text)"
        if stats is not None and (stats.stats.cleaner_ is not stand_in or stats.stats.names_out() not in C_LAYOUTS):
            return None, "statistics of raw text or of a layout the C reader does not know"
        if semantic is not None and semantic.embedder.cleaner_ is not stand_in:
            return None, "token vectors of raw text"
        reader = c_reader_of(cleaner, None if words is None else words.vocabulary,
                             (1, 1) if words is None else words.ngrams.ngram_range,
                             None if semantic is None else semantic.embedder.vocab,
                             None if stats is None else stats.stats)
        return cls(reader, words, stats, semantic), None

    def blocks(self, texts: list[str]) -> dict[int, _Block]:
        """Each C-read part's block for ``texts`` (by ``id`` of the part)."""
        n = len(texts)
        fallback, rows_b, cols_b, ids_b, lens_b, stats_b = self.reader.read(texts)
        out: dict[int, _Block] = {}
        if self.words is not None:
            rows, cols = np.frombuffer(rows_b, dtype=np.int64), np.frombuffer(cols_b, dtype=np.int64)
            if fallback:  # the headlines C does not read: their columns as the part's own method finds them
                extra = [(r, j) for r in fallback for j in self.words.columns(texts[r])]
                rows = np.concatenate([rows, np.fromiter((r for r, _ in extra), dtype=np.int64, count=len(extra))])
                cols = np.concatenate([cols, np.fromiter((j for _, j in extra), dtype=np.int64, count=len(extra))])
            out[id(self.words)] = self.words.block_of(rows, cols, n)
        if self.stats is not None:
            # Rows in C order, as the Python path builds them: einsum adds a row's products in memory order.
            values = np.take(np.frombuffer(stats_b, dtype=np.float64).reshape(n, len(C_STAT_NAMES)), self.layout, axis=1)
            for r in fallback:
                values[r] = self.stats.stats.row(texts[r])
            out[id(self.stats)] = self.stats.block_of(values)
        if self.semantic is not None:
            ids, lens = np.frombuffer(ids_b, dtype=np.int64), np.frombuffer(lens_b, dtype=np.int64)
            if fallback:
                lens = lens.copy()
                starts = np.cumsum(lens) - lens  # where each text's rows begin (a fallback text has none yet)
                at, more = [], []
                for r in fallback:
                    got = self.semantic.embedder.token_ids(texts[r])
                    lens[r] = len(got)
                    at.extend([int(starts[r])] * len(got))
                    more.extend(got)
                ids = np.insert(ids, np.asarray(at, dtype=np.int64), np.asarray(more, dtype=np.int64))
            out[id(self.semantic)] = _Block(None, None, self.semantic.rows_of(ids, lens), self.semantic.width)
        return out

    def read_one(self, text: str) -> dict[str, Any] | None:
        """What the C-read parts' ``share_of_*`` methods take for one text ("cols", "row", "ids"); None when C does
        not read this text."""
        got = self.reader.read_one(text)
        if got is None:
            return None
        cols, ids, stats = got
        return {"cols": cols, "ids": ids, "row": None if self.layout is None else [stats[k] for k in self.layout]}

    def share_method(self, part: Any) -> tuple[Callable[[Any, np.ndarray], float], str] | None:
        """The one-text share method of a C-read part and the key of what it takes (see :meth:`read_one`)."""
        if part is self.words:
            return part.share_of_columns_c, "cols"
        if part is self.stats:
            return part.share_of_row, "row"
        if part is self.semantic:
            return part.share_of_ids_c, "ids"
        return None


def _compile_part(name: str, part: Any, shared: dict[int, _SharedClean]) -> Any:
    if type(part) is Pipeline and len(part.steps) == 2 and type(part.steps[0][1]) is ColumnPicker:
        return _TextTerms(part, shared)
    if (type(part) is Pipeline and part.steps and type(part.steps[0][1]) is HeadlineStats) \
            or type(part) is HeadlineStats:
        return _Stats(part, shared)
    if type(part) is SourceEncoder:
        return _Source(part, shared)
    if type(part) is StaticEmbedder:
        return _Semantic(part, shared)
    raise NotCompilable(f"feature part {name!r} ({type(part).__name__}) is not one the compiled scorer knows")


@dataclass(frozen=True)
class _Part:
    name: str
    start: int
    compiled: Any
    coef: dict[str, np.ndarray]  # per blend, this part's slice of that blend's coefficients


# Batches up to this size are scored record by record in Python floats: below it numpy's per-call costs
# exceed the per-record Python work (bench/inprocess_bench.py measures both sides of it).
SMALL_BATCH = 4


class CompiledScorer:
    """Scores records like ``iscore.scoring.score(pipeline, records)``, from tables read out of it once."""

    def __init__(self, pipeline: Any, parts: list[_Part], intercepts: dict[str, float],
                 calibrated: PercentileCalibratedRegressor, terms: dict[str, tuple[np.ndarray, float]],
                 cleaners: tuple[_SharedClean, ...] = (), reader: _CReader | None = None,
                 text_in_python: str | None = None):
        self.pipeline = pipeline
        self.reader = reader  # the text parts read in C (iscore/_speedups.c), or None: read by their Python methods
        # Why the text parts read in Python, when they do (the service logs it at load).
        self.text_in_python = None if reader is not None else (text_in_python or "no C reader")
        self.cleaners = cleaners  # the parts' shared cleaners: their memory of a batch is dropped after it
        self.parts = parts
        self.intercepts = intercepts  # per blend
        self.calibrated = calibrated
        self.blends: tuple[str, ...] = tuple(intercepts)  # the model's default first
        self._terms = terms  # per blend, the regressor's own (coefficients, intercept), for the float32 path
        # The union's matrix is float64 when any part is (the headline statistics are): then the pipeline
        # computes the raw prediction in float64, and the parts' shares can be summed separately.
        self.float64 = np.result_type(*[p.compiled.dtype for p in parts] or [np.float64]) == np.float64
        # Per blend, raw prediction -> 0-100 score (iscore.model's score_of_raw, or the same from its tables).
        self.scales = {b: _scale(calibrated, b, i == 0) for i, b in enumerate(self.blends)}
        # Record by record in Python floats: every part has a share of one text, the union is float64 (so
        # the parts' shares add up in double) and each blend's scale has a checked one-value form.
        self._share_plan: dict[str, list[tuple[Callable[[str, np.ndarray], float], np.ndarray, bool]]] = {}
        self._c_plan: dict[str, list[tuple[Callable[[Any, np.ndarray], float], np.ndarray, str]]] = {}
        self.per_record = (self.float64 and all(hasattr(p.compiled, "share") or hasattr(p.compiled, "share_of")
                                                for p in parts)
                           and all(getattr(f, "exact_one", False) for f in self.scales.values()))

    def part(self, name: str) -> Any:
        """A compiled part by its union name ("words", "semantic", ...), or None (stories reuse these)."""
        return next((p.compiled for p in self.parts if p.name == name), None)

    def _blend(self, blend: str | None) -> str:
        if blend is None:
            return self.blends[0]
        if blend not in self.intercepts:
            raise ValueError(f"this model has no {blend!r} blend; it has {', '.join(self.blends)}")
        return blend

    def raw(self, records: Sequence[Any], blend: str | None = None) -> np.ndarray:
        """The regressor's raw (uncalibrated) prediction of ``blend`` (default: the model's own) for each record."""
        blend = self._blend(blend)
        if not self.float64:
            # A union of float32 parts only is multiplied in float32 (a ridge fitted on it has float32
            # coefficients), summed in column order: only the same product on the same matrix matches it.
            if blend == self.blends[0]:
                return self.calibrated.predict_raw(self.matrix(records))
            coef, intercept = self._terms[blend]
            return np.asarray(self.matrix(records) @ coef + intercept, dtype=np.float64).ravel()
        n = len(records)
        cache: dict[str, list[str]] = {}
        out = np.full(n, self.intercepts[blend], dtype=np.float64)
        try:
            blocks = self._c_blocks(records, cache)
            for p in self.parts:
                part, coef = p.compiled, p.coef[blend]
                block = blocks.get(id(part))
                if block is not None:  # read in C
                    out += block.raw(coef, n)
                elif hasattr(part, "raw"):  # a part with a shortcut to its share
                    out += part.raw(records, cache, coef)
                else:
                    out += part.block(records, cache).raw(coef, n)
        finally:
            self._forget()
        return out

    def _c_blocks(self, records: Sequence[Any], cache: dict[str, list[str]]) -> dict[int, _Block]:
        """The blocks of the parts read in C (by ``id`` of the part); empty without a C reader."""
        return {} if self.reader is None else self.reader.blocks(_texts(records, "text", cache))

    def without_c(self) -> "CompiledScorer":
        """The same scorer with every text part read by its Python methods."""
        return CompiledScorer(self.pipeline, self.parts, self.intercepts, self.calibrated, self._terms, self.cleaners,
                              text_in_python="dropped")

    def _forget(self) -> None:
        """Drop the cleaned texts of the batch just scored (the next batch is other headlines)."""
        for cleaner in self.cleaners:
            cleaner.memo.clear()

    def _sharers(self, blend: str) -> list[tuple[Callable[[str, np.ndarray], float], np.ndarray, bool]]:
        """Per part, in raw()'s order: its one-record share method, its coefficients, whether it reads the source."""
        got = self._share_plan.get(blend)
        if got is None:
            got = self._share_plan[blend] = [
                (p.compiled.share_of, p.coef[blend], True) if hasattr(p.compiled, "share_of")
                else (p.compiled.share, p.coef[blend], False) for p in self.parts]
        return got

    def _c_sharers(self, blend: str) -> list[tuple[Callable[[Any, np.ndarray], float], np.ndarray, str]]:
        """Per part, in raw()'s order: its share method of what C read (or of the source), its coefficients, the key."""
        got = self._c_plan.get(blend)
        if got is None:
            got = []
            for (share, coef, by_source), p in zip(self._sharers(blend), self.parts):
                method = self.reader.share_method(p.compiled)
                if method is None and not by_source:
                    raise NotCompilable(f"part {p.name!r} reads the text, but not in C")  # _CReader.of forbids it
                got.append((share, coef, "source") if method is None else (method[0], coef, method[1]))
            self._c_plan[blend] = got
        return got

    def _score_each(self, records: Sequence[Any], blend: str) -> np.ndarray:
        """score() record by record in Python floats (a small batch)."""
        cache: dict[str, list[str]] = {}
        texts, sources = _texts(records, "text", cache), _texts(records, "source", cache)
        scale, intercept, sharers = self.scales[blend], self.intercepts[blend], self._sharers(blend)
        reader = self.reader
        c_plan = None if reader is None else self._c_sharers(blend)
        out = []
        try:
            for text, source in zip(texts, sources):
                raw = intercept  # the parts' shares added in the order raw() adds them
                read = None if reader is None else reader.read_one(text)
                if read is not None:
                    read["source"] = source
                    for share_c, coef, key in c_plan:
                        raw += share_c(read[key], coef)
                else:
                    for share, coef, by_source in sharers:
                        raw += share(source if by_source else text, coef)
                value = scale.one(raw) if math.isfinite(raw) else float(scale(np.asarray([raw]))[0])
                # iscore.scoring.score's nan_to_num(nan=0, posinf=100, neginf=0), then clip to 0..100.
                out.append(0.0 if value != value else min(max(value, 0.0), 100.0))
        finally:
            self._forget()
        return np.asarray(out, dtype=np.float64)

    def score(self, records: Sequence[Any], blend: str | None = None) -> np.ndarray:
        """i-Scores (0-100, finite) of ``records`` in order, as iscore.scoring.score computes them."""
        blend = self._blend(blend)
        if len(records) == 0:
            return np.zeros(0, dtype=np.float64)
        if self.per_record and len(records) <= SMALL_BATCH:
            return self._score_each(records, blend)
        out = np.asarray(self.scales[blend](self.raw(records, blend)), dtype=np.float64)
        # iscore.scoring.score's nan_to_num(nan=0, posinf=100, neginf=0) then clip to 0..100, in fewer steps.
        out[np.isnan(out)] = 0.0
        return np.clip(out, 0.0, 100.0, out=out)

    def matrix(self, records: Sequence[Any]) -> Any:
        """The feature union's matrix for ``records`` (same columns and values as its transform)."""
        n = len(records)
        cache: dict[str, list[str]] = {}
        try:
            c_blocks = self._c_blocks(records, cache)
            blocks = [(c_blocks.get(id(p.compiled)) or p.compiled.block(records, cache)).matrix(n) for p in self.parts]
        finally:
            self._forget()
        # Stacked as FastFeatureUnion.transform stacks them: CSR when any part is sparse, else dense.
        return hstack_csr(blocks) if any(sp.issparse(b) for b in blocks) else np.hstack(blocks)


def compile_pipeline(pipeline: Any, c_reader: bool = True) -> CompiledScorer:
    """The compiled form of a fitted i-Score pipeline; NotCompilable for anything it does not know.

    ``c_reader``: read the text parts in C where iscore._speedups is built and knows them all."""
    if type(pipeline) is not Pipeline or [n for n, _ in pipeline.steps] != [FEATURES_STEP, MODEL_STEP]:
        raise NotCompilable("not an i-Score pipeline (features -> model)")
    union, calibrated = pipeline.steps[0][1], pipeline.steps[1][1]
    if type(union) is not FastFeatureUnion or union.transformer_weights is not None:
        raise NotCompilable(f"feature step {type(union).__name__} is not an unweighted FastFeatureUnion")
    if type(calibrated) is not PercentileCalibratedRegressor or not hasattr(calibrated, "regressor_"):
        raise NotCompilable(f"model step {type(calibrated).__name__} is not a fitted PercentileCalibratedRegressor")
    reg = calibrated.regressor_
    if type(reg) not in LINEAR_REGRESSORS:
        raise NotCompilable(f"regressor {type(reg).__name__} is not one the compiled scorer knows")
    # Each blend's raw score as the calibrated model computes it: the default with the regressor's own
    # coefficients (predict_raw), the others with its blend_terms (predict_blend).
    blends = calibrated.blends()
    terms: dict[str, tuple[np.ndarray, float]] = {blends[0]: (np.ravel(reg.coef_), float(np.ravel(reg.intercept_)[0]))}
    for blend in blends[1:]:
        coef_b, intercept_b = reg.blend_terms(blend)
        terms[blend] = (np.ravel(coef_b), float(intercept_b))
    coefs = {b: np.asarray(c, dtype=np.float64) for b, (c, _) in terms.items()}
    parts, start = [], 0
    shared: dict[int, _SharedClean] = {}  # one stand-in per distinct fitted cleaner
    for name, part in union.transformer_list:
        if part in ("drop", None):
            continue
        compiled = _compile_part(name, part, shared)
        parts.append(_Part(name, start, compiled, {b: c[start:start + compiled.width] for b, c in coefs.items()}))
        start += compiled.width
    for b, c in coefs.items():
        if start != c.shape[0]:
            raise NotCompilable(f"the parts have {start} columns, the {b} blend {c.shape[0]} coefficients")
    reader, why = _CReader.of([p.compiled for p in parts], shared) if c_reader else (None, "ISCORE_C_READER=0")
    return CompiledScorer(pipeline, parts, {b: i for b, (_, i) in terms.items()}, calibrated, terms,
                          tuple(shared.values()), reader, why)


def verification_records(texts: Sequence[str] = ()) -> list[dict[str, str]]:
    """Records the load-time check scores both ways: ``texts`` plus VERIFY_TEXTS, with varied sources."""
    all_texts = [*texts, *VERIFY_TEXTS]
    return [{"text": t, "source": VERIFY_SOURCES[i % len(VERIFY_SOURCES)]} for i, t in enumerate(all_texts)]


def verify(scorer: CompiledScorer, records: Sequence[Any]) -> float:
    """The largest score difference from the pipeline on ``records``; CompiledMismatch above TOLERANCE."""
    from iscore.scoring import score  # here: scoring imports this module

    if not len(records):
        return 0.0
    # Every blend; the batch, and each record alone: a pipeline of float32 parts rounds a batch and a
    # row differently.
    diffs = []
    for blend in scorer.blends:
        diffs.append(scorer.score(records, blend) - score(scorer.pipeline, records, blend))
        diffs.extend(scorer.score([r], blend) - score(scorer.pipeline, [r], blend) for r in records)
    diff = np.abs(np.concatenate(diffs))
    worst = float(diff.max()) if diff.size else 0.0
    if not worst <= TOLERANCE:  # NaN too
        i = int(np.argmax(np.nan_to_num(diff, nan=np.inf))) % max(1, len(records))
        raise CompiledMismatch(f"compiled scorer differs from the pipeline by {worst:.3g} (> {TOLERANCE:g}) "
                               f"on verification record {i}")
    return worst
