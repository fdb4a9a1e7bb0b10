"""iscore/model.py: the estimators' contract with scikit-learn, the accessors other modules use, the two-head
(desk) regressor, sparse stacking, the fast linear prediction and the display curve."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge, SGDRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from iscore.model import (
    CALIBRATED_CHECKS_FAILING_BY_DESIGN,
    FEATURES_STEP,
    MODEL_STEP,
    EditorialBlendRegressor,
    ModelConfig,
    PercentileCalibratedRegressor,
    add_stats_scaler,
    build_pipeline,
    calibrated_model,
    feature_parts,
    feature_union,
    fitted_regressor,
)

X = np.random.default_rng(0).normal(size=(40, 3))


@pytest.mark.parametrize("method", ["predict", "predict_raw", "percentile"])
def test_predict_before_fit_raises_not_fitted_error(method):
    with pytest.raises(NotFittedError):
        getattr(PercentileCalibratedRegressor(), method)(X)


def test_unfitted_desk_head_and_pipeline_raise_not_fitted_error():
    with pytest.raises(NotFittedError):
        EditorialBlendRegressor().predict(X)
    with pytest.raises(NotFittedError):
        fitted_regressor(build_pipeline(ModelConfig()))


def test_check_estimator_fails_exactly_the_checks_documented_as_by_design():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(PercentileCalibratedRegressor(), on_fail=None)
    failed = {r["check_name"] for r in results if r["status"] == "failed"}
    assert failed == set(CALIBRATED_CHECKS_FAILING_BY_DESIGN)
    assert "check_estimators_unfitted" in {r["check_name"] for r in results if r["status"] == "passed"}


def test_accessors_name_the_two_steps_and_the_feature_parts(tiny_model):
    pipe = tiny_model[0]
    assert [name for name, _ in pipe.steps] == [FEATURES_STEP, MODEL_STEP]
    assert feature_union(pipe) is pipe.steps[0][1] and calibrated_model(pipe) is pipe.steps[1][1]
    assert list(feature_parts(pipe)) == ["words", "stats", "source"]
    assert fitted_regressor(pipe) is calibrated_model(pipe).regressor_
    assert list(feature_parts(build_pipeline(ModelConfig(use_source=False, char_ngrams=True)))) == [
        "words", "chars", "stats"]


def test_out_of_core_parts_install_a_scaler_and_stream_the_regressor():
    pipe = build_pipeline(ModelConfig(out_of_core=True))
    stats = feature_parts(pipe)["stats"]
    assert isinstance(stats, Pipeline) and [n for n, _ in stats.steps] == ["stats"]
    scaler = StandardScaler()
    add_stats_scaler(pipe, scaler)
    assert stats.steps[-1] == ("scale", scaler)

    model = PercentileCalibratedRegressor(SGDRegressor(random_state=0))
    same = SGDRegressor(random_state=0)
    y = X @ np.array([1.0, -2.0, 0.5])
    for chunk in (slice(0, 20), slice(20, 40)):
        model.partial_fit_raw(X[chunk], y[chunk])
        same.partial_fit(X[chunk], y[chunk])
    assert not hasattr(model.regressor, "coef_")  # the parameter stays an unfitted template
    np.testing.assert_array_equal(model.predict_raw(X), same.predict(X))
    with pytest.raises(NotFittedError):  # no 0-100 scale until set_reference
        model.predict(X)
    model.set_reference(model.predict_raw(X))
    assert 0.0 <= model.predict(X).min() < model.predict(X).max() <= 100.0


def _xy(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    eng = X @ np.array([1.0, 0.5, 0, 0, 0, 0]) + rng.normal(scale=0.3, size=n)
    desk = np.where(X[:, 2] > 0, 100.0, 0.0)
    desk[rng.random(n) < 0.5] = np.nan  # half the rows carry no desk label
    return X, np.column_stack([eng, desk])


def test_blend_is_one_linear_model_of_its_two_heads():
    X, y = _xy()
    reg = EditorialBlendRegressor(alpha=1.0, desk_alpha=1.0, desk_weight=0.7)
    assert reg.fit(X, y) is reg
    known = np.isfinite(y[:, 1])
    # Each head is a plain ridge: the engagement head on every row, the desk head on labelled rows.
    np.testing.assert_allclose(reg.engagement_.coef_, Ridge(alpha=1.0).fit(X, y[:, 0]).coef_)
    np.testing.assert_allclose(reg.desk_.coef_, Ridge(alpha=1.0).fit(X[known], y[known, 1]).coef_)
    assert reg.desk_rows_ == int(known.sum())
    want = reg.engagement_.predict(X) / reg.scales_[0] + 0.7 * reg.desk_.predict(X) / reg.scales_[1]
    np.testing.assert_allclose(reg.predict(X), want)
    # The desk weight moves the combined coefficients toward the desk feature.
    light = EditorialBlendRegressor(alpha=1.0, desk_alpha=1.0, desk_weight=0.1).fit(X, y)
    assert reg.coef_[2] / reg.coef_[0] > light.coef_[2] / light.coef_[0] > 0


def test_blend_passes_sample_weights_to_both_heads():
    X, y = _xy()
    w = np.random.default_rng(1).uniform(0.5, 3.0, size=len(X))
    reg = EditorialBlendRegressor(alpha=1.0, desk_alpha=1.0).fit(X, y, sample_weight=w)
    known = np.isfinite(y[:, 1])
    np.testing.assert_allclose(reg.engagement_.coef_, Ridge(alpha=1.0).fit(X, y[:, 0], sample_weight=w).coef_)
    np.testing.assert_allclose(reg.desk_.coef_, Ridge(alpha=1.0).fit(X[known], y[known, 1], sample_weight=w[known]).coef_)


def test_blend_refuses_targets_it_cannot_use():
    X, y = _xy()
    with pytest.raises(ValueError, match="two columns"):
        EditorialBlendRegressor().fit(X, y[:, 0])
    one_desk = y.copy()
    one_desk[:, 1] = np.where(np.isfinite(y[:, 1]), 100.0, np.nan)
    with pytest.raises(ValueError, match="both desks"):
        EditorialBlendRegressor().fit(X, one_desk)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 6), st.lists(st.sampled_from(["sparse", "dense", "empty"]), min_size=1, max_size=4), st.integers(0, 99))
def test_hstack_csr_matches_scipy(n, kinds, seed):
    import scipy.sparse as sp

    from iscore.model import hstack_csr

    rng = np.random.default_rng(seed)
    parts = []
    for k in kinds:
        cols = int(rng.integers(1, 6))
        if k == "sparse":
            parts.append(sp.random(n, cols, density=0.4, format="csr", random_state=seed))
        elif k == "dense":
            parts.append(rng.normal(size=(n, cols)))
        else:
            parts.append(sp.csr_matrix((n, cols)))
    expected = sp.hstack([sp.csr_matrix(p) for p in parts]).toarray()
    np.testing.assert_array_equal(hstack_csr(parts).toarray(), expected)


def test_fast_linear_prediction_equals_sklearn(tiny_model):
    pipe = tiny_model[0]
    X = feature_union(pipe).transform(["Earthquake kills many in Chile", "Cute cats", ""])
    reg = calibrated_model(pipe)
    np.testing.assert_allclose(reg.predict_raw(X), fitted_regressor(pipe).predict(X), rtol=1e-10, atol=1e-10)


def test_display_curve_is_monotone_and_spans_0_100(tiny_model):
    from iscore.model import DEFAULT_CURVE

    xs, ys = zip(*DEFAULT_CURVE)
    assert xs[0] == ys[0] == 0 and xs[-1] == ys[-1] == 100
    assert all(b > a for a, b in zip(xs, xs[1:])) and all(b > a for a, b in zip(ys, ys[1:]))
    reg = calibrated_model(tiny_model[0])
    X = feature_union(tiny_model[0]).transform(tiny_model[1])
    pct, s = reg.percentile(X), reg.predict(X)
    order = np.argsort(pct)
    assert np.all(np.diff(s[order]) >= -1e-9)  # same order as the percentile
    assert abs(np.median(s) - 35) < 5  # the median training headline sits at the curve's 50th point


def test_the_dial_scores_each_blend_on_its_own_scale():
    X, y = _xy()
    model = PercentileCalibratedRegressor(EditorialBlendRegressor(alpha=1.0, desk_alpha=1.0, desk_weight=2.0)).fit(X, y)
    assert model.blends() == ("editorial", "engagement")
    reg = model.regressor_
    # "engagement" is that head alone, scaled; "editorial" the fitted blend.
    np.testing.assert_allclose(X @ model.blend_terms("engagement")[0] + model.blend_terms("engagement")[1],
                               reg.engagement_.predict(X) / reg.scales_[0])
    np.testing.assert_allclose(model.predict_blend(X, "editorial"), model.predict(X))
    eng = model.predict_blend(X, "engagement")
    # Its own scale: the training rows spread over 0-100 with the same median as the default blend.
    assert np.median(eng) == pytest.approx(np.median(model.predict(X)), abs=1.0)
    assert eng.min() < 5 and eng.max() > 95
    # A different ranking: the desk feature (column 2) counts less without the desk head.
    assert np.corrcoef(eng, X[:, 2])[0, 1] < np.corrcoef(model.predict(X), X[:, 2])[0, 1]
    with pytest.raises(ValueError, match="no 'popular' blend"):
        model.predict_blend(X, "popular")


def test_a_one_head_model_offers_one_blend():
    X, y = _xy()
    model = PercentileCalibratedRegressor(Ridge(alpha=1.0)).fit(X, y[:, 0])
    assert model.blends() == ("engagement",)
    np.testing.assert_allclose(model.predict_blend(X, "engagement"), model.predict(X))
    with pytest.raises(ValueError):
        model.predict_blend(X, "editorial")
