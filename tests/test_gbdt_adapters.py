"""crossent.xgboost and crossent.lightgbm with the real libraries.

The exactness goal: 50 rounds on scikit-learn's breast cancer (binary) and
digits (10 classes) with the crossent objective reproduce the built-in
objective's predictions to 1e-5 (relative), the same hyper-parameters and
the same starting score on both sides.  Also: both library interfaces
(``train`` and the scikit-learn estimators), the layouts handed over without
copies, the logloss metrics, and the message when a library is missing.
"""
import importlib
import sys

import numpy as np
import pytest

import crossent

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
datasets = pytest.importorskip("sklearn.datasets")
sk_metrics = pytest.importorskip("sklearn.metrics")

import crossent.lightgbm as cl  # noqa: E402
import crossent.xgboost as cx  # noqa: E402

ROUNDS = 50
RTOL = 1e-5


def breast_cancer():
    X, y = datasets.load_breast_cancer(return_X_y=True)
    return X, y.astype(np.float64)


def digits():
    X, y = datasets.load_digits(return_X_y=True)
    return X, y


def assert_predictions_agree(custom, builtin):
    """Agreement to RTOL relative, judged against the predictions' scale
    where a margin crosses 0."""
    custom, builtin = np.asarray(custom), np.asarray(builtin)
    scale = float(np.max(np.abs(builtin)))
    np.testing.assert_allclose(custom, builtin, rtol=RTOL, atol=RTOL * scale)


# ----------------------------------------------------------------- XGBoost

XGB_PARAMS = {"tree_method": "hist", "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 0}


def xgb_train_pair(X, y, builtin_params, objective):
    n_groups = builtin_params.get("num_class", 1)
    margin = np.zeros((len(y), n_groups) if n_groups > 1 else len(y), np.float32)
    dtrain = xgb.DMatrix(X, label=y, base_margin=margin)
    params = {**XGB_PARAMS, **builtin_params}
    builtin = xgb.train(params, dtrain, ROUNDS)
    custom = xgb.train(params, dtrain, ROUNDS, obj=objective)
    return (custom.predict(dtrain, output_margin=True),
            builtin.predict(dtrain, output_margin=True))


def test_xgboost_binary_reproduces_the_builtin_objective():
    X, y = breast_cancer()
    custom, builtin = xgb_train_pair(X, y, {"objective": "binary:logistic"}, cx.logistic())
    assert_predictions_agree(custom, builtin)
    assert_predictions_agree(1 / (1 + np.exp(-custom)), 1 / (1 + np.exp(-builtin)))


@pytest.mark.slow
def test_xgboost_multiclass_reproduces_the_builtin_objective():
    X, y = digits()
    custom, builtin = xgb_train_pair(X, y, {"objective": "multi:softprob", "num_class": 10},
                                     cx.softmax())
    assert custom.shape == (len(y), 10)
    assert_predictions_agree(custom, builtin)


def test_xgboost_multiclass_few_rounds_reproduce_the_builtin_objective():
    X, y = digits()
    X, y = X[:600], y[:600]
    params = {**XGB_PARAMS, "objective": "multi:softprob", "num_class": 10}
    dtrain = xgb.DMatrix(X, label=y, base_margin=np.zeros((len(y), 10), np.float32))
    builtin = xgb.train(params, dtrain, 5)
    custom = xgb.train(params, dtrain, 5, obj=cx.softmax())
    assert_predictions_agree(custom.predict(dtrain, output_margin=True),
                             builtin.predict(dtrain, output_margin=True))


def test_xgboost_other_hessians_change_the_model():
    X, y = digits()
    X, y = X[:600], y[:600]
    params = {**XGB_PARAMS, "objective": "multi:softprob", "num_class": 10}
    dtrain = xgb.DMatrix(X, label=y, base_margin=np.zeros((len(y), 10), np.float32))
    builtin = xgb.train(params, dtrain, 3).predict(dtrain, output_margin=True)
    exact = xgb.train(params, dtrain, 3, obj=cx.softmax(hessian="exact"))
    assert not np.allclose(exact.predict(dtrain, output_margin=True), builtin, rtol=1e-3)


def test_xgboost_sklearn_interface_with_weights():
    X, y = breast_cancer()
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    margin = np.zeros(len(y))
    options = dict(n_estimators=20, max_depth=3, learning_rate=0.3, n_jobs=1, tree_method="hist")
    builtin = xgb.XGBClassifier(objective="binary:logistic", **options)
    builtin.fit(X, y, sample_weight=w, base_margin=margin)
    custom = xgb.XGBClassifier(objective=cx.logistic(), **options)
    custom.fit(X, y, sample_weight=w, base_margin=margin)
    assert_predictions_agree(custom.predict(X, output_margin=True, base_margin=margin),
                             builtin.predict(X, output_margin=True, base_margin=margin))


def test_xgboost_objective_returns_float32_in_its_layout():
    X, y = digits()
    objective = cx.softmax()
    dtrain = xgb.DMatrix(X[:50], label=y[:50])
    predt = np.random.default_rng(1).normal(size=(50, 10)).astype(np.float32)
    grad, hess = objective(predt, dtrain)
    assert grad.dtype == hess.dtype == np.float32 and grad.shape == (50, 10)
    assert grad.flags.c_contiguous
    again = objective(predt, dtrain)
    assert again[0] is grad, "the buffers are reused from round to round"
    expected = crossent.objectives.softmax(predt, y[:50], hessian="xgboost")
    assert np.array_equal(grad, expected[0]) and np.array_equal(hess, expected[1])


def test_xgboost_logloss_metric_matches_sklearn():
    X, y = breast_cancer()
    dtrain = xgb.DMatrix(X, label=y)
    margins = np.random.default_rng(2).normal(size=len(y)).astype(np.float32)
    name, value = cx.logloss(margins, dtrain)
    assert name == "logloss"
    expected = sk_metrics.log_loss(y, 1 / (1 + np.exp(-margins.astype(np.float64))))
    assert value == pytest.approx(expected, rel=1e-5)
    Xd, yd = digits()
    dtrain = xgb.DMatrix(Xd, label=yd)
    scores = np.random.default_rng(3).normal(size=(len(yd), 10)).astype(np.float32)
    p = np.exp(scores - scores.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert cx.logloss(scores, dtrain)[1] == pytest.approx(sk_metrics.log_loss(yd, p), rel=1e-5)


# ---------------------------------------------------------------- LightGBM

LGB_PARAMS = {"num_leaves": 8, "learning_rate": 0.3, "num_threads": 1, "deterministic": True,
              "force_row_wise": True, "verbose": -1, "seed": 0}


def lgb_train_pair(X, y, builtin_params, objective):
    train = lgb.Dataset(X, label=y, params={"verbose": -1})
    builtin = lgb.train({**LGB_PARAMS, **builtin_params, "boost_from_average": False}, train,
                        ROUNDS)
    params = {**LGB_PARAMS, **builtin_params, "objective": objective}
    custom = lgb.train(params, train, ROUNDS)
    return custom.predict(X, raw_score=True), builtin.predict(X, raw_score=True)


def test_lightgbm_binary_reproduces_the_builtin_objective():
    X, y = breast_cancer()
    custom, builtin = lgb_train_pair(X, y, {"objective": "binary"}, cl.logistic())
    assert_predictions_agree(custom, builtin)


@pytest.mark.slow
def test_lightgbm_multiclass_reproduces_the_builtin_objective():
    X, y = digits()
    custom, builtin = lgb_train_pair(X, y, {"objective": "multiclass", "num_class": 10},
                                     cl.softmax())
    assert custom.shape == (len(y), 10)
    assert_predictions_agree(custom, builtin)


def test_lightgbm_sklearn_interface_with_weights():
    X, y = breast_cancer()
    w = np.random.default_rng(4).uniform(0.5, 2.0, len(y))
    options = dict(n_estimators=20, num_leaves=8, learning_rate=0.3, n_jobs=1, verbose=-1,
                   deterministic=True, force_row_wise=True)
    builtin = lgb.LGBMClassifier(objective="binary", boost_from_average=False, **options)
    builtin.fit(X, y, sample_weight=w)
    custom = lgb.LGBMClassifier(objective=cl.logistic(), **options)
    custom.fit(X, y, sample_weight=w)
    assert_predictions_agree(custom.predict(X, raw_score=True), builtin.predict(X, raw_score=True))


def test_lightgbm_gradients_are_class_major_float32_and_flatten_without_a_copy():
    X, y = digits()
    train = lgb.Dataset(X[:50], label=y[:50]).construct()
    objective = cl.softmax()
    scores = np.random.default_rng(5).normal(size=(10, 50)).T     # LightGBM's (n, K) view
    grad, hess = objective(scores, train)
    assert grad.dtype == hess.dtype == np.float32 and grad.shape == (50, 10)
    for array in (grad, hess):
        flat = array.ravel(order="F")                             # what LightGBM does
        assert np.shares_memory(flat, array)
    # computed in float64 as LightGBM's own objective, rounded to float32
    expected = crossent.objectives.softmax(scores, y[:50], hessian="lightgbm")
    assert np.array_equal(grad, expected[0].astype(np.float32))
    assert np.array_equal(hess, expected[1].astype(np.float32))
    fast = cl.softmax(dtype=np.float32)(scores, train)
    expected = crossent.objectives.softmax(scores.astype(np.float32), y[:50], hessian="lightgbm")
    assert np.array_equal(fast[0], expected[0]) and np.array_equal(fast[1], expected[1])


def test_lightgbm_logloss_metric_matches_sklearn():
    X, y = breast_cancer()
    train = lgb.Dataset(X, label=y).construct()
    margins = np.random.default_rng(6).normal(size=len(y))
    name, value, higher_is_better = cl.logloss(margins, train)
    assert (name, higher_is_better) == ("logloss", False)
    assert value == pytest.approx(sk_metrics.log_loss(y, 1 / (1 + np.exp(-margins))), rel=1e-9)


# ------------------------------------------------------------------ both

@pytest.mark.parametrize("adapter", [cx, cl], ids=["xgboost", "lightgbm"])
def test_focal_adapter_trains(adapter):
    X, y = breast_cancer()
    objective = adapter.focal(alpha=0.5, gamma=1.0)
    if adapter is cx:
        booster = xgb.train(XGB_PARAMS, xgb.DMatrix(X, label=y), 10, obj=objective)
        margins = booster.predict(xgb.DMatrix(X), output_margin=True)
    else:
        booster = lgb.train({**LGB_PARAMS, "objective": objective}, lgb.Dataset(X, label=y), 10)
        margins = booster.predict(X, raw_score=True)
    assert sk_metrics.roc_auc_score(y, margins) > 0.95


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_a_missing_library_names_the_extra(monkeypatch, library):
    monkeypatch.setitem(sys.modules, library, None)     # import fails as if not installed
    monkeypatch.delitem(sys.modules, f"crossent.{library}", raising=False)
    with pytest.raises(ImportError, match=r"pip install crossent\[gbdt\]"):
        importlib.import_module(f"crossent.{library}")


def test_labels_that_are_not_classes_are_refused():
    objective = cx.softmax()
    dtrain = xgb.DMatrix(np.zeros((3, 2)), label=np.array([0.0, 1.5, 2.0]))
    with pytest.raises(ValueError, match=r"labels: expected whole class indices .* 1\.5"):
        objective(np.zeros((3, 3), np.float32), dtrain)
    dtrain = xgb.DMatrix(np.zeros((3, 2)), label=np.array([0.0, 1.0, 3.0]))
    with pytest.raises(ValueError, match=r"class labels in \[0, 3\), got 3"):
        objective(np.zeros((3, 3), np.float32), dtrain)
