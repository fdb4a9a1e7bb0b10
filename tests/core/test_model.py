"""iscore/model.py: the estimators' contract with scikit-learn and the accessors other modules use."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import SGDRegressor
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
