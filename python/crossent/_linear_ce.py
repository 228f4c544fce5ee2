"""linear_cross_entropy: ``cross_entropy(h @ W.T + b, target, ...)`` of a
language-model head without its N × V logits.

The rows are taken a chunk at a time: the chunk's logits are one GEMM into
a reused buffer, crossent's row kernel turns them into the loss and, in
place, their gradient, and two more GEMMs take that gradient to ``dh`` and
``dW`` before the buffer is reused.  Rows whose target is ``ignore_index``
are left out of every GEMM.
"""
import ctypes
import glob
import math
import os
import types
from collections import namedtuple

import numpy as np

from . import _backends
from ._validate import (as_array, as_operand, as_prediction, check_ignore_index, check_label_smoothing,
                        check_logit_transforms, check_reduction, class_weight, compute_dtype)
from ._validate import _index_target, _target_kind

TokenTerms = namedtuple("TokenTerms", "lse z_loss")
TokenTerms.__doc__ = """Per-token terms of linear_cross_entropy (return_lse=True).

lse: each token's log-sum-exp of its (capped) logits, NaN for an ignored token.
z_loss: each token's z-loss term z_loss·w·lse², weighted as reduction="none"
weights the loss (0 for an ignored token)."""

# Extra memory of the default chunk: at most this fraction of one N × V
# float32 matrix.
MEMORY_FRACTION = 1 / 16


# ------------------------------------------------------------ dW += gᵀ·h

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _load_cblas_gemm():
    """{dtype: gemm} from the BLAS NumPy ships (its bundled OpenBLAS), for
    the one product np.matmul cannot do: C += AᵀB (beta = 1) into dW.  Empty
    when that library is not found (another NumPy build); then dW is
    accumulated through a small buffer."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    found = {}
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for stem, int_type in (("scipy_cblas_{}gemm64_", ctypes.c_int64),
                               ("scipy_cblas_{}gemm", ctypes.c_int)):
            for letter, real, dtype in (("s", ctypes.c_float, np.float32),
                                        ("d", ctypes.c_double, np.float64)):
                gemm = getattr(library, stem.format(letter), None)
                if gemm is None or np.dtype(dtype) in found:
                    continue
                i, p = int_type, ctypes.c_void_p
                gemm.argtypes = [i, i, i, i, i, i, real, p, i, p, i, real, p, i]
                gemm.restype = None
                found[np.dtype(dtype)] = gemm
        if len(found) > 1:
            break
    return found


_GEMM = None


def _dw_scratch(chunk, hidden, dtype):
    """The buffer _accumulate_gt_h needs without NumPy's cblas, else None."""
    global _GEMM
    if _GEMM is None:
        _GEMM = _load_cblas_gemm()
    return None if np.dtype(dtype) in _GEMM else np.empty((chunk, hidden), dtype)



def _accumulate_gt_h(g, hc, dw, scratch):
    """dw += g.T @ hc, g (m, V) and hc (m, d) with unit inner strides, dw
    C-contiguous (V, d); scratch: None (NumPy's cblas), or _dw_scratch's
    buffer, through which dw is accumulated a slice of rows at a time."""
    m, d = hc.shape
    if m == 0 or d == 0:
        return
    if scratch is None:
        size = dw.itemsize
        _GEMM[dw.dtype](_ROW_MAJOR, _TRANS, _NO_TRANS, dw.shape[0], d, m, 1.0, g.ctypes.data,
                        g.strides[0] // size, hc.ctypes.data, hc.strides[0] // size, 1.0,
                        dw.ctypes.data, d)
        return
    step = scratch.shape[0]
    for first in range(0, dw.shape[0], step):
        last = min(first + step, dw.shape[0])
        part = scratch[:last - first]
        np.matmul(g[:, first:last].T, hc, out=part)
        dw[first:last] += part


# ------------------------------------------------------------- validation

def _check_chunk_size(chunk_size):
    if chunk_size is None:
        return None
    if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"chunk_size: expected None or an int >= 1, got "
                        f"{type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected None or an int >= 1, got {chunk_size}")
    return int(chunk_size)


def linear_dtype(h_dtype, w_dtype):
    """The one dtype both GEMM operands are computed in: the wider of their
    computation dtypes (float16 and bfloat16 widen to float32, SPEC §1.2)."""
    return np.result_type(compute_dtype(h_dtype, "h"), compute_dtype(w_dtype, "linear_weight"))


def default_chunk_size(n_rows, n_classes, hidden, dtype):
    """Rows per chunk whose buffers (logits, and h and dh rows, and one row of
    column sums for dbias) take at most MEMORY_FRACTION of one n_rows ×
    n_classes float32 matrix (at least 1)."""
    itemsize = np.dtype(dtype).itemsize
    budget = MEMORY_FRACTION * n_rows * n_classes * 4 - n_classes * itemsize
    per_row = (n_classes + 2 * hidden) * itemsize
    return max(1, min(n_rows, int(budget // max(per_row, 1))))


def _blas_ready(x):
    """x, or its C-contiguous copy when BLAS could not read it in place (then
    np.matmul would copy it at every chunk)."""
    if x.flags.c_contiguous or x.flags.f_contiguous:
        return x
    return np.ascontiguousarray(x)


def _plan(h, linear_weight, target, bias, weight, sample_weight, ignore_index, label_smoothing,
          z_loss, softcap, reduction, chunk_size, module):
    reduction = check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    smoothing = check_label_smoothing(label_smoothing)
    z_loss, softcap = check_logit_transforms(z_loss, softcap)
    chunk_size = _check_chunk_size(chunk_size)
    h = as_prediction(h, "h")
    w = as_prediction(linear_weight, "linear_weight")
    if h.ndim < 1:
        raise ValueError(f"h: expected an array of shape (..., d), got a 0-d array")
    if w.ndim != 2 or w.shape[1] != h.shape[-1]:
        raise ValueError(f"linear_weight: expected shape (V, {h.shape[-1]}) (d = h.shape[-1], as "
                         f"torch.nn.Linear's weight), got {w.shape}")
    n_classes, hidden = w.shape
    if n_classes == 0:
        raise ValueError("linear_weight: expected at least one class (row), got shape "
                         f"{w.shape}")
    dtype = linear_dtype(h.dtype, w.dtype)
    h, w = h.astype(dtype, copy=False), w.astype(dtype, copy=False)
    lead_shape = h.shape[:-1]
    n_rows = math.prod(lead_shape)
    logits_shape = types.SimpleNamespace(shape=lead_shape + (n_classes,))
    pred_name = "h @ linear_weight.T"
    b = None
    if bias is not None:
        b = as_operand(bias, dtype, "bias", (n_classes,), exact=True,
                       shape_is="one per class, a row of linear_weight")
    t = as_array(target, "target")
    kind = _target_kind(t, logits_shape, len(lead_shape), True, ignore_index, pred_name)
    if kind == "index":
        t = _index_target(t, logits_shape.shape, len(lead_shape), n_classes, ignore_index,
                          module, pred_name).reshape(n_rows)
    else:
        t = t.astype(dtype, copy=False).reshape(n_rows, n_classes)
    s = None
    if sample_weight is not None:
        s = np.ascontiguousarray(as_operand(sample_weight, dtype, "sample_weight",
                                            lead_shape)).reshape(n_rows)
    return types.SimpleNamespace(
        # h's rows are read in place by the dW GEMM, which needs them contiguous.
        h=np.ascontiguousarray(h.reshape(n_rows, hidden)), w=_blas_ready(w), bias=b, target=t, kind=kind,
        class_weight=class_weight(weight, n_classes), sample_weight=s, ignore_index=ignore_index,
        smoothing=smoothing, z_loss=z_loss, softcap=softcap, reduction=reduction,
        chunk_size=chunk_size or default_chunk_size(n_rows, n_classes, hidden, dtype),
        dtype=dtype, lead_shape=lead_shape, h_shape=h.shape, n_rows=n_rows,
        n_classes=n_classes, hidden=hidden)


def _denominator(p, module, n_threads):
    """The mean's Σ weights, as cross_entropy computes it."""
    if p.kind == "index":
        s2 = None if p.sample_weight is None else p.sample_weight[None]
        return module.index_weight_sum(p.target[None], p.class_weight, s2, p.ignore_index,
                                       n_threads, 0.0)
    if p.sample_weight is None:
        return float(p.n_rows)
    return module.sample_weight_sum(p.sample_weight[None], n_threads, 0.0)


# ------------------------------------------------------------- the chunks

def _kernel_call(p, module, logits, rows, losses, lse, grad, scale, n_threads, acc):
    """The row kernel on a chunk's logits (1, m, V); the gradient, when
    wanted, is written over them."""
    s = None if p.sample_weight is None else p.sample_weight[rows][None]
    target = p.target[rows][None]
    transforms = p.z_loss or p.softcap or lse is not None
    if p.kind == "index":
        head = (logits, target, p.class_weight, s, p.ignore_index, p.smoothing)
    else:
        head = (logits, target, p.class_weight, s, p.smoothing)
    if transforms:
        kernel = getattr(module, f"softmax_xent_{p.kind}_ext")
        head = head + (p.z_loss, p.softcap, lse)
    else:
        kernel = getattr(module, f"softmax_xent_{p.kind}")
    return kernel(*head, losses, grad, scale, n_threads, acc)


def _run(p, module, n_threads, return_grad, return_lse, acc=0.0):
    dtype, n_rows, n_classes, hidden = p.dtype, p.n_rows, p.n_classes, p.hidden
    if p.kind == "index":
        kept = np.flatnonzero(p.target != p.ignore_index)
    else:
        kept = np.arange(n_rows)
    compact = len(kept) < n_rows
    chunk = max(1, min(p.chunk_size, len(kept)))
    denominator = _denominator(p, module, n_threads) if p.reduction == "mean" else 1.0
    scale = 1.0 / denominator if denominator else 0.0

    logits_buffer = np.empty((chunk, n_classes), dtype)
    h_buffer = np.empty((chunk, hidden), dtype) if compact else None
    losses = np.zeros(n_rows, dtype) if p.reduction == "none" else None
    lse = np.full(n_rows, np.nan, dtype) if return_lse else None
    dh = dw = db = None
    if return_grad:
        dh = (np.zeros if compact else np.empty)((n_rows, hidden), dtype)
        dh_buffer = np.empty((chunk, hidden), dtype) if compact else None
        dw = np.zeros((n_classes, hidden), dtype)
        dw_scratch = _dw_scratch(chunk, hidden, dtype)
        db = np.zeros(n_classes, np.float64) if p.bias is not None else None
        if db is not None:
            ones, column_sums = np.ones(chunk, dtype), np.empty(n_classes, dtype)
    total = acc
    for first in range(0, len(kept), chunk):
        m = min(chunk, len(kept) - first)
        # A slice when no row is left out: the chunk's targets (soft: m × V) are then views.
        rows = kept[first:first + m] if compact else slice(first, first + m)
        if compact:
            hc = np.take(p.h, rows, axis=0, out=h_buffer[:m])
        else:
            hc = p.h[first:first + m]
        logits = logits_buffer[:m]
        np.matmul(hc, p.w.T, out=logits)
        if p.bias is not None:
            np.add(logits, p.bias, out=logits)
        chunk_losses = np.empty((1, m), dtype) if losses is not None else None
        chunk_lse = np.empty((1, m), dtype) if lse is not None else None
        grad = logits[None] if return_grad else None
        total = _kernel_call(p, module, logits[None], rows, chunk_losses, chunk_lse, grad, scale,
                             n_threads, total)
        if losses is not None:
            losses[rows] = chunk_losses[0]
        if lse is not None:
            lse[rows] = chunk_lse[0]
        if not return_grad:
            continue
        if compact:
            np.matmul(logits, p.w, out=dh_buffer[:m])
            dh[rows] = dh_buffer[:m]
        else:
            np.matmul(logits, p.w, out=dh[first:first + m])
        _accumulate_gt_h(logits, hc, dw, dw_scratch)
        if db is not None:
            db += np.matmul(ones[:m], logits, out=column_sums)
    grads = None
    if return_grad:
        grads = (dh.reshape(p.h_shape), dw, None if db is None else db.astype(dtype))
    return total, denominator, losses, lse, grads


def linear_loss_sums(h, linear_weight, target, *, acc=(0.0, 0.0), bias=None, weight=None,
                     sample_weight=None, ignore_index=-100, label_smoothing=0.0, z_loss=0.0,
                     softcap=None, chunk_size=None, backend=None, n_threads=None):
    """(acc[0] + Σ weighted losses, acc[1] + Σ weights) of linear_cross_entropy
    over these rows: the sums behind its mean, for a file read in pieces."""
    module = _backends.module(backend)
    n_threads = _backends.resolve_n_threads(n_threads)
    p = _plan(h, linear_weight, target, bias, weight, sample_weight, ignore_index,
              label_smoothing, z_loss, softcap, "sum", chunk_size, module)
    total = _run(p, module, n_threads, False, False, acc[0])[0]
    p.reduction = "mean"
    return total, acc[1] + _denominator(p, module, n_threads), p.dtype, module.NAME


def _token_terms(p, lse):
    """TokenTerms from the kernel's per-token lse."""
    weights = np.ones(p.n_rows, np.float64)
    if p.kind == "index":
        kept = p.target != p.ignore_index
        if p.class_weight is not None:
            weights = p.class_weight[np.where(kept, p.target, 0)]
        weights = np.where(kept, weights, 0.0)
        lse = np.where(kept, lse, np.nan).astype(p.dtype)
    if p.sample_weight is not None:
        weights = weights * p.sample_weight
    with np.errstate(invalid="ignore"):
        z_terms = np.where(weights != 0, p.z_loss * weights * lse.astype(np.float64) ** 2, 0.0)
    return TokenTerms(lse.reshape(p.lead_shape), z_terms.astype(p.dtype).reshape(p.lead_shape))


def linear_cross_entropy(h, linear_weight, target, *, bias=None, weight=None, sample_weight=None,
                         ignore_index=-100, label_smoothing=0.0, z_loss=0.0, softcap=None,
                         reduction="mean", return_grad=False, return_lse=False, chunk_size=None,
                         backend=None, n_threads=None):
    from ._api import _mean
    module = _backends.module(backend)
    n_threads = _backends.resolve_n_threads(n_threads)
    p = _plan(h, linear_weight, target, bias, weight, sample_weight, ignore_index,
              label_smoothing, z_loss, softcap, reduction, chunk_size, module)
    total, denominator, losses, lse, grads = _run(p, module, n_threads, bool(return_grad),
                                                  bool(return_lse))
    if p.reduction == "none":
        loss = losses.reshape(p.lead_shape)
    elif p.reduction == "sum":
        loss = p.dtype.type(total)
    else:
        loss = p.dtype.type(_mean(total, denominator))
    result = (loss,)
    if return_grad:
        result += (grads,)
    if return_lse:
        result += (_token_terms(p, lse),)
    return result if len(result) > 1 else loss


linear_cross_entropy.__doc__ = """Softmax cross-entropy of a linear layer's logits, without them:
    ``cross_entropy(h @ linear_weight.T + bias, target, ...)`` computed a chunk
    of rows at a time, so that the N × V logits and their gradient never exist.

    Each chunk's logits are one GEMM (``np.matmul`` into a reused buffer);
    crossent's row kernel writes the loss and, in place, the logits' gradient
    g; then ``dh = g @ W`` and ``dW += gᵀ h`` (NumPy's BLAS) and
    ``dbias += Σ_rows g``.  Rows whose target is ``ignore_index`` take no GEMM.

    Parameters
    ----------
    h : array_like, shape (..., d)
        Hidden states; float32/float64 (float16 → float32, integers →
        float64; with ``linear_weight`` of another dtype, the wider one).
    linear_weight : array_like, shape (V, d)
        As ``torch.nn.Linear(d, V).weight``; a transposed view of a (d, V)
        array is read in place.
    target : array_like
        Integer class indices of shape ``h.shape[:-1]``, or soft targets
        (probabilities) of shape ``h.shape[:-1] + (V,)``.
    bias : array_like, shape (V,), optional
    weight, sample_weight, ignore_index, label_smoothing, z_loss, softcap, reduction
        As :func:`cross_entropy` (the same weighted mean, and z_loss·w·lse²
        and softcap·tanh(z/softcap) on the logits).
    return_grad : bool
        Also return ``(dh, dW, dbias)`` (``dbias`` None without ``bias``),
        the gradients of the returned loss (of the sum of the per-token
        losses for ``reduction="none"``).
    return_lse : bool
        Also return ``TokenTerms(lse, z_loss)``: each token's log-sum-exp of
        its (capped) logits (NaN for an ignored token) and its z-loss term
        ``z_loss·w·lse²`` weighted as ``reduction="none"`` weighs the loss,
        so that the per-token loss less it is the cross-entropy part.
    chunk_size : int, optional
        Rows per chunk.  Default: as many as fit in 1/16 of one N × V
        float32 matrix (the logits buffer and the chunk's rows of h and dh).
    backend, n_threads
        The row kernel's backend and threads.  The GEMMs run on the BLAS's
        own threads (OPENBLAS_NUM_THREADS, threadpoolctl).

    Returns
    -------
    loss, or ``(loss, (dh, dW, dbias))`` with ``return_grad``, with
    ``TokenTerms`` appended when ``return_lse``.

    Determinism: for a fixed ``chunk_size`` and BLAS thread count the bits
    never change from call to call, and do not depend on ``n_threads`` (the
    row kernel's bits never do, and the GEMMs run on the BLAS's own threads;
    tests/test_linear_ce.py checks both).
    The BLAS may sum in another order for another BLAS thread count or
    chunk size, which moves the results by float rounding only.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> h, W = rng.standard_normal((4, 8)), rng.standard_normal((10, 8))
    >>> loss, (dh, dW, db) = crossent.linear_cross_entropy(
    ...     h, W, np.array([1, 2, 3, -100]), return_grad=True)
    """
