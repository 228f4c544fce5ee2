"""Gradient-boosting objectives: the gradient and the Hessian of each row's
loss with respect to its raw margin, in one pass.

Each function returns ``(grad, hess)`` of the **per-row** loss (not divided by
the number of rows), in the dtype the margins are computed in (float32 stays
float32, float64 stays float64; float16 is computed in float32, integers in
float64), written into ``out=(grad_out, hess_out)`` when given.  They are what
a custom objective of XGBoost or LightGBM returns; ``crossent.xgboost`` and
``crossent.lightgbm`` wrap them for those libraries.  docs/boosting.md has the
formulas, the Hessian conventions side by side and complete examples.

Every argument is checked before anything is written: a bad one raises
(``ValueError`` or ``TypeError``, naming it) and leaves ``out=`` untouched.

Hessian conventions (``hessian=``), p the predicted probability, y the
target, s the sample weight:

==============  ==========================  ==================================
name            binary                      softmax (K classes)
==============  ==========================  ==================================
``"exact"``     p(1−p)·s                    p(1−p)·s (the diagonal)
``"xgboost"``   max(p(1−p), 1e-16)·s        max(2p(1−p)·s, 1e-16)
``"lightgbm"``  p(1−p)·s                    K/(K−1)·p(1−p)·s
``"pseudo"``    |p−y|·s                     |p−y|·s
==============  ==========================  ==================================

* ``"xgboost"``: XGBoost's ``binary:logistic`` (``LogisticGradient`` in
  src/objective/logistic_obj.h: ``fmaxf(p * (1 - p), 1e-16f)`` times the
  weight) and ``multi:softprob`` (src/objective/multiclass_obj.cc:
  ``fmaxf(2.0f * p * (1.0f - p) * weight, 1e-16f)``, floored after the weight).
* ``"lightgbm"``: LightGBM's ``binary`` (src/objective/binary_objective.hpp,
  ``|r|(1 − |r|)`` with ``|r| = |p − y|``, which is p(1−p) for 0/1 labels) and
  ``multiclass`` (src/objective/multiclass_objective.hpp, ``factor_ * p *
  (1 - p)`` with ``factor_ = K / (K - 1)``, Friedman's multiclass rescaling).
* ``"pseudo"``: ``|p − y|``, the absolute residual, a curvature that vanishes
  where the fit is exact; neither XGBoost 3.2 nor LightGBM 4.7 uses it in a
  built-in objective, it is offered for experiments with custom Hessians.

``min_hessian`` floors the Hessian: ``None`` takes the convention's own floor
(1e-16 for ``"xgboost"``, none for the others); a float replaces it, applied
where the convention applies its floor (after the weight for XGBoost's
softmax, before it everywhere else).
"""
import math

import numpy as np

from . import _backends
from ._reference_objectives import FLOOR_THEN_WEIGH, RESIDUAL, WEIGH_THEN_FLOOR
from ._validate import as_array, check_out, compute_dtype, fold, is_real

__all__ = ["binary_logistic", "softmax", "focal", "HESSIANS"]

HESSIANS = ("exact", "xgboost", "lightgbm", "pseudo")
_XGBOOST_FLOOR = 1e-16   # 1e-16f in XGBoost's kernels


# ---------------------------------------------------------------- checks

def _margins(raw, name="raw"):
    raw = as_array(raw, name)
    dtype = compute_dtype(raw.dtype, name)
    if raw.dtype != dtype or not raw.flags.aligned:
        raw = raw.astype(dtype)
    return raw


def _first_position(bad, shape):
    index = np.unravel_index(int(np.argmax(bad)), shape)
    return index[0] if len(index) == 1 else index


def _float_operand(x, name, shape, dtype, what, shape_meaning="the margins' shape"):
    """A real operand of exactly ``shape``, as ``dtype``."""
    x = as_array(x, name)
    if not is_real(x.dtype):
        raise TypeError(f"{name}: expected a real array ({what}), got dtype {x.dtype}")
    if x.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} ({shape_meaning}), "
                         f"got shape {x.shape}")
    if x.dtype != dtype or not x.flags.aligned:
        x = x.astype(dtype)
    return x


def _check_range(x, name, low, high, what):
    """Every value of x in [low, high]: no NaN, no inf outside."""
    if x.size == 0:
        return
    if x.min() >= low and x.max() <= high:
        return
    bad = ~((x >= low) & (x <= high))
    where = _first_position(bad, x.shape)
    raise ValueError(f"{name}: expected {what}, got {x[where].item()!r} at position {where}")


def _targets_01(y, shape, dtype):
    y = _float_operand(y, "y", shape, dtype, "targets in [0, 1]")
    _check_range(y, "y", 0, 1, "targets in [0, 1] (no NaN)")
    return y


def _sample_weight(sample_weight, shape, dtype):
    if sample_weight is None:
        return None
    s = _float_operand(sample_weight, "sample_weight", shape, dtype, "weights",
                       "one weight per row")
    _check_range(s, "sample_weight", 0, math.inf, "finite weights >= 0")
    return s


def _min_hessian(min_hessian, convention_floor):
    if min_hessian is None:
        return -math.inf if convention_floor is None else convention_floor
    if isinstance(min_hessian, (bool, np.bool_)):
        raise TypeError("min_hessian: expected a float or None, got bool")
    try:
        value = float(min_hessian)
    except (TypeError, ValueError):
        raise TypeError(f"min_hessian: expected a float or None, got "
                        f"{type(min_hessian).__name__}") from None
    if math.isnan(value):
        raise ValueError("min_hessian: expected a float or None, got nan")
    return value


def _convention(hessian, n_classes=None):
    """(rule, factor, floor) of a Hessian convention; n_classes for softmax."""
    if not isinstance(hessian, str) or hessian not in HESSIANS:
        raise ValueError(f"hessian: expected one of {', '.join(map(repr, HESSIANS))}, "
                         f"got {hessian!r}")
    if hessian == "pseudo":
        return RESIDUAL, 1.0, None
    if hessian == "xgboost":
        rule = FLOOR_THEN_WEIGH if n_classes is None else WEIGH_THEN_FLOOR
        return rule, 1.0 if n_classes is None else 2.0, _XGBOOST_FLOOR
    if hessian == "lightgbm" and n_classes is not None:
        if n_classes < 2:
            raise ValueError(f"hessian: 'lightgbm' scales by K/(K-1) and needs K >= 2 classes, "
                             f"got K = {n_classes}")
        return FLOOR_THEN_WEIGH, n_classes / (n_classes - 1.0), None
    return FLOOR_THEN_WEIGH, 1.0, None


def _outputs(out, shape, dtype, inputs):
    """(grad, hess): the caller's out=, checked, or new arrays."""
    if out is None:
        return np.empty(shape, dtype), np.empty(shape, dtype)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError("out: expected a pair (grad_out, hess_out) of arrays, "
                        f"got {type(out).__name__}")
    checked = [check_out(array, shape, dtype, inputs, name=name, in_place_ok=False)
               for name, array in zip(("out[0] (grad)", "out[1] (hess)"), out)]
    if np.may_share_memory(checked[0], checked[1]) and checked[0].size:
        raise ValueError("out: the gradient and the Hessian arrays must not overlap")
    return tuple(checked)


def _check_scalar(value, name, low=None):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a float, got bool")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__}") from None
    if not math.isfinite(value) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low}"
        raise ValueError(f"{name}: expected a finite float{bound}, got {value!r}")
    return value


def _run_elementwise(kernel, module, n_threads, shape, operands, options, grad, hess):
    if grad.size == 0:
        return
    folded = fold(shape, list(operands) + [grad, hess], inputs_ok_to_copy=range(len(operands)))
    *inputs, grad_v, hess_v = folded
    getattr(module, kernel)(*inputs, *options, grad_v, hess_v, n_threads)


# ------------------------------------------------------------- functions

def binary_logistic(raw, y, *, sample_weight=None, hessian="exact", min_hessian=None, out=None,
                    backend=None, n_threads=None):
    """Gradient and Hessian of the binary logistic loss from raw margins.

    The per-row loss of a margin z and a target y in [0, 1] (soft targets
    allowed) is ``l = s·(log(1 + exp(z)) − y·z)``, s the sample weight, so

    * ``grad = s·(σ(z) − y)``,
    * ``hess = s·σ(z)σ(−z)`` (``"exact"``; see the module for the others),

    both computed from ``exp(−|z|)`` so that they keep their relative
    accuracy at any margin (at z = −1e4 the gradient is −y, the Hessian 0).

    Parameters
    ----------
    raw : array_like
        Raw margins (any shape), as XGBoost's ``predt`` with
        ``output_margin`` or LightGBM's ``preds`` of a custom objective.
    y : array_like
        Targets in [0, 1], raw's shape; NaN is refused.
    sample_weight : array_like, optional
        Non-negative weights, raw's shape.
    hessian : {"exact", "xgboost", "lightgbm", "pseudo"}
        The Hessian convention (module docstring).
    min_hessian : float, optional
        Floor of the Hessian; None: the convention's own (1e-16 for XGBoost).
    out : (ndarray, ndarray), optional
        Arrays of raw's shape and computation dtype for grad and hess.
    backend, n_threads
        As for every crossent function.

    Returns
    -------
    (grad, hess) : tuple of ndarray

    Examples
    --------
    >>> import numpy as np, crossent.objectives as obj
    >>> g, h = obj.binary_logistic(np.array([0.0, 2.0]), np.array([1.0, 0.0]))
    >>> np.round(g, 4), np.round(h, 4)
    (array([-0.5   ,  0.8808]), array([0.25 , 0.105]))
    """
    module = _backends.module(backend)
    n_threads = _backends.resolve_n_threads(n_threads)
    raw = _margins(raw)
    dtype, shape = raw.dtype, raw.shape
    y = _targets_01(y, shape, dtype)
    s = _sample_weight(sample_weight, shape, dtype)
    rule, factor, floor = _convention(hessian)
    floor = _min_hessian(min_hessian, floor)
    grad, hess = _outputs(out, shape, dtype, (raw, y, s))
    _run_elementwise("logistic_objective", module, n_threads, shape, (raw, y, s),
                     (rule, factor, floor), grad, hess)
    return grad, hess


def focal(raw, y, *, alpha, gamma, sample_weight=None, min_hessian=None, out=None, backend=None,
          n_threads=None):
    """Gradient and exact Hessian of the binary focal loss from raw margins.

    With p_t the probability of the true class (σ(z) for y = 1, σ(−z) for
    y = 0), α_t = α for y = 1 and 1 − α for y = 0 (1 when ``alpha`` is None)
    and ce = −log p_t, the per-row loss is ``l = s·α_t·(1 − p_t)^γ·ce``
    (Lin et al. 2017; crossent.focal_loss per element), and with
    u = ±z, q = 1 − p_t:

    * ``dl/du = −α_t q^γ (q + γ p_t ce)``,
    * ``d²l/du² = α_t q^γ (p_t q (1 + 2γ) + γ p_t ce (γ p_t − q))``.

    γ = 0 gives the logistic loss (times α_t).  For γ > 0 the exact Hessian
    is negative at badly wrong margins (ce large): boosting needs a positive
    one, so pass ``min_hessian`` (e.g. 1e-6) when training; None floors
    nothing.

    Parameters
    ----------
    raw : array_like
        Raw margins, any shape.
    y : array_like
        Targets 0 or 1 (raw's shape); any other value is refused.
    alpha : float in [0, 1] or None
        Weight of the positive class (torchvision's ``alpha``); None: none.
    gamma : float >= 0
        Focusing parameter.
    sample_weight, min_hessian, out, backend, n_threads
        As for :func:`binary_logistic`.

    Returns
    -------
    (grad, hess) : tuple of ndarray

    Examples
    --------
    >>> import numpy as np, crossent.objectives as obj
    >>> g, h = obj.focal(np.array([0.0]), np.array([1.0]), alpha=None, gamma=0.0)
    >>> float(g[0]), float(h[0])
    (-0.5, 0.25)
    """
    module = _backends.module(backend)
    n_threads = _backends.resolve_n_threads(n_threads)
    if alpha is None:
        alpha = -1.0
    else:
        alpha = _check_scalar(alpha, "alpha", low=0.0)
        if alpha > 1:
            raise ValueError(f"alpha: expected a float in [0, 1] or None, got {alpha!r}")
    gamma = _check_scalar(gamma, "gamma", low=0.0)
    raw = _margins(raw)
    dtype, shape = raw.dtype, raw.shape
    y = _float_operand(y, "y", shape, dtype, "targets 0 or 1")
    if y.size and np.any((y != 0) & (y != 1)):
        where = _first_position((y != 0) & (y != 1), shape)
        raise ValueError(f"y: expected targets 0 or 1 (the focal loss is binary), "
                         f"got {y[where].item()!r} at position {where}")
    s = _sample_weight(sample_weight, shape, dtype)
    floor = _min_hessian(min_hessian, None)
    grad, hess = _outputs(out, shape, dtype, (raw, y, s))
    _run_elementwise("focal_objective", module, n_threads, shape, (raw, y, s),
                     (alpha, gamma, floor), grad, hess)
    return grad, hess


def _labels(y, lead_shape, n_classes):
    """Integer class labels as int32/int64, every one in [0, K)."""
    if y.shape != lead_shape:
        raise ValueError(f"y: integer labels must have the margins' shape without the class "
                         f"axis, {lead_shape}, got shape {y.shape}")
    if y.dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        if y.dtype.kind == "u" and y.size and y.max() > np.iinfo(np.int64).max:
            where = _first_position(y > np.iinfo(np.int64).max, y.shape)
            raise ValueError(f"y: expected class labels in [0, {n_classes}), got {y[where].item()} "
                             f"at position {where}")
        y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = (y < 0) | (y >= n_classes)
        where = _first_position(bad, y.shape)
        raise ValueError(f"y: expected class labels in [0, {n_classes}), got {y[where].item()} "
                         f"at position {where}")
    return y


def softmax(raw, y, *, sample_weight=None, hessian="exact", min_hessian=None, out=None,
            backend=None, n_threads=None):
    """Gradient and Hessian (its diagonal) of the softmax cross-entropy from
    raw margins of K classes.

    With p = softmax(z) along the last axis, the per-row loss is
    ``l = s·(logsumexp(z) − Σ_c y_c z_c)``, so

    * ``grad = s·(p − y)``,
    * ``hess = s·p(1 − p)`` (``"exact"``: the diagonal of the Hessian, which
      is what gradient boosting fits one class per tree with; see the module
      for the XGBoost, LightGBM and pseudo conventions),

    y the one-hot row of an integer label or a soft target row.

    Parameters
    ----------
    raw : array_like, shape (..., K)
        Raw margins, classes along the last axis (XGBoost's and LightGBM's
        ``(n, K)`` ``predt``/``preds``, whatever their memory order).
    y : array_like
        Integer labels in [0, K) of shape ``raw.shape[:-1]``, or soft targets
        (floating, raw's shape, values in [0, 1]).  Floating labels of shape
        ``raw.shape[:-1]`` are refused: convert them to integers.
    sample_weight : array_like, optional
        Non-negative weights of shape ``raw.shape[:-1]``.
    hessian : {"exact", "xgboost", "lightgbm", "pseudo"}
    min_hessian, out, backend, n_threads
        As for :func:`binary_logistic`; ``out`` arrays have raw's shape and
        may have any memory order.

    Returns
    -------
    (grad, hess) : tuple of ndarray, raw's shape

    Examples
    --------
    >>> import numpy as np, crossent.objectives as obj
    >>> g, h = obj.softmax(np.zeros((1, 4)), np.array([2]))
    >>> g, h
    (array([[ 0.25,  0.25, -0.75,  0.25]]), array([[0.1875, 0.1875, 0.1875, 0.1875]]))
    """
    module = _backends.module(backend)
    n_threads = _backends.resolve_n_threads(n_threads)
    raw = _margins(raw)
    if raw.ndim == 0:
        raise ValueError("raw: expected margins with a class axis (ndim >= 1), got a 0-d array")
    dtype, shape = raw.dtype, raw.shape
    lead, n_classes = shape[:-1], shape[-1]
    if n_classes < 1:
        raise ValueError(f"raw: expected at least one class on the last axis, got shape {shape}")
    y = as_array(y, "y")
    rule, factor, floor = _convention(hessian, n_classes)
    if y.dtype.kind in "iu":
        y = _labels(y, lead, n_classes)
        kernel = "softmax_objective_index"
    elif y.dtype.kind in "fb":
        if y.shape != shape:
            raise ValueError(f"y: expected integer labels of shape {lead} or soft targets of "
                             f"the margins' shape {shape}, got a {y.dtype} array of shape "
                             f"{y.shape}" + (" (convert labels to an integer dtype)"
                                             if y.shape == lead else ""))
        y = _targets_01(y, shape, dtype)
        kernel = "softmax_objective_soft"
    else:
        raise TypeError(f"y: expected integer labels or soft targets, got dtype {y.dtype}")
    s = _sample_weight(sample_weight, lead, dtype)
    floor = _min_hessian(min_hessian, floor)
    grad, hess = _outputs(out, shape, dtype, (raw, y, s))
    if grad.size:
        folded = fold(lead, [raw, y, s, grad, hess], inputs_ok_to_copy=range(3))
        raw_v, y_v, s_v, grad_v, hess_v = folded
        getattr(module, kernel)(raw_v, y_v, s_v, rule, factor, floor, grad_v, hess_v, n_threads)
    return grad, hess
