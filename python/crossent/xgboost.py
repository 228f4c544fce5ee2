"""crossent objectives for XGBoost (``pip install crossent[gbdt]``).

Each factory returns one callable that serves both XGBoost interfaces:

* ``xgboost.train(params, dtrain, obj=f)`` calls ``f(predt, dtrain)``;
* ``XGBClassifier(objective=f)`` calls ``f(y_true, y_pred, sample_weight=...)``.

It returns float32 ``(grad, hess)`` arrays in XGBoost's layout ((n,) binary,
(n, K) multiclass), which XGBoost reads through their array interface without
a conversion; the two arrays are reused from round to round (XGBoost copies
them first).  The default Hessian is XGBoost's own (``hessian="xgboost"``), so
that a model trained with the crossent objective matches the built-in one;
``crossent.objectives`` documents the other conventions.

Example::

    import xgboost, crossent.xgboost as cx
    dtrain = xgboost.DMatrix(X, label=y)
    booster = xgboost.train({"tree_method": "hist"}, dtrain, 50, obj=cx.logistic(),
                            custom_metric=cx.logloss)

With a custom objective XGBoost hands raw margins to the metric and to
``predict`` (use ``output_margin=True`` or apply the sigmoid / softmax).
"""
import numpy as np

from ._gbdt import Objective, logloss_value, require

xgb = require("xgboost")

__all__ = ["logistic", "softmax", "focal", "logloss"]


class XGBoostObjective:
    """A crossent objective as an XGBoost custom objective (both interfaces)."""

    def __init__(self, kind, options, n_threads=None):
        self._objective = Objective(kind, options, n_threads=n_threads)
        self.__name__ = f"crossent_{kind}"

    def __call__(self, first, second, sample_weight=None):
        if isinstance(second, xgb.DMatrix):  # xgboost.train: (predt, dtrain)
            predt, dtrain = first, second
            labels, weights = dtrain.get_label(), dtrain.get_weight()
        else:                                 # scikit-learn: (y_true, y_pred)
            labels, predt, weights = first, second, sample_weight
        return self._objective.compute(predt, labels, weights, np.float32)

    def __repr__(self):
        return f"crossent.xgboost.{self._objective.kind}({self._objective.options})"


def logistic(*, hessian="xgboost", min_hessian=None, n_threads=None):
    """Binary logistic objective (XGBoost's ``binary:logistic`` on raw
    margins); labels in [0, 1], soft labels allowed.  See
    :func:`crossent.objectives.binary_logistic`."""
    return XGBoostObjective("logistic", dict(hessian=hessian, min_hessian=min_hessian),
                            n_threads)


def softmax(*, hessian="xgboost", min_hessian=None, n_threads=None):
    """Softmax objective (XGBoost's ``multi:softprob``; set ``num_class``).
    See :func:`crossent.objectives.softmax`."""
    return XGBoostObjective("softmax", dict(hessian=hessian, min_hessian=min_hessian),
                            n_threads)


def focal(*, alpha=0.25, gamma=2.0, min_hessian=1e-6, n_threads=None):
    """Binary focal objective with its exact Hessian, floored at
    ``min_hessian`` (the exact one turns negative at badly wrong margins).
    See :func:`crossent.objectives.focal`."""
    return XGBoostObjective("focal", dict(alpha=alpha, gamma=gamma, min_hessian=min_hessian),
                            n_threads)


def logloss(predt, dtrain):
    """``custom_metric`` for ``xgboost.train``: ``("logloss", value)``, the
    weighted mean log loss of raw margins (binary for (n,) margins, softmax
    cross-entropy for (n, K) ones), computed by crossent in one pass."""
    return "logloss", logloss_value(predt, dtrain.get_label(), dtrain.get_weight())
