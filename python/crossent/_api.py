"""The public functions: validate once (``_validate``), run one kernel of the
chosen backend (``_backends``), apply the reduction the same way for every
backend.  The math itself is in the kernels; see docs/math.md for the
formulas and docs/kernels.md for the kernel interface.
"""
import math
from collections import namedtuple

import numpy as np

from . import _backends
from ._outputs import empty as new_output
from ._validate import (LossPlan, as_operand, as_prediction, check_axis, check_bool, check_out,
                        check_real, compute_dtype, elementwise_plan, fold, move_class_axis,
                        multiclass_plan)
from ._validate import check_logit_transforms, with_logit_transforms


# ---------------------------------------------------------------- runners

def _docstring(text):
    """Give the decorated function the docstring ``text``, built once at
    import (a docstring assembled from shared pieces is an expression, not a
    docstring, if written in the body: it would run on every call)."""
    def attach(function):
        function.__doc__ = text
        return function
    return attach


def _mean(total, denominator):
    """total / denominator in float64; a zero denominator gives nan whatever
    the total (SPEC §1.5; PyTorch gives ±inf where negative weights cancel
    over a nonzero total)."""
    return total / denominator if denominator else math.nan


LossSums = namedtuple("LossSums", "loss_sum denominator dtype backend")


def _fold_outputs(plan, losses, grad):
    """Fold the plan's inputs together with the outputs: canonical views."""
    grad_m = grad if grad is None or plan.axis is None else move_class_axis(grad, plan.axis)
    n_in = len(plan.inputs)
    folded = fold(plan.lead_shape, plan.inputs + [losses, grad_m], inputs_ok_to_copy=range(n_in))
    return folded[:n_in], folded[n_in], folded[n_in + 1]


def _sums(plan, module, n_threads, losses, grad, acc=(0.0, 0.0)):
    """Run the plan's kernel: (acc[0] + Σ weighted losses, acc[1] + Σ weights).

    The weight sum is computed only when the mean needs it (or a gradient
    scaled by it); both sums are block-ordered, so block-aligned chunks chained
    through ``acc`` give the one-shot bits (crossent.evaluate relies on it).
    """
    if plan.pred.size == 0:
        return acc
    inputs, losses_v, grad_v = _fold_outputs(plan, losses, grad)
    denominator = (plan.denominator(module, n_threads, inputs, acc[1])
                   if plan.reduction == "mean" else 1.0)
    scale = 1.0 / denominator if denominator else 0.0
    total = getattr(module, plan.kernel)(*plan.make_args(inputs), losses_v, grad_v,
                                          scale, n_threads, acc[0])
    return total, denominator


def finish_reduction(sums, reduction):
    """The reduced loss from its sums: "sum" or "mean" (nan over a zero denominator)."""
    dtype = sums.dtype
    if reduction == "sum":
        return dtype.type(sums.loss_sum)
    return dtype.type(_mean(sums.loss_sum, sums.denominator))


def _run_loss(plan, module, n_threads, return_grad, grad_out):
    n_threads = _backends.resolve_n_threads(n_threads)
    dtype = plan.dtype
    if grad_out is not None:
        if not return_grad:
            raise ValueError("grad_out: given without return_grad=True")
        grad = check_out(grad_out, plan.pred.shape, dtype, plan.user_inputs, name="grad_out",
                         contiguous=True, in_place_ok=False)
    else:
        grad = new_output(plan.pred.shape, dtype) if return_grad else None
    losses = new_output(plan.lead_shape, dtype) if plan.reduction == "none" else None
    total, denominator = _sums(plan, module, n_threads, losses, grad)
    if plan.reduction == "none":
        loss = losses
    else:
        loss = finish_reduction(LossSums(total, denominator, dtype, module.NAME), plan.reduction)
    return (loss, grad) if return_grad else loss


def loss_sums(name, pred, target, *, acc=(0.0, 0.0), mean="mean", backend=None, n_threads=None,
              **kwargs):
    """The sums behind loss ``name``'s mean, continuing from ``acc``.

    ``kwargs`` are the loss's own keywords (axis, weight, sample_weight,
    pos_weight, ignore_index, label_smoothing, alpha, gamma, log_target),
    validated as the public function does; ``mean`` names the loss's mean
    ("batchmean" for kl_div's). Returns ``LossSums(loss_sum, denominator,
    dtype, backend)``; :func:`finish_reduction` turns it into the loss.
    """
    module = _backends.module(backend)
    plan = _PLANNERS[name](module, pred, target, reduction=mean, **kwargs)
    n_threads = _backends.resolve_n_threads(n_threads)
    total, denominator = _sums(plan, module, n_threads, None, None, acc)
    return LossSums(total, denominator, plan.dtype, module.NAME)


def _run_activation(kernel, x, axis, out, backend, n_threads, keeps_class_axis=True):
    """Run an activation over the whole array (axis None) or over rows along
    ``axis``; ``keeps_class_axis`` is False for logsumexp, whose result drops it."""
    if axis is None and kernel not in ("sigmoid", "log_sigmoid"):
        return _over_all_entries(kernel, x, out, backend, n_threads, keeps_class_axis)
    if isinstance(axis, tuple) and kernel not in ("sigmoid", "log_sigmoid"):
        return _over_axes(kernel, x, axis, out, backend, n_threads, keeps_class_axis)
    if out is None:
        result = _fast_activation(kernel, x, axis, backend, n_threads)
        if result is not None:
            return result
    module = _backends.module(backend)
    n_threads = _backends.resolve_n_threads(n_threads)
    z = as_prediction(x, "z")
    dtype = compute_dtype(z.dtype, "z")
    if axis is not None:
        axis = check_axis(axis, z.ndim, "z")
    out_shape = z.shape if keeps_class_axis else z.shape[:axis] + z.shape[axis + 1:]
    if out is None:
        result = new_output(out_shape, dtype)
    else:
        result = check_out(out, out_shape, dtype, [z])
    if z.size == 0:
        if not keeps_class_axis:
            result[...] = -np.inf   # log of an empty sum
        return result[()] if out is None and result.ndim == 0 else result
    if axis is None:
        lead_shape, operands = z.shape, [z, result]
    else:
        lead_shape = out_shape if not keeps_class_axis else z.shape[:axis] + z.shape[axis + 1:]
        result_m = result if not keeps_class_axis else move_class_axis(result, axis)
        operands = [move_class_axis(z, axis), result_m]
    try:
        if not result.flags.aligned:
            raise ValueError("unaligned")
        z_v, out_v = fold(lead_shape, operands, inputs_ok_to_copy=(0,))
    except ValueError:
        # an ``out=`` the kernels cannot write (unaligned, or a layout that
        # folds into no two axes): compute aside, then copy
        fresh = _run_activation(kernel, z, axis, None, backend, n_threads, keeps_class_axis)
        result[...] = fresh
        return result
    getattr(module, kernel)(z_v, out_v, n_threads)
    if out is None and result.ndim == 0:
        return result[()]
    return result


def _over_axes(kernel, x, axes, out, backend, n_threads, keeps_class_axis):
    """softmax, log_softmax or logsumexp over a tuple of axes: their entries
    as one row, as ``scipy.special``'s tuple ``axis`` (a copy of z when the
    axes are not its last ones, in order)."""
    z = as_prediction(x, "z")
    axes = tuple(check_axis(a, z.ndim, "z") for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis: expected distinct axes, got {axes} for the {z.ndim}-d z")
    others = [a for a in range(z.ndim) if a not in axes]
    order = others + list(axes)
    moved = z.transpose(order)
    rows = moved.reshape(moved.shape[:len(others)] + (-1,))
    result = _run_activation(kernel, rows, -1, None, backend, n_threads, keeps_class_axis)
    if not keeps_class_axis:
        return result
    back = result.reshape(moved.shape).transpose(np.argsort(order))
    if out is None:
        return np.ascontiguousarray(back)
    checked = check_out(out, z.shape, compute_dtype(z.dtype, "z"), [z])
    checked[...] = back
    return checked


def _over_all_entries(kernel, x, out, backend, n_threads, keeps_class_axis):
    """softmax, log_softmax or logsumexp with ``axis=None``: every entry in one
    row, as ``scipy.special``'s ``axis=None``."""
    z = as_prediction(x, "z")
    row = _run_activation(kernel, z.reshape(-1), -1, None, backend, n_threads, keeps_class_axis)
    if not keeps_class_axis:
        return row
    if out is None:
        return row.reshape(z.shape)
    result = check_out(out, z.shape, compute_dtype(z.dtype, "z"), [z])
    result[...] = row.reshape(z.shape)
    return result


# --------------------------------------------------------------- fast paths
#
# A common call -- C-contiguous float32/float64 arrays, the last axis, no
# grad_out, a compiled backend -- skips building a plan: the compiled
# backends answer it in one call (fast_* in csrc/crossent_pybind.h) on the
# same canonical views and with the same kernels the general path would use,
# so the bits are the same.  Anything unusual, including every error, gives
# None and takes the general path, which validates and explains.

def _fast_module(backend, n_threads):
    """(kernel module, threads) for a fast path, or (None, 0) when the call
    names a backend or a thread count the general path should check."""
    if backend is None and n_threads is None:
        return _backends.defaults()
    if backend is not None and (type(backend) is not str or backend not in _backends.backends()):
        return None, 0
    if n_threads is not None and (type(n_threads) is not int
                                  or not 1 <= n_threads <= _backends.MAX_THREADS):
        return None, 0
    module, default_threads = _backends.defaults()
    if backend is not None:
        module = _backends.module(backend)
    return module, n_threads or default_threads


def _fast_row_loss(stem, z, t, axis, weight, sample_weight, grad_out, backend, n_threads,
                   ignore_index, label_smoothing, reduction, return_grad):
    """A row loss without grad_out along the last axis of ndarrays: ``stem``
    "softmax_xent" (cross_entropy), "categorical_xent" or "nll" (whose
    targets are indices only).  The compiled call takes class and sample
    weights of the kernels' own layout and dtype, and answers None for
    others."""
    if (grad_out is not None or type(axis) is not int or axis != -1
            or type(z) is not np.ndarray or type(t) is not np.ndarray
            or type(ignore_index) is not int or type(label_smoothing) is not float
            or reduction != "mean" and reduction != "sum"):
        return None
    module, n_threads = _fast_module(backend, n_threads)
    # No star-arguments, string building or tuple tests here: in a 1 x 10
    # call they cost as much as the kernel.
    if t.dtype.kind == "f":
        compiled = getattr(module, "fast_soft_loss", None)
        if compiled is None or stem == "nll" or ignore_index != -100:
            return None
        return compiled(_SOFT_KERNEL[stem], z, t, weight, sample_weight, label_smoothing,
                        reduction == "mean", return_grad, n_threads)
    compiled = getattr(module, "fast_index_loss", None)
    if compiled is None:
        return None
    try:
        return compiled(_INDEX_KERNEL[stem], z, t, weight, sample_weight, ignore_index,
                        label_smoothing, reduction == "mean", return_grad, n_threads)
    except OverflowError:
        # ignore_index beyond int64 (the compiled call's type): the general
        # path raises the documented ValueError.
        return None


_INDEX_KERNEL = {stem: stem + "_index" for stem in ("softmax_xent", "categorical_xent", "nll")}
_SOFT_KERNEL = {stem: stem + "_soft" for stem in ("softmax_xent", "categorical_xent")}


def _fast_activation(kernel, z, axis, backend, n_threads):
    """_run_activation of a C-contiguous float32/float64 array, whole or along
    its last axis, into a new array."""
    if type(z) is not np.ndarray or not (axis is None or type(axis) is int and axis == -1):
        return None
    module, n_threads = _fast_module(backend, n_threads)
    compiled = getattr(module, "fast_activation", None)
    return None if compiled is None else compiled(kernel, z, n_threads)


# What an elementwise loss's mean divides by (fast_elementwise's divisor).
_DIVIDE_NOTHING, _DIVIDE_SAMPLE_WEIGHT, _DIVIDE_WEIGHTS, _DIVIDE_ROWS = range(4)


def _fast_elementwise_loss(kernel, x, y, weight, pos_weight, sample_weight, grad_out, reduction,
                           return_grad, backend, n_threads, label_smoothing=0.0, alpha=0.0,
                           gamma=0.0, log_target=False, mean_divides_by=_DIVIDE_SAMPLE_WEIGHT):
    """An elementwise loss without grad_out of same-shape ndarrays; the
    compiled call answers None for anything else."""
    if grad_out is not None or type(x) is not np.ndarray or type(y) is not np.ndarray:
        return None
    if reduction == "mean":
        divisor = mean_divides_by
    elif reduction == "sum":
        divisor = _DIVIDE_NOTHING
    else:
        return None
    module, n_threads = _fast_module(backend, n_threads)
    compiled = getattr(module, "fast_elementwise", None)
    if compiled is None:
        return None
    return compiled(kernel, x, y, weight, pos_weight, sample_weight, label_smoothing, alpha, gamma,
                    log_target, divisor, return_grad, n_threads)


# ------------------------------------------------------------ activations

def sigmoid(z, *, out=None, backend=None, n_threads=None):
    """Logistic sigmoid, elementwise: ``σ(z) = 1 / (1 + exp(−z))``.

    Computed as ``1/(1+e)`` or ``e/(1+e)`` with ``e = exp(−|z|)``, so it is
    stable for every z (no overflow for z → −inf).

    Parameters
    ----------
    z : array_like
        Any shape. float32 stays float32, float64 float64, float16 and
        bfloat16 (``ml_dtypes``) are read as they are and computed in float32,
        integer/bool in float64. Any CPU array with ``__dlpack__`` (a torch
        tensor, a JAX array) is read without a copy.
    out : ndarray, optional
        Where to write the result: the result's shape and dtype; may be ``z``
        itself (in place).
    backend, n_threads : see :func:`crossent.set_backend`, :func:`crossent.set_num_threads`.

    Returns
    -------
    ndarray of the computation dtype.

    Example
    -------
    >>> crossent.sigmoid(np.array([-1000.0, 0.0, 2.0]))
    array([0.        , 0.5       , 0.88079708])
    """
    return _run_activation("sigmoid", z, None, out, backend, n_threads)


def log_sigmoid(z, *, out=None, backend=None, n_threads=None):
    """``log σ(z) = −softplus(−z) = min(z, 0) − log1p(exp(−|z|))``, elementwise.

    Never ``-inf`` for finite z: ``log_sigmoid(-1000.) == -1000.``.
    Arguments and dtypes as :func:`sigmoid`.

    Example
    -------
    >>> crossent.log_sigmoid(np.array([-1000.0, 0.0]))
    array([-1.00000000e+03, -6.93147181e-01])
    """
    return _run_activation("log_sigmoid", z, None, out, backend, n_threads)


def softmax(z, axis=-1, *, out=None, backend=None, n_threads=None):
    """``softmax(z)_c = exp(z_c − m) / Σ_k exp(z_k − m)`` along ``axis``, ``m = max_k z_k``.

    Max-shifted, so no overflow. ``out`` may be ``z`` itself. Arguments and
    dtypes as :func:`sigmoid`, plus ``axis`` (the class axis, default last;
    ``None``: every entry as one row, and a tuple of axes their entries, as
    ``scipy.special.softmax``).

    Example
    -------
    >>> crossent.softmax(np.array([[1.0, 2.0, 3.0]]))
    array([[0.09003057, 0.24472847, 0.66524096]])
    """
    return _run_activation("softmax", z, axis, out, backend, n_threads)


def log_softmax(z, axis=-1, *, out=None, backend=None, n_threads=None):
    """``log_softmax(z)_c = z_c − m − log Σ_k exp(z_k − m)`` along ``axis``.

    Max-shifted; no ``log(0)``, so very negative logits give large finite
    values, not ``-inf``. ``out`` may be ``z`` itself; ``axis=None`` takes
    every entry as one row, a tuple of axes their entries (as :func:`softmax`).

    Example
    -------
    >>> crossent.log_softmax(np.array([0.0, 1000.0]))
    array([-1000.,    -0.])
    """
    return _run_activation("log_softmax", z, axis, out, backend, n_threads)


def logsumexp(z, axis=-1, *, backend=None, n_threads=None):
    """``log Σ_k exp(z_k)`` along ``axis``, max-shifted (as ``scipy.special.logsumexp``).

    Returns an array of ``z``'s shape without ``axis`` (a scalar for 1-D input
    or ``axis=None``, which takes every entry), in the computation dtype;
    ``axis`` may be a tuple of axes, reduced together. An empty axis gives
    ``-inf``.

    Example
    -------
    >>> float(crossent.logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    """
    return _run_activation("logsumexp", z, axis, None, backend, n_threads, keeps_class_axis=False)


# ---------------------------------------------------------- binary losses

_LOSS_ARGS = """
    reduction : {"mean", "sum", "none"}
        ``"mean"`` is ``Σ wᵢ·lᵢ / Σ wᵢ`` (SPEC §1.5), ``"sum"`` ``Σ wᵢ·lᵢ``,
        ``"none"`` the weighted per-sample losses. Sums are accumulated in
        float64 and rounded once to the computation dtype.
    return_grad : bool
        Also return the gradient of the reduced loss w.r.t. the first argument
        (shape of that argument, computation dtype), from the same pass.
    grad_out : ndarray, optional
        A preallocated C-contiguous writable array for the gradient (needs
        ``return_grad=True``); reusing one saves the allocation.
    backend : {"cython", "c", "numpy"}, optional
        None: the current default (:func:`crossent.get_backend`).
    n_threads : int, optional
        None: all cores this process may use. Results are bitwise identical
        for every value.

    Returns
    -------
    loss : numpy scalar (``"mean"``/``"sum"``) or ndarray (``"none"``)
    grad : ndarray, only with ``return_grad=True``
"""


@_docstring("""Binary cross-entropy from probabilities.

    ``l = −(y·max(log p, −100) + (1 − y)·max(log(1 − p), −100))``, each log
    clamped at −100 as PyTorch does, so ``p`` = 0 or 1 give finite losses.
    Gradient ``∂l/∂p = (p − y) / max(p(1 − p), 1e−12)``.

    Parameters
    ----------
    p : array_like
        Probabilities in [0, 1] (outside: ``ValueError``; NaN propagates).
    y : array_like
        Targets of ``p``'s shape (usually 0/1; any value in [0, 1] works).
    weight : array_like, optional
        Element-wise rescaling, broadcastable to ``p`` (PyTorch's ``weight``);
        the mean still divides by the element count (or Σ sample_weight).
    sample_weight : array_like, optional
        Broadcastable to ``p``; the mean divides by its sum.
""" + _LOSS_ARGS + """
    Example
    -------
    >>> float(crossent.binary_cross_entropy(np.array([0.9, 0.2]), np.array([1.0, 0.0])))
    0.16425203348601802
    """)
def binary_cross_entropy(p, y, *, weight=None, sample_weight=None, reduction="mean",
                         return_grad=False, grad_out=None, backend=None, n_threads=None):
    result = _fast_elementwise_loss("bce", p, y, weight, None, sample_weight, grad_out, reduction,
                                    return_grad, backend, n_threads)
    if result is not None:
        return result
    module = _backends.module(backend)
    plan = _plan_bce(module, p, y, weight=weight, sample_weight=sample_weight, reduction=reduction,
                     n_threads=n_threads)
    return _run_loss(plan, module, n_threads, return_grad, grad_out)


def _plan_bce(module, p, y, *, weight=None, sample_weight=None, reduction="mean", n_threads=None):
    plan = elementwise_plan("bce", p, y, pred_name="p", weight=weight,
                            sample_weight=sample_weight, reduction=reduction)
    _check_probabilities(module, plan.pred, "p", n_threads)
    return plan


def _check_probabilities(module, p, name, n_threads=None):
    """Raise ValueError naming the first entry of ``p`` outside [0, 1] (NaN
    is allowed).  Only a failed test looks for the entry itself."""
    if p.size and _may_leave_unit_interval(module, p, n_threads):
        bad = np.flatnonzero((p < 0) | (p > 1))
        if bad.size:  # (NaN alone makes min/max fail the test but is allowed)
            where = tuple(int(i) for i in np.unravel_index(bad[0], p.shape))
            raise ValueError(f"{name}: expected probabilities in [0, 1], got {p[where]} "
                             f"at position {where}")


def _may_leave_unit_interval(module, p, n_threads):
    """False when every entry of ``p`` is in [0, 1] or NaN.  On contiguous
    4- and 8-byte floats NumPy's min and max are vectorised reductions that
    beat the backend's count, whose block sums are a fixed-order float64
    chain (docs/performance.md); a NaN fails them.  Any other layout, and
    2-byte floats, take the backend's outside_unit_count: one threaded pass,
    where NumPy's reductions would be scalar loops."""
    if p.flags.c_contiguous and p.dtype.itemsize > 2:
        return not (p.min() >= 0 and p.max() <= 1)
    n_threads = _backends.resolve_n_threads(n_threads)
    return module.outside_unit_count(_as_elements(p), n_threads, 0.0) > 0


def _as_elements(p):
    """A 2-D view of ``p``'s entries, in any order, for a count.  Past two
    axes they are taken in memory order (positive strides, largest first), in
    which transposed, Fortran-ordered and reversed views fold into two axes
    without a copy."""
    if p.ndim <= 2:
        return p.reshape((1,) * (2 - p.ndim) + p.shape)
    p = p[tuple(slice(None, None, -1) if s < 0 else slice(None) for s in p.strides)]
    p = p.transpose(sorted(range(p.ndim), key=lambda i: p.strides[i], reverse=True))
    (p2,) = fold(p.shape, [p], inputs_ok_to_copy={0})
    return p2


@_docstring("""Binary cross-entropy from logits, stable for every z.

    ``l = (1 − y')·z + lw·softplus(−z)`` with ``softplus(x) = log1p(exp(x))``
    computed as ``max(x, 0) + log1p(exp(−|x|))``, ``lw = 1 + (pos_weight − 1)·y'``
    and ``y' = y(1 − ε) + ε/2`` (label smoothing ε). Gradient
    ``∂l/∂z = lw·σ(z) − pos_weight·y'`` (``σ(z) − y'`` without pos_weight).
    ``z = +inf, y = 1`` gives 0.

    Parameters
    ----------
    z : array_like
        Logits, any shape.
    y : array_like
        Targets of ``z``'s shape.
    weight : array_like, optional
        Element-wise rescaling broadcastable to ``z`` (PyTorch's ``weight``).
    pos_weight : array_like, optional
        Weight of the positive term, broadcast along the last axis (PyTorch's
        ``pos_weight``, e.g. one per class of a multi-label problem).
    sample_weight : array_like, optional
        Broadcastable to ``z``; the mean divides by its sum.
    label_smoothing : float in [0, 1]
""" + _LOSS_ARGS + """
    Example
    -------
    >>> loss, grad = crossent.binary_cross_entropy_with_logits(
    ...     np.array([2.0, -1.0]), np.array([1.0, 0.0]), return_grad=True)
    """)
def binary_cross_entropy_with_logits(z, y, *, weight=None, pos_weight=None, sample_weight=None,
                                     label_smoothing=0.0, reduction="mean", return_grad=False,
                                     grad_out=None, backend=None, n_threads=None):
    if type(label_smoothing) is float:
        result = _fast_elementwise_loss("bce_with_logits", z, y, weight, pos_weight, sample_weight,
                                        grad_out, reduction, return_grad, backend, n_threads,
                                        label_smoothing=label_smoothing)
        if result is not None:
            return result
    module = _backends.module(backend)
    plan = _plan_bce_with_logits(module, z, y, weight=weight, pos_weight=pos_weight,
                                 sample_weight=sample_weight, label_smoothing=label_smoothing,
                                 reduction=reduction)
    return _run_loss(plan, module, n_threads, return_grad, grad_out)


def _plan_bce_with_logits(module, z, y, *, weight=None, pos_weight=None, sample_weight=None,
                          label_smoothing=0.0, reduction="mean"):
    return elementwise_plan("bce_with_logits", z, y, pred_name="z", weight=weight,
                            pos_weight=pos_weight, sample_weight=sample_weight,
                            label_smoothing=label_smoothing, reduction=reduction)


@_docstring("""Mean squared error ``l = (pred − target)²``, gradient ``2(pred − target)``.

    As ``torch.nn.functional.mse_loss``; with ``weight`` (element-wise,
    broadcastable) the mean is ``Σ s·w·l / Σ s·w`` as PyTorch 2.13 does.
    The founding note's ``1/(2n) Σ (a − y)²`` is half of the mean
    (see :func:`crossent.linear.logistic`).

    Parameters
    ----------
    pred, target : array_like
        Same shape.
    weight, sample_weight : array_like, optional
        Broadcastable to ``pred``.
""" + _LOSS_ARGS + """
    Example
    -------
    >>> float(crossent.mse_loss(np.array([1.0, 2.0]), np.array([0.0, 0.0])))
    2.5
    """)
def mse_loss(pred, target, *, weight=None, sample_weight=None, reduction="mean",
             return_grad=False, grad_out=None, backend=None, n_threads=None):
    result = _fast_elementwise_loss("mse", pred, target, weight, None, sample_weight, grad_out,
                                    reduction, return_grad, backend, n_threads,
                                    mean_divides_by=_DIVIDE_WEIGHTS)
    if result is not None:
        return result
    module = _backends.module(backend)
    plan = _plan_mse(module, pred, target, weight=weight, sample_weight=sample_weight,
                     reduction=reduction)
    return _run_loss(plan, module, n_threads, return_grad, grad_out)


def _plan_mse(module, pred, target, *, weight=None, sample_weight=None, reduction="mean"):
    return elementwise_plan("mse", pred, target, pred_name="pred", weight=weight,
                            sample_weight=sample_weight, reduction=reduction,
                            weights_in_denominator=True)


@_docstring("""Binary focal loss from logits (Lin et al. 2017), the values of
    ``torchvision.ops.sigmoid_focal_loss`` (with crossent's ``"mean"`` default).

    With ``p = σ(z)``, ``p_t = p·y + (1 − p)(1 − y)`` and
    ``α_t = α·y + (1 − α)(1 − y)`` (1 when ``alpha < 0``, as torchvision)::

        l = α_t · BCE_with_logits(z, y) · (1 − p_t)^γ
        ∂l/∂z = α_t (1 − p_t)^γ (σ(z) − y + γ(1 − 2y) · BCE · σ(z)σ(−z)/(1 − p_t))

    computed in a stable form: ``(1 − p_t)^γ = exp(γ·log σ(∓z))`` for a 0/1
    target, so every finite z gives a finite loss, and z = ±inf gives the
    limit (0 for a correct infinite logit; inf for a wrong one, whose
    gradient is ``α_t`` with the sign of z). Derivation in docs/math.md.

    Parameters
    ----------
    z : array_like
        Logits, any shape.
    y : array_like
        Targets in [0, 1] of ``z``'s shape (0/1 labels, or soft labels;
        outside [0, 1]: ``ValueError``, since ``1 − p_t`` could be negative).
    alpha : float
        Weight of the positive class; negative: no alpha weighting.
    gamma : float >= 0
        Focusing parameter; 0 gives ``α_t``-weighted BCE with logits.
    weight : array_like, optional
        Element-wise rescaling broadcastable to ``z``; the mean still divides
        by the element count (or Σ sample_weight), as for the binary losses.
    sample_weight : array_like, optional
        Broadcastable to ``z``; the mean divides by its sum.
""" + _LOSS_ARGS + """
    Example
    -------
    >>> float(crossent.focal_loss(np.array([2.0, -1.0]), np.array([1.0, 0.0])))
    0.008722216920080296
    """)
def focal_loss(z, y, *, alpha=0.25, gamma=2.0, weight=None, sample_weight=None,
               reduction="mean", return_grad=False, grad_out=None, backend=None, n_threads=None):
    if type(alpha) is float and type(gamma) is float:
        result = _fast_elementwise_loss("focal", z, y, weight, None, sample_weight, grad_out,
                                        reduction, return_grad, backend, n_threads, alpha=alpha,
                                        gamma=gamma)
        if result is not None:
            return result
    module = _backends.module(backend)
    plan = _plan_focal(module, z, y, alpha=alpha, gamma=gamma, weight=weight,
                       sample_weight=sample_weight, reduction=reduction, n_threads=n_threads)
    return _run_loss(plan, module, n_threads, return_grad, grad_out)


def _plan_focal(module, z, y, *, alpha=0.25, gamma=2.0, weight=None, sample_weight=None,
                reduction="mean", n_threads=None):
    alpha = check_real(alpha, "alpha")
    gamma = check_real(gamma, "gamma", expected="a finite float >= 0", minimum=0.0)
    plan = elementwise_plan("focal", z, y, pred_name="z", weight=weight,
                            sample_weight=sample_weight, reduction=reduction)
    _check_probabilities(module, plan.inputs[1], "y", n_threads)
    plan.make_args = lambda ops: (*ops, alpha, gamma)
    return plan


# ------------------------------------------------------ multiclass losses

_MULTICLASS_ARGS = """
    target : array_like
        Integer class indices (any int dtype) of the predictions' shape
        without the class axis, or (where allowed) floating class
        probabilities of the predictions' own shape (soft targets).
    axis : int
        The class axis (default last).
    weight : array_like, optional
        One weight per class (length C). With integer targets a sample's
        weight is ``weight[target]``; with soft targets it weighs each class
        term inside the sample's loss (as PyTorch).
    sample_weight : array_like, optional
        One weight per sample (broadcastable to the target's shape).
    ignore_index : int
        Samples whose integer target equals it contribute nothing, to the sum
        or to the mean's denominator (default -100).
"""


@_docstring("""Softmax cross-entropy from logits (``torch.nn.functional.cross_entropy``).

    With ``log p = log_softmax(z)`` along ``axis``, integer target t, class
    weights w and label smoothing ε::

        l = (1 − ε)·w_t·(−log p_t) + (ε/C)·Σ_c w_c·(−log p_c)
        ∂l/∂z_c = (1 − ε)·w_t·(p_c − [c = t]) + (ε/C)·(W·p_c − w_c),  W = Σ w

    which without weights and smoothing is ``softmax(z) − onehot(t)``. Soft
    targets y use ``y' = y(1 − ε) + ε/C``, ``l = −Σ_c w_c·y'_c·log p_c`` and
    ``∂l/∂z = p·Σ_c w_c y'_c − w·y'``. The derivation is in docs/math.md.

    Parameters
    ----------
    logits : array_like
        Any shape with a class axis; float32/float64 (float16 and bfloat16
        read as they are → float32, integers → float64).
""" + _MULTICLASS_ARGS + """
    label_smoothing : float in [0, 1]
    z_loss : float >= 0
        Adds ``z_loss·w·lse²`` to each sample's loss (PaLM's z-loss), lse the
        log-sum-exp of its logits and w its weight in the mean (the class
        weight of its integer target; 1 for soft targets). Default 0.
    softcap : float > 0, optional
        Computes everything on ``softcap·tanh(z/softcap)`` instead of the
        logits z (Gemma 2's logit soft-capping); the gradient includes the
        chain rule. Default None (no cap). docs/math.md §10 derives both.
""" + _LOSS_ARGS + """
    Example
    -------
    >>> z = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> loss, grad = crossent.cross_entropy(z, np.array([0, 2]), return_grad=True)
    """)
def cross_entropy(logits, target, *, axis=-1, weight=None, sample_weight=None,
                  ignore_index=-100, label_smoothing=0.0, z_loss=0.0, softcap=None,
                  reduction="mean", return_grad=False, grad_out=None, backend=None,
                  n_threads=None):
    if softcap is None and type(z_loss) is float and z_loss == 0.0:
        result = _fast_row_loss("softmax_xent", logits, target, axis, weight, sample_weight,
                                grad_out, backend, n_threads, ignore_index, label_smoothing,
                                reduction, return_grad)
        if result is not None:
            return result
    module = _backends.module(backend)
    plan = _plan_cross_entropy(module, logits, target, axis=axis, weight=weight,
                               sample_weight=sample_weight, ignore_index=ignore_index,
                               label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap,
                               reduction=reduction)
    return _run_loss(plan, module, n_threads, return_grad, grad_out)


def _plan_cross_entropy(module, logits, target, *, axis=-1, weight=None, sample_weight=None,
                        ignore_index=-100, label_smoothing=0.0, z_loss=0.0, softcap=None,
                        reduction="mean"):
    z_loss, softcap = check_logit_transforms(z_loss, softcap)
    plan = multiclass_plan("softmax_xent", logits, target, pred_name="logits", axis=axis,
                           weight=weight, sample_weight=sample_weight, ignore_index=ignore_index,
                           label_smoothing=label_smoothing, reduction=reduction, module=module)
    if z_loss or softcap:
        plan = with_logit_transforms(plan, z_loss, softcap)
    return plan


@_docstring("""Categorical cross-entropy from probabilities (Keras' ``from_logits=False``,
    without renormalising the probabilities).

    As :func:`cross_entropy` with ``−log p_c`` replaced by
    ``−max(log p_c, −100)`` of the given probabilities; the gradient w.r.t.
    the probabilities uses ``∂(−log p)/∂p = −1/max(p, 1e−12)``.

    Parameters
    ----------
    probs : array_like
        Probabilities in [0, 1] along ``axis`` (outside: ``ValueError``).
""" + _MULTICLASS_ARGS + """
    label_smoothing : float in [0, 1]
""" + _LOSS_ARGS + """
    Example
    -------
    >>> float(crossent.categorical_cross_entropy(np.array([[0.7, 0.2, 0.1]]), np.array([0])))
    0.35667494393873245
    """)
def categorical_cross_entropy(probs, target, *, axis=-1, weight=None, sample_weight=None,
                              ignore_index=-100, label_smoothing=0.0, reduction="mean",
                              return_grad=False, grad_out=None, backend=None, n_threads=None):
    result = _fast_row_loss("categorical_xent", probs, target, axis, weight, sample_weight,
                            grad_out, backend, n_threads, ignore_index, label_smoothing,
                            reduction, return_grad)
    if result is not None:
        return result
    module = _backends.module(backend)
    plan = _plan_categorical(module, probs, target, axis=axis, weight=weight,
                             sample_weight=sample_weight, ignore_index=ignore_index,
                             label_smoothing=label_smoothing, reduction=reduction,
                             n_threads=n_threads)
    return _run_loss(plan, module, n_threads, return_grad, grad_out)


def _plan_categorical(module, probs, target, *, axis=-1, weight=None, sample_weight=None,
                      ignore_index=-100, label_smoothing=0.0, reduction="mean", n_threads=None):
    plan = multiclass_plan("categorical_xent", probs, target, pred_name="probs", axis=axis,
                           weight=weight, sample_weight=sample_weight, ignore_index=ignore_index,
                           label_smoothing=label_smoothing, reduction=reduction, module=module)
    _check_probabilities(module, plan.pred, "probs", n_threads)
    return plan


@_docstring("""Negative log-likelihood ``l = −w_t·x_t`` of log-probabilities x
    (``torch.nn.functional.nll_loss``); gradient ``−w_t`` at the target class.

    Parameters
    ----------
    log_probs : array_like
        Log-probabilities (e.g. :func:`log_softmax` output) with a class axis.
""" + _MULTICLASS_ARGS.replace(", or (where allowed) floating class\n        probabilities of the predictions' own shape (soft targets)", "") + _LOSS_ARGS + """
    Example
    -------
    >>> float(crossent.nll_loss(np.log(np.array([[0.5, 0.5]])), np.array([1])))
    0.6931471805599453
    """)
def nll_loss(log_probs, target, *, axis=-1, weight=None, sample_weight=None, ignore_index=-100,
             reduction="mean", return_grad=False, grad_out=None, backend=None, n_threads=None):
    result = _fast_row_loss("nll", log_probs, target, axis, weight, sample_weight, grad_out,
                            backend, n_threads, ignore_index, 0.0, reduction, return_grad)
    if result is not None:
        return result
    module = _backends.module(backend)
    plan = _plan_nll(module, log_probs, target, axis=axis, weight=weight,
                     sample_weight=sample_weight, ignore_index=ignore_index, reduction=reduction)
    return _run_loss(plan, module, n_threads, return_grad, grad_out)


def _plan_nll(module, log_probs, target, *, axis=-1, weight=None, sample_weight=None,
              ignore_index=-100, reduction="mean"):
    return multiclass_plan("nll", log_probs, target, pred_name="log_probs", axis=axis,
                           weight=weight, sample_weight=sample_weight, ignore_index=ignore_index,
                           label_smoothing=0.0, reduction=reduction, module=module,
                           soft_allowed=False)


# ------------------------------------------------------------ divergences

_KL_REDUCTIONS = ("batchmean", "mean", "sum", "none")


@_docstring("""Kullback-Leibler divergence of ``q`` from ``p``, given ``log q``
    (``torch.nn.functional.kl_div``), elementwise::

        l = p·(log p − log_q)             ∂l/∂log_q = −p
        l = exp(t)·(t − log_q)            ∂l/∂log_q = −exp(t)   (log_target, t = log p)

    A zero probability (``p = 0``, or ``t = -inf`` with ``log_target``) gives
    0 whatever ``log_q`` is, also ±inf (the ``0·log 0 = 0`` rule; PyTorch
    gives NaN there, as ``0·inf``), and a NaN ``log_q`` gives NaN. A negative
    ``p`` gives NaN, as in PyTorch.

    Parameters
    ----------
    log_q : array_like
        Log-probabilities (e.g. :func:`log_softmax` output) with a class axis.
    p : array_like
        Target probabilities of ``log_q``'s shape (their logs with
        ``log_target=True``).
    log_target : bool
        ``p`` holds log-probabilities.
    axis : int
        The class axis: a sample is one slice along it (default last).
    sample_weight : array_like, optional
        One weight per sample, broadcastable to ``log_q``'s shape without
        ``axis``; it multiplies every class term of its sample.
    reduction : {"batchmean", "mean", "sum", "none"}
        ``"batchmean"`` (default) is ``Σ l / number of samples``, PyTorch's
        ``batchmean`` for 2-D (N, C) input with the class axis last (PyTorch
        divides by ``shape[0]`` whatever the rank; here a sample is always a
        slice along ``axis``); ``"mean"`` divides by the element count (as
        PyTorch), ``"sum"`` does not divide, ``"none"`` returns the elementwise
        losses (``log_q``'s shape). With ``sample_weight`` s:
        ``"batchmean"`` is ``Σ_i s_i Σ_c l_ic / Σ_i s_i`` and ``"mean"`` that
        divided by C. Sums are accumulated in float64.
    return_grad : bool
        Also return the gradient of the reduced loss w.r.t. ``log_q``, from
        the same pass.
    grad_out : ndarray, optional
        A preallocated C-contiguous writable array for the gradient (needs
        ``return_grad=True``).
    backend : {"cython", "c", "numpy"}, optional
        None: the current default (:func:`crossent.get_backend`).
    n_threads : int, optional
        None: all cores this process may use. Results are bitwise identical
        for every value.

    Returns
    -------
    loss : numpy scalar, or ndarray for ``"none"``
    grad : ndarray, only with ``return_grad=True``

    Example
    -------
    >>> float(crossent.kl_div(np.log(np.array([[0.25, 0.75]])), np.array([[0.5, 0.5]])))
    0.14384103622589045
    """)
def kl_div(log_q, p, *, log_target=False, axis=-1, sample_weight=None, reduction="batchmean",
           return_grad=False, grad_out=None, backend=None, n_threads=None):
    if sample_weight is None and type(log_target) is bool and type(axis) is int and axis == -1:
        result = _fast_elementwise_loss("kl_div", log_q, p, None, None, None, grad_out,
                                        "mean" if reduction == "batchmean" else reduction,
                                        return_grad, backend, n_threads, log_target=log_target,
                                        mean_divides_by=_DIVIDE_ROWS if reduction == "batchmean"
                                        else _DIVIDE_SAMPLE_WEIGHT)
        if result is not None:
            return result
    module = _backends.module(backend)
    plan = _plan_kl_div(module, log_q, p, log_target=log_target, axis=axis,
                        sample_weight=sample_weight, reduction=reduction)
    return _run_loss(plan, module, n_threads, return_grad, grad_out)


def _plan_kl_div(module, log_q, p, *, log_target=False, axis=-1, sample_weight=None,
                 reduction="batchmean"):
    """An elementwise plan: every element is one kernel sample; a sample of
    the divergence (a slice along ``axis``) shows only in the weights
    (broadcast along ``axis``) and in the mean's denominator."""
    if not isinstance(reduction, str) or reduction not in _KL_REDUCTIONS:
        raise ValueError("reduction: expected one of 'batchmean', 'mean', 'sum', 'none', "
                         f"got {reduction!r}")
    log_target = check_bool(log_target, "log_target")
    x = as_prediction(log_q, "log_q")
    dtype = compute_dtype(x.dtype, "log_q")
    axis = check_axis(axis, x.ndim, "log_q")
    t = as_operand(p, dtype, "p", x.shape, exact=True)
    sample_shape = x.shape[:axis] + x.shape[axis + 1:]
    per_sample = s = None
    if sample_weight is not None:
        per_sample = as_operand(sample_weight, dtype, "sample_weight", sample_shape)
        s = np.broadcast_to(np.expand_dims(per_sample, axis), x.shape)
    per_element = reduction == "mean"

    def denominator(module, n_threads, folded, acc):
        if s is None:
            return acc + (x.size if per_element else math.prod(sample_shape))
        if per_element:  # C·Σ s_i, as the sum over the elements
            return module.elementwise_weight_sum(folded[-1], None, n_threads, acc)
        (s2,) = fold(sample_shape, [per_sample], {0})
        return module.sample_weight_sum(s2, n_threads, acc)

    kernel_reduction = reduction if reduction in ("sum", "none") else "mean"
    return LossPlan("kl_div", dtype, kernel_reduction, x, None, x.shape, [x, t, None, s],
                    lambda ops: (*ops, log_target), denominator, user_inputs=[x, t, s])


# Every public function of SPEC §2-3, listed once: whether its input has a
# class axis ("rows") or not ("elements"), what blocks its kernel runs over
# (kl_div's kernel is elementwise over an input with a class axis), what
# its first two arguments are, and for a loss its planner.  crossent.evaluate
# and `crossent eval` take the losses; the bench makes each function's
# inputs from the kinds (_bench_cases.make_inputs); the package exports them.
Function = namedtuple("Function", "over blocks pred target planner")
FUNCTIONS = {
    "cross_entropy": Function("rows", "rows", "logits", "labels", _plan_cross_entropy),
    "categorical_cross_entropy": Function("rows", "rows", "probs", "labels", _plan_categorical),
    "nll_loss": Function("rows", "rows", "log_probs", "labels", _plan_nll),
    "kl_div": Function("rows", "elements", "log_probs", "probs", _plan_kl_div),
    "softmax": Function("rows", "rows", "logits", None, None),
    "log_softmax": Function("rows", "rows", "logits", None, None),
    "logsumexp": Function("rows", "rows", "logits", None, None),
    "binary_cross_entropy_with_logits": Function("elements", "elements", "logits", "binary",
                                                 _plan_bce_with_logits),
    "binary_cross_entropy": Function("elements", "elements", "probs", "binary", _plan_bce),
    "mse_loss": Function("elements", "elements", "logits", "real", _plan_mse),
    "focal_loss": Function("elements", "elements", "logits", "binary", _plan_focal),
    "sigmoid": Function("elements", "elements", "logits", None, None),
    "log_sigmoid": Function("elements", "elements", "logits", None, None),
}
_PLANNERS = {name: f.planner for name, f in FUNCTIONS.items() if f.planner is not None}
LOSSES = tuple(_PLANNERS)
__all__ = list(FUNCTIONS)
