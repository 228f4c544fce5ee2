"""Validation and canonicalisation: user arguments -> a small plan, once.

Everything SPEC §1 promises about inputs is checked here, before any kernel
runs, so that a bad argument raises (naming the argument, what was expected
and what was given) and nothing is half-written.  The plan holds the
canonical operands of docs/kernels.md: elementwise operands as 2-D ``(R, K)``
views, row operands as 3-D ``(A, B, C)`` views with the class axis last --
views, never copies, except for the documented conversions (a dtype the
kernels do not take, unaligned data, or a layout whose leading axes cannot be
folded into two).
"""
import math
import operator
from dataclasses import dataclass, field, replace

import numpy as np

REDUCTIONS = ("mean", "sum", "none")
_INDEX_DTYPES = (np.dtype(np.int64), np.dtype(np.int32))


# --------------------------------------------------------------- scalars

def check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of 'mean', 'sum', 'none', got {reduction!r}")
    return reduction


def check_label_smoothing(label_smoothing):
    try:
        value = float(label_smoothing)
    except (TypeError, ValueError):
        raise TypeError("label_smoothing: expected a float in [0, 1], "
                        f"got {type(label_smoothing).__name__}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"label_smoothing: expected a float in [0, 1], got {label_smoothing!r}")
    return value


def check_ignore_index(ignore_index):
    if isinstance(ignore_index, (bool, np.bool_)) or not hasattr(ignore_index, "__index__"):
        raise TypeError(f"ignore_index: expected an int, got {type(ignore_index).__name__}")
    value = operator.index(ignore_index)
    if not -2**63 <= value < 2**63:
        raise ValueError(f"ignore_index: expected an int64 value, got {value}")
    return value


def check_axis(axis, ndim, name):
    if isinstance(axis, (bool, np.bool_)) or not hasattr(axis, "__index__"):
        raise TypeError(f"axis: expected an int, got {type(axis).__name__}")
    axis = operator.index(axis)
    if ndim == 0:
        raise ValueError(f"{name}: expected an array with a class axis (ndim >= 1), got a 0-d array")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis: expected an int in [{-ndim}, {ndim - 1}] for the "
                         f"{ndim}-d {name}, got {axis}")
    return axis % ndim


# ---------------------------------------------------------------- arrays

# DLPack's device code of host memory (dlpack.h, kDLCPU).
_DLPACK_CPU = 1


def as_array(x, name):
    """``x`` as an ndarray: an ndarray as it is; any other array with
    ``__dlpack__`` (a torch tensor, a JAX array) through ``np.from_dlpack``,
    sharing its memory; anything else through ``np.asarray``."""
    if type(x) is np.ndarray:
        return x
    if isinstance(x, np.ndarray) or not hasattr(x, "__dlpack__"):
        return np.asarray(x)
    return _from_dlpack(x, name)


def _require_cpu(x, name):
    device = x.__dlpack_device__() if hasattr(x, "__dlpack_device__") else (_DLPACK_CPU, 0)
    if int(device[0]) != _DLPACK_CPU:
        raise ValueError(f"{name}: expected an array in CPU memory, got a {type(x).__name__} on "
                         f"device {_device_name(x, device)}; move it to the CPU first "
                         f"(torch: .cpu(), JAX: jax.device_get)")


def _from_dlpack(x, name):
    _require_cpu(x, name)
    if getattr(x, "requires_grad", False):
        # The values are read, never differentiated: the result is a NumPy
        # array outside the autograd graph (crossent.torch has the losses
        # that take part in it).  detach() shares the memory.
        x = x.detach()
    if _is_torch_bfloat16(x):
        return _torch_bfloat16(x, name)
    try:
        return np.from_dlpack(x)
    except (BufferError, TypeError, RuntimeError, ValueError):
        # A dtype DLPack cannot carry into NumPy (a JAX bfloat16 array, ...):
        # the array's own NumPy conversion.
        return np.asarray(x)


def _device_name(x, device):
    named = getattr(x, "device", None)
    return str(named) if named is not None else f"{tuple(int(d) for d in device)} (DLPack code)"


def _is_torch_bfloat16(x):
    dtype = getattr(x, "dtype", None)
    return type(x).__module__.startswith("torch") and str(dtype) == "torch.bfloat16"


def _torch_bfloat16(x, name):
    """A bfloat16 torch tensor as an ``ml_dtypes.bfloat16`` array over the same
    memory (DLPack has bfloat16, NumPy has not)."""
    bfloat16 = bfloat16_dtype()
    if bfloat16 is None:
        raise TypeError(f"{name}: a bfloat16 tensor needs the ml_dtypes package "
                        f"(pip install ml_dtypes, or crossent[bfloat16])")
    import torch
    return np.from_dlpack(x.view(torch.int16)).view(bfloat16)


def is_bfloat16(dtype):
    """Whether ``dtype`` is ``ml_dtypes.bfloat16`` (found by name: ml_dtypes
    is imported only when such an array is met)."""
    return dtype.kind == "V" and dtype.name == "bfloat16"


def bfloat16_dtype():
    """``ml_dtypes.bfloat16`` as a NumPy dtype, or None without ml_dtypes."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


def is_real(dtype):
    """A dtype of real numbers crossent reads: floating (bfloat16 included),
    integer or bool."""
    return dtype.kind in "fiub" or is_bfloat16(dtype)


def compute_dtype(dtype, name):
    """The dtype a prediction of ``dtype`` is computed in (SPEC §1.2)."""
    kind = dtype.kind
    if kind == "f" or is_bfloat16(dtype):
        return np.dtype(np.float32) if dtype.itemsize <= 4 else np.dtype(np.float64)
    if kind in "iub":
        return np.dtype(np.float64)
    raise TypeError(f"{name}: expected a real floating, integer or bool array, got dtype {dtype}")


def is_half(dtype):
    """float16 or bfloat16: predictions the kernels read as they are and
    compute in float32 (widened a block at a time)."""
    return dtype == np.float16 or is_bfloat16(dtype)


def as_prediction(x, name):
    """``x`` as an array the kernels read: of its computation dtype, or
    float16/bfloat16 as it is; copied only when the kernels cannot read it
    as it is (another dtype, unaligned).  Its computation dtype is
    ``compute_dtype(x.dtype, name)``."""
    x = as_array(x, name)
    dtype = compute_dtype(x.dtype, name)
    if x.dtype != dtype and not is_half(x.dtype) or not x.flags.aligned:
        x = x.astype(dtype)
    return x


def as_operand(x, dtype, name, shape, exact=False, shape_is="the predictions' shape"):
    """A floating operand of computation dtype ``dtype`` broadcast to ``shape``
    (``exact``: it must have exactly that shape, which is ``shape_is``)."""
    x = as_array(x, name)
    if not is_real(x.dtype):
        raise TypeError(f"{name}: expected a real floating, integer or bool array, got dtype {x.dtype}")
    if exact and x.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} ({shape_is}), got shape {x.shape}")
    if x.dtype != dtype or not x.flags.aligned:
        x = x.astype(dtype)
    if x.shape != shape:
        try:
            x = np.broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"{name}: expected a shape broadcastable to {shape}, "
                             f"got shape {x.shape}") from None
    return x


def class_weight(weight, n_classes):
    """``weight=`` of a multiclass loss: float64, C-contiguous, length C."""
    if weight is None:
        return None
    w = as_array(weight, "weight")
    if not is_real(w.dtype):
        raise TypeError(f"weight: expected a real 1-D array of length {n_classes}, got dtype {w.dtype}")
    if w.shape != (n_classes,):
        raise ValueError(f"weight: expected a 1-D array of length {n_classes} (one per class), "
                         f"got shape {w.shape}")
    return np.require(w, np.float64, ["C", "A"])


def check_out(out, shape, dtype, inputs, name="out", contiguous=False, in_place_ok=True):
    """A caller's output array: right shape and dtype, writable, and either one
    of ``inputs`` itself (in place, for activations, when ``in_place_ok``) or
    not overlapping them."""
    if not isinstance(out, np.ndarray):
        out = _output_view(out, name)
    if out.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got shape {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {dtype}, got dtype {out.dtype}")
    if contiguous and not out.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array, got strides {out.strides}")
    if not out.flags.writeable:
        raise ValueError(f"{name}: expected a writable array, got a read-only one")
    for x in inputs:
        if x is None or in_place_ok and _same_view(out, x):
            continue
        if np.may_share_memory(out, x):
            raise ValueError(f"{name}: must not overlap the input arrays")
    return out


def _output_view(out, name):
    """A DLPack array given as an output (a torch tensor) as the ndarray over
    its memory, which the kernels then write; never a copy."""
    what = f"{name}: expected a numpy.ndarray or a writable CPU array with __dlpack__"
    if not hasattr(out, "__dlpack__"):
        raise ValueError(f"{what}, got {type(out).__name__}")
    _require_cpu(out, name)
    if getattr(out, "requires_grad", False):
        raise ValueError(f"{what}, got a {type(out).__name__} that requires grad (autograd "
                         f"would not see the write)")
    try:
        return np.from_dlpack(out)
    except (BufferError, TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{what}, got a {type(out).__name__} NumPy cannot write through "
                         f"DLPack ({exc})") from None


def _same_view(a, b):
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.strides == b.strides and a.shape == b.shape and a.dtype == b.dtype)


# ----------------------------------------------------- canonical layouts

def _leading_groups(shape, strides_list):
    """Fold the axes of ``shape`` into as few groups as every operand allows:
    neighbouring axes merge when, for every operand, the outer stride is the
    inner stride times the inner length.  Returns the group lengths."""
    sizes, strides = [], []
    for i, n in enumerate(shape):
        if n == 1:
            continue
        inner = [s[i] for s in strides_list]
        if sizes and all(outer == s * n for outer, s in zip(strides, inner)):
            sizes[-1] *= n
        else:
            sizes.append(n)
        strides = inner
    return sizes


def fold(lead_shape, operands, inputs_ok_to_copy):
    """Views of ``operands`` with their leading axes ``lead_shape`` folded into
    two, ``(A, B, ...)``.  ``operands`` is a list of arrays (or None) whose
    first ``len(lead_shape)`` axes are ``lead_shape``.

    If no two-axis folding exists (three or more leading axes that no stride
    pattern joins), the operands at the indices ``inputs_ok_to_copy`` (inputs,
    never outputs) are copied C-contiguous; outputs are always C-contiguous in
    the user's layout, which folds into two.
    """
    k = len(lead_shape)
    present = [op for op in operands if op is not None]
    if k <= 1 or all(op.flags.c_contiguous for op in present):
        # One leading axis (or none), or C-contiguous operands: the leading
        # axes fold into one, as (1, n).
        lead = (1, math.prod(lead_shape))
        return [None if op is None else op.reshape(lead + op.shape[k:], copy=False)
                for op in operands]
    sizes = _leading_groups(lead_shape, [op.strides[:k] for op in present])
    if len(sizes) > 2:
        operands = [np.ascontiguousarray(op) if i in inputs_ok_to_copy and op is not None else op
                    for i, op in enumerate(operands)]
        present = [op for op in operands if op is not None]
        sizes = _leading_groups(lead_shape, [op.strides[:k] for op in present])
        if len(sizes) > 2:  # an output (never copied) in a layout that does not fold
            raise ValueError("an output's layout folds into no two leading axes")
    lead = tuple([1] * (2 - len(sizes)) + sizes)
    # copy=False: a fold that needed a copy would silently drop an output's writes
    return [None if op is None else op.reshape(lead + op.shape[k:], copy=False)
            for op in operands]


def move_class_axis(x, axis):
    """``x`` with the class axis last (a view)."""
    return x if axis == x.ndim - 1 else np.moveaxis(x, axis, -1)


# ----------------------------------------------------------------- plans

@dataclass
class LossPlan:
    """What the facade needs to run one loss.

    ``inputs`` are the operands in logical order (class axis last), not yet
    folded: the facade folds them together with the outputs it allocates, so
    that every operand gets the same ``(A, B)`` split.
    """
    kernel: str
    dtype: np.dtype
    reduction: str
    pred: np.ndarray          # the prediction in the user's layout (computation dtype)
    axis: object              # class axis of ``pred``, or None for elementwise losses
    lead_shape: tuple         # shape of the per-sample losses
    inputs: list              # logical-order input operands (arrays or None)
    make_args: object         # fn(folded inputs) -> kernel operands before losses_out
    denominator: object       # fn(module, n_threads, folded inputs, acc) -> acc + Σ weights
    user_inputs: list = field(default_factory=list)  # arrays grad_out must not overlap


def elementwise_plan(kernel, pred, target, *, pred_name, weight=None, pos_weight=None,
                     sample_weight=None, label_smoothing=None, reduction="mean",
                     weights_in_denominator=False):
    """Plan for a loss whose every element is a sample (BCE, BCE with logits, MSE).

    ``weights_in_denominator``: the mean divides by Σ s·w (mse_loss, as
    PyTorch) instead of Σ s (the binary losses).
    """
    reduction = check_reduction(reduction)
    x = as_prediction(pred, pred_name)
    shape, dtype = x.shape, compute_dtype(x.dtype, pred_name)
    y = as_operand(target, dtype, "target", shape, exact=True)
    w = None if weight is None else as_operand(weight, dtype, "weight", shape)
    pw = None if pos_weight is None else as_operand(pos_weight, dtype, "pos_weight", shape)
    s = None if sample_weight is None else as_operand(sample_weight, dtype, "sample_weight", shape)
    if kernel == "bce_with_logits":
        smoothing = check_label_smoothing(label_smoothing)
        inputs = [x, y, w, pw, s]
        make_args = lambda ops: (*ops, smoothing)  # noqa: E731
    else:
        inputs = [x, y, w, s]
        make_args = tuple

    def denominator(module, n_threads, folded, acc):
        s2, w2 = folded[-1], folded[2] if weights_in_denominator else None
        if s2 is None:
            s2, w2 = w2, None
        if s2 is None:
            return acc + x.size
        return module.elementwise_weight_sum(s2, w2, n_threads, acc)

    return LossPlan(kernel, dtype, reduction, x, None, shape, inputs, make_args, denominator,
                    user_inputs=[x, y, w, pw, s])


def _not_class_indices(pred_name, x_shape, axis, t):
    """The ValueError of a target that should be integer class indices (the
    shape of the predictions without the class axis) and is not: the dtype
    and both shapes named (SPEC §1.3)."""
    lead_shape = x_shape[:axis] + x_shape[axis + 1:]
    return ValueError(f"target: expected integer class indices of shape {lead_shape} ({pred_name} "
                      f"of shape {x_shape} without its class axis {axis}), got {t.dtype} target "
                      f"of shape {t.shape}")


def _index_target(t, x_shape, axis, n_classes, ignore_index, module, pred_name):
    """Integer class indices: shape and range checked; int32/int64 kept as
    they are, other integer dtypes converted to int64 after the check."""
    lead_shape = x_shape[:axis] + x_shape[axis + 1:]
    if t.shape != lead_shape:
        raise _not_class_indices(pred_name, x_shape, axis, t)
    if t.dtype in _INDEX_DTYPES and t.flags.aligned:
        bad = module.first_bad_index(fold(lead_shape, [t], (0,))[0], n_classes, ignore_index)
    else:
        from ._reference import first_bad_index
        bad = first_bad_index(t, n_classes, ignore_index)
    if bad >= 0:
        where = tuple(int(i) for i in np.unravel_index(bad, lead_shape)) if lead_shape else ()
        raise ValueError(f"target: class index {t[where]} at position {where} is outside "
                         f"[0, {n_classes}) and is not ignore_index={ignore_index}")
    if t.dtype not in _INDEX_DTYPES or not t.flags.aligned:
        t = t.astype(np.int64)
    return t


def _target_kind(t, x, axis, soft_allowed, ignore_index, pred_name):
    """"index" or "soft", after checking the target's dtype and shape."""
    if t.dtype.kind in "iu":
        return "index"
    if t.dtype.kind == "b":     # neither kind of target (SPEC §1.3), nor a TypeError's dtype
        if not soft_allowed:
            raise _not_class_indices(pred_name, x.shape, axis, t)
        raise ValueError(f"target: expected integer class indices of shape "
                         f"{x.shape[:axis] + x.shape[axis + 1:]} or floating probabilities of "
                         f"shape {x.shape} (the shape of {pred_name}), got bool target of shape "
                         f"{t.shape}")
    if t.dtype.kind != "f" and not is_bfloat16(t.dtype):
        raise TypeError(f"target: expected integer class indices or floating probabilities, "
                        f"got dtype {t.dtype}")
    if not soft_allowed:
        raise _not_class_indices(pred_name, x.shape, axis, t)
    if t.shape != x.shape:
        raise ValueError(f"target: expected floating (probability) targets of shape {x.shape} "
                         f"(the shape of {pred_name}), or integer class indices of shape "
                         f"{x.shape[:axis] + x.shape[axis + 1:]}, got {t.dtype} target of shape "
                         f"{t.shape}")
    if ignore_index != -100:
        raise ValueError(f"ignore_index: applies to integer targets only; soft (probability) "
                         f"targets need the default -100, got {ignore_index}")
    return "soft"


def multiclass_plan(kind, pred, target, *, pred_name, axis, weight, sample_weight,
                    ignore_index, label_smoothing, reduction, module, soft_allowed=True):
    """Plan for a loss over a class axis (cross_entropy, categorical, nll).

    ``kind`` is the kernel stem: "softmax_xent", "categorical_xent" or "nll".
    """
    reduction = check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    smoothing = check_label_smoothing(label_smoothing)
    x = as_prediction(pred, pred_name)
    axis = check_axis(axis, x.ndim, pred_name)
    n_classes = x.shape[axis]
    lead_shape = x.shape[:axis] + x.shape[axis + 1:]
    t = as_array(target, "target")
    target_kind = _target_kind(t, x, axis, soft_allowed, ignore_index, pred_name)
    if n_classes == 0 and 0 not in lead_shape:
        raise ValueError(f"{pred_name}: expected at least one class, the class axis "
                         f"(axis {axis}) has length 0")
    cw = class_weight(weight, n_classes)
    dtype = compute_dtype(x.dtype, pred_name)
    s = None if sample_weight is None else as_operand(sample_weight, dtype, "sample_weight", lead_shape)

    if target_kind == "soft":
        y = t if t.dtype == dtype and t.flags.aligned else t.astype(dtype)
        inputs = [move_class_axis(x, axis), move_class_axis(y, axis), s]
        make_args = lambda ops: (ops[0], ops[1], cw, ops[2], smoothing)  # noqa: E731
        kernel = kind + "_soft"
    else:
        t = _index_target(t, x.shape, axis, n_classes, ignore_index, module, pred_name)
        inputs = [move_class_axis(x, axis), t, s]
        kernel = kind + "_index"
        if kind == "nll":
            make_args = lambda ops: (ops[0], ops[1], cw, ops[2], ignore_index)  # noqa: E731
        else:
            make_args = lambda ops: (ops[0], ops[1], cw, ops[2], ignore_index, smoothing)  # noqa: E731

    def denominator(module, n_threads, folded, acc):
        _, t2, s2 = folded
        if target_kind == "index":
            return module.index_weight_sum(t2, cw, s2, ignore_index, n_threads, acc)
        if s2 is None:
            return acc + math.prod(lead_shape)
        return module.sample_weight_sum(s2, n_threads, acc)

    return LossPlan(kernel, dtype, reduction, x, axis, lead_shape, inputs, make_args,
                    denominator, user_inputs=[x, t, s])


# ------------------------------------------------- scalar options of new losses

def check_real(value, name, expected="a finite float", minimum=None):
    """A finite real scalar option as a Python float (bool is not a number
    here); ``minimum``: the smallest value allowed."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or minimum is not None and number < minimum:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return number


def check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


# ------------------------------------- cross_entropy's z_loss and softcap

def check_logit_transforms(z_loss, softcap):
    """(z_loss, softcap) as floats: z_loss >= 0; softcap None (0.0 here) or > 0."""
    z_loss = check_real(z_loss, "z_loss", "a finite float >= 0", minimum=0.0)
    if softcap is None:
        return z_loss, 0.0
    softcap = check_real(softcap, "softcap", "None or a finite float > 0")
    if softcap <= 0:
        raise ValueError(f"softcap: expected None or a finite float > 0, got {softcap!r}")
    return z_loss, softcap


def with_logit_transforms(plan, z_loss, softcap, lse_out=None):
    """A softmax_xent plan run by its kernel with z_loss and softcap (the
    "_ext" kernels of docs/kernels.md); lse_out: None, or where each row's
    log-sum-exp goes (of the plan's folded row shape)."""
    plain_args = plan.make_args
    return replace(plan, kernel=plan.kernel + "_ext",
                   make_args=lambda ops: plain_args(ops) + (z_loss, softcap, lse_out))
