"""The i-Score estimator: one sklearn Pipeline from raw headline records to a 0-100 score."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import Ridge, SGDRegressor
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from iscore.features import (COMMERCE_WORDS, HARM_WORDS, ColumnPicker, HeadlineCleaner, HeadlineStats, SourceEncoder,
                             StaticEmbedder, scale_table)
from iscore.settings import BLEND_NAMES

# Names of the two steps of every i-Score pipeline. Pickled versions carry them: never rename.
FEATURES_STEP = "features"
MODEL_STEP = "model"


class FastFeatureUnion(FeatureUnion):
    """A FeatureUnion whose ``transform`` stacks its parts directly.

    The stock one dispatches through joblib even with one job, which costs more than the
    features themselves when the service scores a single headline.
    """

    def transform(self, X: Any) -> Any:
        parts = [t.transform(X) for _, t in self.transformer_list if t not in ("drop", None)]
        if any(sp.issparse(p) for p in parts):
            return hstack_csr(parts)
        return np.hstack(parts)


def hstack_csr(parts: list[Any]) -> sp.csr_matrix:
    """Column-wise concatenation into CSR with plain numpy (scipy's goes through COO, which is slower
    for the one-row batches the service scores; README, Benchmarks)."""
    blocks = [p.tocsr() if sp.issparse(p) else sp.csr_matrix(p) for p in parts]
    n = blocks[0].shape[0]
    row_nnz = [np.diff(b.indptr) for b in blocks]
    total = np.sum(row_nnz, axis=0) if n else np.zeros(0, dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(total, out=indptr[1:])
    data = np.empty(int(indptr[-1]), dtype=np.result_type(*[b.dtype for b in blocks]))
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    before = np.zeros(n, dtype=np.int64)  # nnz of earlier blocks in each row
    col0 = 0
    for b, nnz in zip(blocks, row_nnz):
        rows = np.repeat(np.arange(n), nnz)
        dest = indptr[:-1][rows] + before[rows] + (np.arange(b.nnz) - b.indptr[:-1][rows])
        data[dest] = b.data
        indices[dest] = b.indices + col0
        before += nnz
        col0 += b.shape[1]
    return sp.csr_matrix((data, indices, indptr), shape=(n, col0))


# Display curve: percentile of the raw prediction -> i-Score. A sidebar shows the top of an hour's
# news, so the scale spends its range there: the median headline scores 35, the top 20 % score 55+,
# the top 5 % 75+, and red (60 by default) is roughly the top 15 %.
DEFAULT_CURVE = ((0.0, 0.0), (50.0, 35.0), (80.0, 55.0), (95.0, 75.0), (99.5, 90.0), (100.0, 100.0))


# The popularity/importance dial (#14 item 7): which heads of an EditorialBlendRegressor a score uses.
# "editorial" is the fitted blend (engagement plus the hard-news desk), "engagement" that head alone.
BLENDS = BLEND_NAMES


class EditorialBlendRegressor(RegressorMixin, BaseEstimator):
    """Two ridge heads on the same features, added into one linear model.

    ``y`` has two columns: the engagement target (every row) and a desk label (100 hard news,
    0 soft news, NaN unknown; see training/desk.py). Each head's training predictions are scaled
    to unit spread, then ``raw = engagement + desk_weight * desk``. Because both heads are linear
    in the same features, the sum is one coefficient vector: scoring costs what one ridge costs.
    """

    prior: tuple[float, ...] = ()  # versions pickled before the magnitude prior have none

    def __init__(self, alpha: float = 30.0, desk_alpha: float = 30.0, desk_weight: float = 1.0,
                 prior: tuple[float, ...] = ()):
        self.alpha = alpha
        self.desk_alpha = desk_alpha
        self.desk_weight = desk_weight
        self.prior = prior

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "EditorialBlendRegressor":
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2 or y.shape[1] != 2:
            raise ValueError("EditorialBlendRegressor needs y with two columns: engagement target and desk label")
        desk = y[:, 1]
        known = np.isfinite(desk)
        if len(np.unique(desk[known])) < 2:
            raise ValueError("the desk head needs rows of both desks (hard and soft news); "
                             f"got {int(known.sum())} labelled rows")
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.engagement_ = Ridge(alpha=self.alpha).fit(X, y[:, 0], sample_weight=w)
        rows = np.flatnonzero(known)
        self.desk_ = Ridge(alpha=self.desk_alpha).fit(X[rows], desk[rows], sample_weight=None if w is None else w[rows])
        self.desk_rows_ = int(rows.size)
        # Unit spread on the training rows, so desk_weight means "desk std per engagement std".
        self.scales_ = (_spread(X @ self.engagement_.coef_), _spread(X @ self.desk_.coef_))
        self.coef_ = (self.engagement_.coef_ / self.scales_[0]
                      + self.desk_weight * self.desk_.coef_ / self.scales_[1])
        self.intercept_ = np.asarray([self.engagement_.intercept_ / self.scales_[0]
                                      + self.desk_weight * self.desk_.intercept_ / self.scales_[1]])
        if self.prior:
            self.coef_ = self.coef_ + self._prior_terms(X)
        return self

    def _prior_terms(self, X: Any) -> np.ndarray:
        """The fixed magnitude prior as coefficients: ``prior[j]`` blend spreads per training spread of
        the j-th of the last ``len(prior)`` columns (the statistics put the toll and the scale there).

        No label in the data rewards size (bench/magnitude_labels.py), so the heads cannot learn it; the
        editorial blend adds it as a prior whose weights are chosen on the dev behaviour suite.
        """
        k = len(self.prior)
        if k > X.shape[1]:
            raise ValueError(f"a prior on the last {k} columns needs at least {k} feature columns")
        spread = _spread(X @ self.coef_)
        tail = X[:, X.shape[1] - k:]
        tail = tail.toarray() if hasattr(tail, "toarray") else np.asarray(tail)
        add = np.zeros(X.shape[1], dtype=np.float64)
        for j, (w, sd) in enumerate(zip(self.prior, np.std(tail, axis=0))):
            if w and sd > 0:  # a constant column (no word vectors, say) cannot carry a prior
                add[X.shape[1] - k + j] = float(w) * spread / float(sd)
        return add

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return np.asarray(X @ self.coef_ + self.intercept_[0], dtype=np.float64).ravel()

    def blend_terms(self, blend: str) -> tuple[np.ndarray, float]:
        """Coefficients and intercept of one blend: "editorial" (the fitted blend) or "engagement" (that head alone)."""
        check_is_fitted(self, "coef_")
        if blend == "editorial":
            return self.coef_, float(self.intercept_[0])
        if blend == "engagement":
            return self.engagement_.coef_ / self.scales_[0], float(self.engagement_.intercept_) / self.scales_[0]
        raise ValueError(f"unknown blend {blend!r}; this model has {', '.join(BLENDS)}")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # fitted on the feature union's sparse matrix
        return tags


def _quantiles(raw: Any, n_quantiles: int) -> tuple[np.ndarray, np.ndarray]:
    """Strictly increasing quantiles of the finite raw predictions, and the percentile level of each."""
    raw = np.asarray(raw, dtype=np.float64)
    raw = raw[np.isfinite(raw)]
    if raw.size == 0:
        raise ValueError("cannot calibrate on zero finite predictions")
    levels = np.linspace(0.0, 100.0, n_quantiles)
    q = np.quantile(raw, levels / 100.0)
    # np.interp needs strictly increasing x: merge tied quantiles into their mean level.
    uq, inverse = np.unique(q, return_inverse=True)
    return uq, np.bincount(inverse, weights=levels) / np.bincount(inverse)


def _percentile(raw: np.ndarray, quantiles: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Percentile (0-100) of each raw value on a reference scale."""
    if quantiles.size == 1:
        return np.full(raw.shape, 50.0)
    return np.clip(np.nan_to_num(np.interp(raw, quantiles, levels), nan=50.0), 0.0, 100.0)


def _spread(values: Any) -> float:
    std = float(np.std(np.asarray(values, dtype=np.float64)))
    return std if std > 0 else 1.0


class PercentileCalibratedRegressor(RegressorMixin, BaseEstimator):
    """Wrap a regressor so ``predict`` returns a 0-100 score from the percentile of its prediction.

    The reference distribution is the inner model's predictions on its own training rows, mapped
    through a fixed monotone ``curve`` (percentile -> score). A given score therefore always means
    the same percentile of "what this version was trained on", from one retrain to the next.
    """

    def __init__(self, regressor: Any = None, n_quantiles: int = 1001, curve: Any = DEFAULT_CURVE):
        self.regressor = regressor
        self.n_quantiles = n_quantiles
        self.curve = curve

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "PercentileCalibratedRegressor":
        base = Ridge(alpha=1.0) if self.regressor is None else self.regressor
        self.regressor_ = clone(base)
        if sample_weight is None:
            self.regressor_.fit(X, y)
        else:
            self.regressor_.fit(X, y, sample_weight=sample_weight)
        self.set_reference(self.regressor_.predict(X))
        if hasattr(self.regressor_, "blend_terms"):
            # Each other blend gets its own 0-100 scale from the same training rows, so a score means
            # the same percentile whichever blend a request asks for.
            self.blend_references_ = {}
            for blend in BLENDS[1:]:
                coef, intercept = self.regressor_.blend_terms(blend)
                self.blend_references_[blend] = _quantiles(np.asarray(X @ coef + intercept).ravel(), self.n_quantiles)
        return self

    def set_reference(self, raw: np.ndarray) -> "PercentileCalibratedRegressor":
        """Store the quantiles of raw predictions that define the 0-100 scale."""
        self.quantiles_, self.levels_ = _quantiles(raw, self.n_quantiles)
        return self

    def partial_fit_raw(self, X: Any, y: Any) -> "PercentileCalibratedRegressor":
        """Update the inner regressor with one chunk (out-of-core training); call set_reference after the last."""
        if not hasattr(self, "regressor_"):
            self.regressor_ = clone(self.regressor)
        self.regressor_.partial_fit(X, y)
        return self

    def predict_raw(self, X: Any) -> np.ndarray:
        """The inner regressor's uncalibrated prediction."""
        check_is_fitted(self, "regressor_")  # NotFittedError, not AttributeError, before fit
        reg = self.regressor_
        if isinstance(reg, (Ridge, SGDRegressor, EditorialBlendRegressor)):
            # X @ coef + intercept is all a fitted linear model's predict does; calling it directly
            # skips input validation that costs more than the product for one headline.
            out = X @ np.ravel(reg.coef_) + np.ravel(reg.intercept_)[0]
            return np.asarray(out, dtype=np.float64).ravel()
        return np.asarray(reg.predict(X), dtype=np.float64)

    def percentile(self, X: Any) -> np.ndarray:
        """Percentile (0-100) of each raw prediction among the training predictions."""
        return self.percentile_of_raw(self.predict_raw(X))

    def percentile_of_raw(self, raw: np.ndarray) -> np.ndarray:
        """Percentile (0-100) of raw predictions among the training predictions (a compiled scorer calls this too)."""
        check_is_fitted(self, "quantiles_")
        return _percentile(raw, self.quantiles_, self.levels_)

    def predict(self, X: Any) -> np.ndarray:
        return self._display(self.percentile(X))

    def score_of_raw(self, raw: np.ndarray, blend: str | None = None) -> np.ndarray:
        """0-100 scores of raw predictions of ``blend`` (default: the model's own), on that blend's scale
        (a compiled scorer calls this too)."""
        if blend is None or blend == self.blends()[0]:
            return self._display(self.percentile_of_raw(raw))
        refs = getattr(self, "blend_references_", {})
        if blend not in refs:
            raise ValueError(f"this model has no {blend!r} blend; it has {', '.join(self.blends())}")
        return self._display(_percentile(np.asarray(raw, dtype=np.float64), *refs[blend]))

    def blends(self) -> tuple[str, ...]:
        """The blends this model scores with, its default first (one, unless its regressor has several heads)."""
        check_is_fitted(self, "regressor_")
        if not hasattr(self.regressor_, "blend_terms"):
            return ("engagement",)
        return ("editorial", *getattr(self, "blend_references_", {}))  # versions before the dial: one

    def predict_blend(self, X: Any, blend: str) -> np.ndarray:
        """0-100 scores of one blend (:meth:`blends`), on that blend's own scale."""
        offered = self.blends()
        if blend not in offered:
            raise ValueError(f"this model has no {blend!r} blend; it has {', '.join(offered)}")
        if blend == offered[0]:
            return self.predict(X)
        coef, intercept = self.regressor_.blend_terms(blend)
        return self.score_of_raw(np.asarray(X @ coef + intercept, dtype=np.float64).ravel(), blend)

    def blend_terms(self, blend: str | None = None) -> tuple[np.ndarray, float]:
        """Coefficients and intercept of the raw score of ``blend`` (default: the model's own)."""
        reg = self.regressor_
        if blend is None or blend == self.blends()[0] or not hasattr(reg, "blend_terms"):
            return np.ravel(reg.coef_).astype(np.float64), float(np.ravel(reg.intercept_)[0])
        coef, intercept = reg.blend_terms(blend)
        return np.ravel(coef).astype(np.float64), float(intercept)

    def _display(self, pct: np.ndarray) -> np.ndarray:
        curve = getattr(self, "curve", None)  # versions pickled before the curve existed
        if not curve:
            return pct
        xs, ys = zip(*curve)
        return np.interp(pct, xs, ys)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # fitted on the feature union's sparse matrix
        return tags


# sklearn.utils.estimator_checks.check_estimator on PercentileCalibratedRegressor (scikit-learn 1.9.1):
# 50 of 60 checks pass; these fail by design (tests/test_model.py keeps the list exact).
_NO_INPUT_CHECKS = ("predict skips input validation: for the one headline the service scores it costs more than "
                    "the product, and X always comes from the pipeline's own feature union")
CALIBRATED_CHECKS_FAILING_BY_DESIGN: dict[str, str] = {
    "check_n_features_in": _NO_INPUT_CHECKS,
    "check_n_features_in_after_fitting": _NO_INPUT_CHECKS,
    "check_fit2d_predict1d": _NO_INPUT_CHECKS,
    "check_estimators_nan_inf": _NO_INPUT_CHECKS + " (iscore.scoring.score maps non-finite scores into 0-100)",
    "check_regressors_train": "predict returns a 0-100 percentile score, not values on the scale of y, so R^2 "
                              "against y says nothing",
    "check_sample_weight_equivalence_on_dense_data": "the 0-100 reference is the predictions on the training rows, "
                                                     "each counted once: a weight changes the fit, not the scale",
    "check_sample_weight_equivalence_on_sparse_data": "as on dense data",
    "check_supervised_y_2d": "y reaches the inner regressor as given: EditorialBlendRegressor needs two columns",
}
# The other custom estimators fail more, also by design: EditorialBlendRegressor 44 of 60 (it needs a
# two-column y, engagement and desk label, and most checks fit a 1-D y); FastFeatureUnion the same 3 of
# 67 as sklearn's own FeatureUnion; the iscore.features transformers 24-34 of 47 (they read headline
# records, text and source, not numeric arrays).


@dataclass(frozen=True)
class ModelConfig:
    """What the pipeline is made of; stored in the manifest so a version can be rebuilt."""

    word_ngrams: tuple[int, int] = (1, 2)
    max_word_features: int = 60_000
    min_df: int = 2
    char_ngrams: bool = False
    use_stats: bool = True
    use_source: bool = True
    use_embeddings: bool = False
    use_words: bool = True
    embedding_weight: float = 1.0
    alpha: float = 30.0
    # Weight of the desk (hard vs soft news) head against the engagement head; 0 = engagement only.
    desk_weight: float = 0.0
    desk_alpha: float = 30.0
    out_of_core: bool = False
    hash_features: int = 2**20
    # Read content, not presentation (#14): kickers dropped, names as one class, case and punctuation
    # ignored (iscore.features.HeadlineCleaner); out-of-core models keep stateless raw-text features.
    clean_text: bool = True
    # With clean_text: names the training headlines capitalise this often or more read as one
    # "prominent name" class, the rest as "a name" (0: one class for all names).
    min_prominent: int = 100
    # With clean_text and the desk head: fixed weights of (toll, size axis) in the editorial blend, in
    # blend spreads per feature spread (#14 item 4), chosen on the development suite
    # (bench/magnitude_grid.py; README, "Magnitude"); (0, 0) keeps the statistics without the axes.
    magnitude_prior: tuple[float, float] = (0.25, 0.4)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form for the manifest."""
        d = asdict(self)
        d["word_ngrams"] = list(self.word_ngrams)
        d["magnitude_prior"] = list(self.magnitude_prior)
        return d

    @property
    def uses_prior(self) -> bool:
        """Whether the editorial blend carries the magnitude prior (needs cleaned text and the desk head)."""
        return (any(self.magnitude_prior) and self.clean_text and self.desk_weight > 0
                and not self.out_of_core and self.use_stats)


def build_features(config: ModelConfig, embedder: StaticEmbedder | None = None) -> FeatureUnion:
    """The feature union named by ``config`` (unfitted)."""
    parts: list[tuple[str, Any]] = []
    cleaner = (HeadlineCleaner(min_prominent=config.min_prominent)
               if config.clean_text and not config.out_of_core else None)
    if config.out_of_core:
        # Stateless features only: each chunk can be transformed without a vocabulary pass.
        words = HashingVectorizer(
            ngram_range=config.word_ngrams,
            n_features=config.hash_features,
            alternate_sign=False,
            norm="l2",
            dtype=np.float32,
        )
    else:
        words = TfidfVectorizer(
            ngram_range=config.word_ngrams,
            min_df=config.min_df,
            max_features=config.max_word_features,
            sublinear_tf=True,
            dtype=np.float32,
        )
    if config.use_words:
        parts.append(("words", Pipeline([("pick", ColumnPicker("text", cleaner)), ("vec", words)])))
    if config.char_ngrams and not config.out_of_core:
        chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), min_df=5, max_features=50_000,
            sublinear_tf=True, dtype=np.float32,
        )
        parts.append(("chars", Pipeline([("pick", ColumnPicker("text", cleaner)), ("vec", chars)])))
    if config.use_stats:
        # With the magnitude prior the statistics gain the toll and the size axis and go last: the prior
        # weighs the union's last columns (harm_quantity, scale).
        scale = harm = None
        if config.uses_prior:
            scale = scale_table(embedder.vocab, embedder.vectors) if embedder is not None else {}
            harm = (scale_table(embedder.vocab, embedder.vectors, HARM_WORDS, COMMERCE_WORDS)
                    if embedder is not None else {})
        steps: list[tuple[str, Any]] = [("stats", HeadlineStats(cleaner, scale=scale, harm=harm))]
        if not config.out_of_core:
            steps.append(("scale", StandardScaler()))
        parts.append(("stats", Pipeline(steps)))
    if config.use_source:
        # Out-of-core fits this encoder on the sources collected in the label pass.
        parts.append(("source", SourceEncoder(min_count=20)))
    if config.use_embeddings:
        if embedder is None:
            raise ValueError("use_embeddings needs an embedder (vocab and vectors)")
        parts.append(("semantic", clone(embedder).set_params(weight=config.embedding_weight, cleaner=cleaner)))
    if config.uses_prior:
        parts.sort(key=lambda part: part[0] == "stats")  # stable: the others keep their order
    return FastFeatureUnion(parts)


def build_pipeline(config: ModelConfig, embedder: StaticEmbedder | None = None) -> Pipeline:
    """An unfitted i-Score pipeline: features, then a percentile-calibrated regressor."""
    if config.out_of_core:
        # Averaged SGD with a constant step: the best of the step rules compared (README,
        # "Which training path for which size").
        reg: Any = SGDRegressor(alpha=config.alpha * 1e-7, penalty="l2", learning_rate="constant",
                                eta0=0.01, average=True, random_state=0)
    elif config.desk_weight > 0:
        reg = EditorialBlendRegressor(alpha=config.alpha, desk_alpha=config.desk_alpha, desk_weight=config.desk_weight,
                                      prior=tuple(config.magnitude_prior) if config.uses_prior else ())
    else:
        reg = Ridge(alpha=config.alpha, solver="auto")
    return Pipeline([
        (FEATURES_STEP, build_features(config, embedder)),
        (MODEL_STEP, PercentileCalibratedRegressor(reg)),
    ])


def feature_union(pipeline: Pipeline) -> FeatureUnion:
    """The feature step of an i-Score pipeline: records in, one feature matrix out."""
    return pipeline.named_steps[FEATURES_STEP]


def feature_parts(pipeline: Pipeline) -> dict[str, Any]:
    """The feature union's parts by name ("words", "chars", "stats", "source", "semantic")."""
    return dict(feature_union(pipeline).transformer_list)


def calibrated_model(pipeline: Pipeline) -> PercentileCalibratedRegressor:
    """The model step of an i-Score pipeline: feature matrix in, 0-100 score out."""
    return pipeline.named_steps[MODEL_STEP]


def fitted_regressor(pipeline: Pipeline) -> Any:
    """The fitted inner regressor, whose prediction is the raw (uncalibrated) score."""
    model = calibrated_model(pipeline)
    check_is_fitted(model, "regressor_")
    return model.regressor_


def linear_terms(pipeline: Pipeline, blend: str | None = None) -> tuple[np.ndarray, float]:
    """Coefficients over the feature union's columns and the intercept: raw score = X @ coef + intercept.

    ``blend`` picks one of :func:`blends` (default: the model's own). AttributeError when the fitted
    regressor is not linear.
    """
    fitted_regressor(pipeline)  # NotFittedError before fit
    return calibrated_model(pipeline).blend_terms(blend)


def blends(pipeline: Pipeline) -> tuple[str, ...]:
    """The blends a fitted i-Score pipeline can score with, its default first."""
    return calibrated_model(pipeline).blends()


def part_columns(pipeline: Pipeline) -> list[tuple[str, Any, np.ndarray]]:
    """``(name, transformer, feature names)`` of each feature part, in the union's column order.

    The union's columns are these parts' columns side by side; a part's names carry no prefix.
    """
    return [(name, t, np.asarray(t.get_feature_names_out(), dtype=object))
            for name, t in feature_union(pipeline).transformer_list if t not in ("drop", None)]


def raw_score(pipeline: Pipeline, records: Any) -> np.ndarray:
    """The inner regressor's prediction (before the 0-100 calibration) for ``records``."""
    return calibrated_model(pipeline).predict_raw(feature_union(pipeline).transform(records))


def known_words(pipeline: Pipeline) -> Any | None:
    """The word vocabulary the model learned (``token in known_words(p)``); None when it has none.

    Models without a word part (``use_words=False``) or with hashed words (out-of-core) learned no
    vocabulary: whether a word is known cannot be told, which is not the same as "unknown".
    """
    words = feature_parts(pipeline).get("words")
    return None if words is None else getattr(words.steps[-1][1], "vocabulary_", None)


def trained_sources(pipeline: Pipeline) -> Any:
    """Source keys the model has a weight for (``key in trained_sources(p)``); empty without a source part."""
    encoder = feature_parts(pipeline).get("source")
    return frozenset() if encoder is None else encoder.index_


def median_score(pipeline: Pipeline) -> float:
    """The i-Score of the median training headline (the display curve at percentile 50)."""
    xs, ys = zip(*(getattr(calibrated_model(pipeline), "curve", None) or DEFAULT_CURVE))
    return float(np.interp(50.0, xs, ys))


def add_stats_scaler(pipeline: Pipeline, scaler: StandardScaler) -> None:
    """Append a scaler fitted elsewhere to the headline-statistics part (out-of-core training fits it in pass 1)."""
    feature_parts(pipeline)["stats"].steps.append(("scale", scaler))
