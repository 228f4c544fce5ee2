"""crossent objectives for LightGBM (``pip install crossent[gbdt]``).

Each factory returns one callable that serves both LightGBM interfaces:

* ``lightgbm.train({"objective": f, ...}, train_set)`` calls
  ``f(preds, train_set)``;
* ``LGBMClassifier(objective=f)`` calls ``f(y_true, y_pred, weight)``.

LightGBM hands float64 scores, multiclass ones as an (n, K) view of its
class-major buffer, and wants float32 gradients, flattened class by class.
The callable computes in float64 as LightGBM's own objectives do (so that
the models match: from float32-rounded scores a 10-class model drifts off
the built-in one after a few dozen rounds), then rounds into float32 arrays;
``dtype=np.float32`` computes in float32 directly, faster.  The float32
arrays are (n, K) transposes of class-major (K, n) ones, so that LightGBM
flattens them without a copy, and they are reused from round to round.  The
default Hessian is LightGBM's own (``hessian="lightgbm"``).

Example::

    import lightgbm, crossent.lightgbm as cl
    train = lightgbm.Dataset(X, label=y)
    booster = lightgbm.train({"objective": cl.logistic(), "verbose": -1}, train, 50,
                             valid_sets=[train], feval=cl.logloss)

With a custom objective LightGBM starts from a score of 0 and ``predict``
returns raw scores; train the built-in objective with
``boost_from_average=False`` to compare.
"""
import numpy as np

from ._gbdt import Buffers, Objective, class_labels, logloss_value, require

lgb = require("lightgbm")

__all__ = ["logistic", "softmax", "focal", "logloss"]


class LightGBMObjective:
    """A crossent objective as a LightGBM custom objective (both interfaces)."""

    def __init__(self, kind, options, n_threads=None, dtype=np.float64):
        self._objective = Objective(kind, options, class_major=True, n_threads=n_threads)
        self._dtype = np.dtype(dtype)
        self._float32 = Buffers(class_major=True)
        self._labels = (None, None)   # (LightGBM's label array, its int32 copy)
        self.__name__ = f"crossent_{kind}"

    def _class_labels(self, labels, preds):
        # LightGBM returns the same label array every round: convert it once.
        if self._objective.kind != "softmax" or np.ndim(preds) != 2:
            return labels
        source, converted = self._labels
        if source is not labels or converted is None:
            converted = class_labels(labels, np.shape(preds)[1])
            self._labels = (labels, converted)
        return converted

    def __call__(self, first, second, weight=None):
        if isinstance(second, lgb.Dataset):  # lightgbm.train: (preds, train_set)
            preds, dataset = first, second
            labels, weights = dataset.get_label(), dataset.get_weight()
        else:                                # scikit-learn: (y_true, y_pred, weight)
            labels, preds, weights = first, second, weight
        grad, hess = self._objective.compute(preds, self._class_labels(labels, preds), weights,
                                             self._dtype)
        if grad.dtype == np.float32:
            return grad, hess
        rounded = self._float32.get(grad.shape, np.float32)
        np.copyto(rounded[0], grad, casting="same_kind")
        np.copyto(rounded[1], hess, casting="same_kind")
        return rounded

    def __repr__(self):
        return f"crossent.lightgbm.{self._objective.kind}({self._objective.options})"


def logistic(*, hessian="lightgbm", min_hessian=None, n_threads=None, dtype=np.float64):
    """Binary logistic objective (LightGBM's ``binary``, raw scores); labels
    in [0, 1], soft labels allowed.  See
    :func:`crossent.objectives.binary_logistic`."""
    return LightGBMObjective("logistic", dict(hessian=hessian, min_hessian=min_hessian),
                             n_threads, dtype)


def softmax(*, hessian="lightgbm", min_hessian=None, n_threads=None, dtype=np.float64):
    """Softmax objective (LightGBM's ``multiclass``; set ``num_class``).  See
    :func:`crossent.objectives.softmax`."""
    return LightGBMObjective("softmax", dict(hessian=hessian, min_hessian=min_hessian),
                             n_threads, dtype)


def focal(*, alpha=0.25, gamma=2.0, min_hessian=1e-6, n_threads=None, dtype=np.float64):
    """Binary focal objective with its exact Hessian, floored at
    ``min_hessian``.  See :func:`crossent.objectives.focal`."""
    return LightGBMObjective("focal", dict(alpha=alpha, gamma=gamma, min_hessian=min_hessian),
                             n_threads, dtype)


def logloss(preds, eval_data):
    """``feval`` for ``lightgbm.train``: ``("logloss", value, False)``, the
    weighted mean log loss of raw scores (binary or softmax), computed by
    crossent in one pass."""
    return ("logloss", logloss_value(preds, eval_data.get_label(), eval_data.get_weight()),
            False)
