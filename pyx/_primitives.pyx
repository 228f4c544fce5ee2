# cython: language_level=3
"""Test-only binding of the C numeric layer (csrc/crossent_math.h and the
SIMD variants of csrc/crossent_rows.h).

Not part of crossent's API: tests/test_math_header.py uses it to measure the
primitives' ulp error, to check that every SIMD variant gives the baseline's
bits, and to time them.  Arrays are 1-D; every function returns new arrays.
"""
import numpy as np
cimport numpy as cnp
from libc.stddef cimport ptrdiff_t
from libc.math cimport expf, exp
from libc.stdlib cimport malloc, free

cnp.import_array()

cdef extern from "crossent_math.h" nogil:
    float ce_math_exp_f32(float)
    double ce_math_exp_f64(double)
    float ce_math_log_f32(float)
    double ce_math_log_f64(double)
    float ce_math_log1p_f32(float)
    double ce_math_log1p_f64(double)
    float ce_math_exp_nonpositive_f32(float)
    double ce_math_exp_nonpositive_f64(double)
    float ce_math_exp_moderate_f32(float)
    double ce_math_exp_moderate_f64(double)
    float ce_math_log1p_unit_f32(float)
    double ce_math_log1p_unit_f64(double)
    float ce_math_log1pexp_f32(float)
    double ce_math_log1pexp_f64(double)
    float ce_math_log_sigmoid_f32(float)
    double ce_math_log_sigmoid_f64(double)
    float ce_math_sigmoid_f32(float)
    double ce_math_sigmoid_f64(double)

ctypedef void (*block32)(const float *, float *, ptrdiff_t) nogil
ctypedef void (*block64)(const double *, double *, ptrdiff_t) nogil

cdef extern from "crossent_rows_table.h" nogil:
    cdef struct ce_rows_table:
        const char *name
        double (*ce_sum_f32)(const float *, ptrdiff_t)
        double (*ce_sum_f64)(const double *, ptrdiff_t)
        double (*ce_row_max_f32)(const float *, ptrdiff_t)
        double (*ce_row_max_f64)(const double *, ptrdiff_t)
        float (*ce_row_logsumexp_f32)(const float *, ptrdiff_t)
        double (*ce_row_logsumexp_f64)(const double *, ptrdiff_t)
        float (*ce_softmax_xent_index_row_f32)(const float *, ptrdiff_t, ptrdiff_t, const double *, double, float *, double)
        double (*ce_softmax_xent_index_row_f64)(const double *, ptrdiff_t, ptrdiff_t, const double *, double, double *, double)
        float (*ce_softmax_xent_soft_row_f32)(const float *, const float *, ptrdiff_t, const double *, double, float *, double)
        double (*ce_softmax_xent_soft_row_f64)(const double *, const double *, ptrdiff_t, const double *, double, double *, double)
        float (*ce_categorical_xent_index_row_f32)(const float *, ptrdiff_t, ptrdiff_t, const double *, double, float *, double)
        double (*ce_categorical_xent_index_row_f64)(const double *, ptrdiff_t, ptrdiff_t, const double *, double, double *, double)
        float (*ce_categorical_xent_soft_row_f32)(const float *, const float *, ptrdiff_t, const double *, double, float *, double)
        double (*ce_categorical_xent_soft_row_f64)(const double *, const double *, ptrdiff_t, const double *, double, double *, double)
        float (*ce_nll_index_row_f32)(const float *, ptrdiff_t, ptrdiff_t, const double *, float *, double)
        double (*ce_nll_index_row_f64)(const double *, ptrdiff_t, ptrdiff_t, const double *, double *, double)
        block32 ce_sigmoid_f32
        block64 ce_sigmoid_f64
        block32 ce_log_sigmoid_f32
        block64 ce_log_sigmoid_f64
        void (*ce_bce_block_f32)(const float *, const float *, const float *, const float *, float *, float *, double, ptrdiff_t)
        void (*ce_bce_block_f64)(const double *, const double *, const double *, const double *, double *, double *, double, ptrdiff_t)
        void (*ce_bce_logits_block_f32)(const float *, const float *, const float *, const float *, const float *, double, float *, float *, double, ptrdiff_t)
        void (*ce_bce_logits_block_f64)(const double *, const double *, const double *, const double *, const double *, double, double *, double *, double, ptrdiff_t)
        void (*ce_mse_block_f32)(const float *, const float *, const float *, const float *, float *, float *, double, ptrdiff_t)
        void (*ce_mse_block_f64)(const double *, const double *, const double *, const double *, double *, double *, double, ptrdiff_t)
        void (*ce_focal_block_f32)(const float *, const float *, const float *, const float *, double, double, float *, float *, double, ptrdiff_t)
        void (*ce_focal_block_f64)(const double *, const double *, const double *, const double *, double, double, double *, double *, double, ptrdiff_t)
        void (*ce_kl_div_block_f32)(const float *, const float *, const float *, const float *, int, float *, float *, double, ptrdiff_t)
        void (*ce_kl_div_block_f64)(const double *, const double *, const double *, const double *, int, double *, double *, double, ptrdiff_t)
        void (*ce_softmax_xent_index_rows_f32)(const float **, ptrdiff_t, ptrdiff_t, ptrdiff_t, const ptrdiff_t *, const double *, double, float **, const double *, float *)
        void (*ce_softmax_xent_index_rows_f64)(const double **, ptrdiff_t, ptrdiff_t, ptrdiff_t, const ptrdiff_t *, const double *, double, double **, const double *, double *)
        void (*ce_nll_index_rows_f32)(const float **, ptrdiff_t, ptrdiff_t, const ptrdiff_t *, const double *, float **, const double *, float *)
        void (*ce_nll_index_rows_f64)(const double **, ptrdiff_t, ptrdiff_t, const ptrdiff_t *, const double *, double **, const double *, double *)
        void (*ce_softmax_rows_f32)(const float **, ptrdiff_t, ptrdiff_t, float **)
        void (*ce_softmax_rows_f64)(const double **, ptrdiff_t, ptrdiff_t, double **)
        void (*ce_log_softmax_rows_f32)(const float **, ptrdiff_t, ptrdiff_t, float **)
        void (*ce_log_softmax_rows_f64)(const double **, ptrdiff_t, ptrdiff_t, double **)
        void (*ce_logsumexp_rows_f32)(const float **, ptrdiff_t, ptrdiff_t, float *)
        void (*ce_logsumexp_rows_f64)(const double **, ptrdiff_t, ptrdiff_t, double *)
        block32 ce_softmax_row_f32
        block64 ce_softmax_row_f64
        block32 ce_log_softmax_row_f32
        block64 ce_log_softmax_row_f64
        block32 ce_exp_block_f32
        block64 ce_exp_block_f64
        block32 ce_exp_moderate_block_f32
        block64 ce_exp_moderate_block_f64
        block32 ce_log_block_f32
        block64 ce_log_block_f64
        block32 ce_log1p_block_f32
        block64 ce_log1p_block_f64
        block32 ce_log1pexp_block_f32
        block64 ce_log1pexp_block_f64
    const ce_rows_table *ce_simd_table(const char *variant)
    int ce_simd_select(const char *variant)
    const char *ce_simd_name()
    const char *ce_simd_available()


# ---- SIMD variants ---------------------------------------------------------

def available():
    """The variants this CPU can run, best last."""
    return ce_simd_available().decode().split(",")


def active():
    """The variant the exported row functions use now."""
    return ce_simd_name().decode()


def select(variant):
    """Select a variant for the exported functions (None: the best); False if unavailable."""
    if variant is None:
        return ce_simd_select(NULL) == 0
    return ce_simd_select(variant.encode()) == 0


cdef const ce_rows_table *_table(variant) except NULL:
    cdef const ce_rows_table *table = ce_simd_table(variant.encode())
    if table == NULL:
        raise ValueError(f"SIMD variant {variant!r} is not available here ({available()})")
    return table


# ---- array helpers -----------------------------------------------------------

cdef bint _is32(cnp.ndarray a):
    return a.dtype == np.float32


def _real(a, dtype=None):
    """A C-contiguous float32/float64 copy-or-view of a (dtype: that of a)."""
    a = np.asarray(a)
    if dtype is None:
        dtype = a.dtype
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"expected float32 or float64, got {dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


cdef void *_ptr(object a):
    """Data pointer of an ndarray, NULL for None."""
    if a is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray>a)


def _opt(a, dtype):
    return None if a is None else _real(a, dtype)


# ---- scalar primitives (crossent_math.h, compiled with the module's flags) --

_SCALAR_NAMES = ("exp", "log", "log1p", "log1pexp", "log_sigmoid", "sigmoid", "log1p_unit",
                 "exp_nonpositive", "exp_moderate", "libm_exp")


def scalar(name, x):
    """Apply the crossent_math.h primitive `name` elementwise (one call per element)."""
    cdef cnp.ndarray xa = _real(x)
    cdef cnp.ndarray out = np.empty_like(xa)
    cdef ptrdiff_t i, n = xa.size
    cdef const float *x32 = <const float *>cnp.PyArray_DATA(xa)
    cdef float *o32 = <float *>cnp.PyArray_DATA(out)
    cdef const double *x64 = <const double *>cnp.PyArray_DATA(xa)
    cdef double *o64 = <double *>cnp.PyArray_DATA(out)
    cdef int which = _SCALAR_NAMES.index(name)
    cdef bint f32 = _is32(xa)
    with nogil:
        for i in range(n):
            if f32:
                if which == 0: o32[i] = ce_math_exp_f32(x32[i])
                elif which == 1: o32[i] = ce_math_log_f32(x32[i])
                elif which == 2: o32[i] = ce_math_log1p_f32(x32[i])
                elif which == 3: o32[i] = ce_math_log1pexp_f32(x32[i])
                elif which == 4: o32[i] = ce_math_log_sigmoid_f32(x32[i])
                elif which == 5: o32[i] = ce_math_sigmoid_f32(x32[i])
                elif which == 6: o32[i] = ce_math_log1p_unit_f32(x32[i])
                elif which == 7: o32[i] = ce_math_exp_nonpositive_f32(x32[i])
                elif which == 8: o32[i] = ce_math_exp_moderate_f32(x32[i])
                else: o32[i] = expf(x32[i])
            else:
                if which == 0: o64[i] = ce_math_exp_f64(x64[i])
                elif which == 1: o64[i] = ce_math_log_f64(x64[i])
                elif which == 2: o64[i] = ce_math_log1p_f64(x64[i])
                elif which == 3: o64[i] = ce_math_log1pexp_f64(x64[i])
                elif which == 4: o64[i] = ce_math_log_sigmoid_f64(x64[i])
                elif which == 5: o64[i] = ce_math_sigmoid_f64(x64[i])
                elif which == 6: o64[i] = ce_math_log1p_unit_f64(x64[i])
                elif which == 7: o64[i] = ce_math_exp_nonpositive_f64(x64[i])
                elif which == 8: o64[i] = ce_math_exp_moderate_f64(x64[i])
                else: o64[i] = exp(x64[i])
    return out


# ---- blocks and rows through a variant's table ------------------------------

_BLOCK_NAMES = ("exp", "log", "log1p", "log1pexp", "sigmoid", "log_sigmoid", "softmax_row",
                "log_softmax_row", "exp_moderate")


def block(variant, name, x, out=None):
    """out = f(x) with the variant's block/row function `name` (out may be x)."""
    cdef const ce_rows_table *t = _table(variant)
    cdef cnp.ndarray xa = _real(x)
    cdef cnp.ndarray oa = np.empty_like(xa) if out is None else out
    if oa.dtype != xa.dtype or oa.size != xa.size or not oa.flags.c_contiguous:
        raise ValueError("out must be C-contiguous with x's dtype and size")
    cdef block32 f32
    cdef block64 f64
    cdef int which = _BLOCK_NAMES.index(name)
    if which == 0: f32, f64 = t.ce_exp_block_f32, t.ce_exp_block_f64
    elif which == 1: f32, f64 = t.ce_log_block_f32, t.ce_log_block_f64
    elif which == 2: f32, f64 = t.ce_log1p_block_f32, t.ce_log1p_block_f64
    elif which == 3: f32, f64 = t.ce_log1pexp_block_f32, t.ce_log1pexp_block_f64
    elif which == 4: f32, f64 = t.ce_sigmoid_f32, t.ce_sigmoid_f64
    elif which == 5: f32, f64 = t.ce_log_sigmoid_f32, t.ce_log_sigmoid_f64
    elif which == 6: f32, f64 = t.ce_softmax_row_f32, t.ce_softmax_row_f64
    elif which == 7: f32, f64 = t.ce_log_softmax_row_f32, t.ce_log_softmax_row_f64
    else: f32, f64 = t.ce_exp_moderate_block_f32, t.ce_exp_moderate_block_f64
    cdef void *xp = cnp.PyArray_DATA(xa)
    cdef void *op = cnp.PyArray_DATA(oa)
    cdef ptrdiff_t n = xa.size
    cdef bint is32 = _is32(xa)
    with nogil:
        if is32:
            f32(<const float *>xp, <float *>op, n)
        else:
            f64(<const double *>xp, <double *>op, n)
    return oa


def reduce(variant, name, x):
    """'sum', 'row_max' or 'row_logsumexp' of x with the variant's function."""
    cdef const ce_rows_table *t = _table(variant)
    cdef cnp.ndarray xa = _real(x)
    cdef void *xp = cnp.PyArray_DATA(xa)
    cdef ptrdiff_t n = xa.size
    if _is32(xa):
        if name == "sum": return t.ce_sum_f32(<const float *>xp, n)
        if name == "row_max": return t.ce_row_max_f32(<const float *>xp, n)
        if name == "row_logsumexp": return np.float32(t.ce_row_logsumexp_f32(<const float *>xp, n))
    else:
        if name == "sum": return t.ce_sum_f64(<const double *>xp, n)
        if name == "row_max": return t.ce_row_max_f64(<const double *>xp, n)
        if name == "row_logsumexp": return np.float64(t.ce_row_logsumexp_f64(<const double *>xp, n))
    raise ValueError(f"unknown reduction {name!r}")


def binary_block(variant, name, x, y, w=None, pw=None, s=None, label_smoothing=0.0,
                 grad_scale=1.0, with_grad=True):
    """(loss, grad or None) of 'bce', 'bce_logits' or 'mse' on one block."""
    cdef const ce_rows_table *t = _table(variant)
    cdef cnp.ndarray xa = _real(x)
    dtype = xa.dtype
    ya, wa, pwa, sa = _real(y, dtype), _opt(w, dtype), _opt(pw, dtype), _opt(s, dtype)
    cdef cnp.ndarray loss = np.empty_like(xa)
    grad = np.empty_like(xa) if with_grad else None
    cdef void *X = _ptr(xa)
    cdef void *Y = _ptr(ya)
    cdef void *W = _ptr(wa)
    cdef void *PW = _ptr(pwa)
    cdef void *S = _ptr(sa)
    cdef void *L = _ptr(loss)
    cdef void *G = _ptr(grad)
    cdef ptrdiff_t n = xa.size
    cdef double ls = label_smoothing, gs = grad_scale
    if name == "bce":
        if _is32(xa): t.ce_bce_block_f32(<float *>X, <float *>Y, <float *>W, <float *>S, <float *>L, <float *>G, gs, n)
        else: t.ce_bce_block_f64(<double *>X, <double *>Y, <double *>W, <double *>S, <double *>L, <double *>G, gs, n)
    elif name == "bce_logits":
        if _is32(xa): t.ce_bce_logits_block_f32(<float *>X, <float *>Y, <float *>W, <float *>PW, <float *>S, ls, <float *>L, <float *>G, gs, n)
        else: t.ce_bce_logits_block_f64(<double *>X, <double *>Y, <double *>W, <double *>PW, <double *>S, ls, <double *>L, <double *>G, gs, n)
    elif name == "mse":
        if _is32(xa): t.ce_mse_block_f32(<float *>X, <float *>Y, <float *>W, <float *>S, <float *>L, <float *>G, gs, n)
        else: t.ce_mse_block_f64(<double *>X, <double *>Y, <double *>W, <double *>S, <double *>L, <double *>G, gs, n)
    else:
        raise ValueError(f"unknown binary loss {name!r}")
    return loss, grad


def focal_block(variant, z, y, w=None, s=None, alpha=0.25, gamma=2.0, grad_scale=1.0,
                with_grad=True):
    """(loss, grad or None) of the variant's ce_focal_block on one block."""
    cdef const ce_rows_table *t = _table(variant)
    cdef cnp.ndarray za = _real(z)
    dtype = za.dtype
    ya, wa, sa = _real(y, dtype), _opt(w, dtype), _opt(s, dtype)
    cdef cnp.ndarray loss = np.empty_like(za)
    grad = np.empty_like(za) if with_grad else None
    cdef void *Z = _ptr(za)
    cdef void *Y = _ptr(ya)
    cdef void *W = _ptr(wa)
    cdef void *S = _ptr(sa)
    cdef void *L = _ptr(loss)
    cdef void *G = _ptr(grad)
    cdef ptrdiff_t n = za.size
    cdef double a = alpha, g = gamma, gs = grad_scale
    if _is32(za): t.ce_focal_block_f32(<float *>Z, <float *>Y, <float *>W, <float *>S, a, g, <float *>L, <float *>G, gs, n)
    else: t.ce_focal_block_f64(<double *>Z, <double *>Y, <double *>W, <double *>S, a, g, <double *>L, <double *>G, gs, n)
    return loss, grad


def kl_div_block(variant, x, target, w=None, s=None, log_target=False, grad_scale=1.0,
                 with_grad=True):
    """(loss, grad or None) of the variant's ce_kl_div_block on one block."""
    cdef const ce_rows_table *t = _table(variant)
    cdef cnp.ndarray xa = _real(x)
    dtype = xa.dtype
    ta, wa, sa = _real(target, dtype), _opt(w, dtype), _opt(s, dtype)
    cdef cnp.ndarray loss = np.empty_like(xa)
    grad = np.empty_like(xa) if with_grad else None
    cdef void *X = _ptr(xa)
    cdef void *T = _ptr(ta)
    cdef void *W = _ptr(wa)
    cdef void *S = _ptr(sa)
    cdef void *L = _ptr(loss)
    cdef void *G = _ptr(grad)
    cdef ptrdiff_t n = xa.size
    cdef int lt = 1 if log_target else 0
    cdef double gs = grad_scale
    if _is32(xa): t.ce_kl_div_block_f32(<float *>X, <float *>T, <float *>W, <float *>S, lt, <float *>L, <float *>G, gs, n)
    else: t.ce_kl_div_block_f64(<double *>X, <double *>T, <double *>W, <double *>S, lt, <double *>L, <double *>G, gs, n)
    return loss, grad


def multiclass_row(variant, name, x, target=None, y=None, class_weight=None,
                   label_smoothing=0.0, grad_scale=1.0, with_grad=True):
    """(loss, grad or None) of one row: 'softmax_xent_index', 'softmax_xent_soft',
    'categorical_xent_index', 'categorical_xent_soft' or 'nll_index'."""
    cdef const ce_rows_table *t = _table(variant)
    cdef cnp.ndarray xa = _real(x)
    ya = _opt(y, xa.dtype)
    cwa = _opt(class_weight, np.float64)
    grad = np.empty_like(xa) if with_grad else None
    cdef void *X = _ptr(xa)
    cdef void *Y = _ptr(ya)
    cdef const double *CW = <const double *>_ptr(cwa)
    cdef void *G = _ptr(grad)
    cdef ptrdiff_t n = xa.size
    cdef ptrdiff_t tgt = -1 if target is None else target
    cdef double ls = label_smoothing, gs = grad_scale
    if name.endswith("_index") and not 0 <= tgt < n:
        raise ValueError(f"target {tgt} outside [0, {n})")
    cdef bint is32 = _is32(xa)
    if name == "softmax_xent_index":
        loss = t.ce_softmax_xent_index_row_f32(<float *>X, n, tgt, CW, ls, <float *>G, gs) if is32 else \
               t.ce_softmax_xent_index_row_f64(<double *>X, n, tgt, CW, ls, <double *>G, gs)
    elif name == "softmax_xent_soft":
        loss = t.ce_softmax_xent_soft_row_f32(<float *>X, <float *>Y, n, CW, ls, <float *>G, gs) if is32 else \
               t.ce_softmax_xent_soft_row_f64(<double *>X, <double *>Y, n, CW, ls, <double *>G, gs)
    elif name == "categorical_xent_index":
        loss = t.ce_categorical_xent_index_row_f32(<float *>X, n, tgt, CW, ls, <float *>G, gs) if is32 else \
               t.ce_categorical_xent_index_row_f64(<double *>X, n, tgt, CW, ls, <double *>G, gs)
    elif name == "categorical_xent_soft":
        loss = t.ce_categorical_xent_soft_row_f32(<float *>X, <float *>Y, n, CW, ls, <float *>G, gs) if is32 else \
               t.ce_categorical_xent_soft_row_f64(<double *>X, <double *>Y, n, CW, ls, <double *>G, gs)
    elif name == "nll_index":
        loss = t.ce_nll_index_row_f32(<float *>X, n, tgt, CW, <float *>G, gs) if is32 else \
               t.ce_nll_index_row_f64(<double *>X, n, tgt, CW, <double *>G, gs)
    else:
        raise ValueError(f"unknown row loss {name!r}")
    return xa.dtype.type(loss), grad


cdef class _RowPointers:
    """Pointers to rows of a C-contiguous 2-D array, as the batched row
    functions take them: all its rows, or rows `which`; p is NULL for None."""
    cdef void **p

    def __cinit__(self, cnp.ndarray a, which=None):
        self.p = NULL
        if a is None:
            return
        which = range(a.shape[0]) if which is None else which
        self.p = <void **>malloc(max(len(which), 1) * sizeof(void *))
        if self.p == NULL:
            raise MemoryError()
        cdef char *base = <char *>_ptr(a)
        cdef Py_ssize_t row_bytes = a.shape[1] * cnp.PyArray_ITEMSIZE(a), k
        for k, row in enumerate(which):
            self.p[k] = base + <Py_ssize_t>row * row_bytes

    def __dealloc__(self):
        free(self.p)


def _index_rows_operands(x, target, grad_scale):
    """(x, targets, grad scales) of a batched index-loss call, checked."""
    cdef cnp.ndarray xa = _real(x)
    if xa.ndim != 2:
        raise ValueError("x must be 2-D")
    rows, n = xa.shape[0], xa.shape[1]
    ta = np.ascontiguousarray(target, dtype=np.intp)
    if ta.ndim != 1 or ta.shape[0] != rows or np.any((ta < 0) | (ta >= n)):
        raise ValueError(f"target must hold {rows} classes in [0, {n})")
    gs = np.ascontiguousarray(np.broadcast_to(1.0 if grad_scale is None else grad_scale,
                                              (rows,)), dtype=np.float64)
    return xa, ta, gs


def softmax_xent_index_rows(variant, x, target, class_weight=None, label_smoothing=0.0,
                            grad_scale=None, with_grad=True):
    """(losses, grad or None) of the rows of a 2-D x through the batched row
    function; grad_scale: one per row (default 1)."""
    cdef const ce_rows_table *t = _table(variant)
    xa, ta, gs = _index_rows_operands(x, target, grad_scale)
    cdef Py_ssize_t rows = xa.shape[0], n = xa.shape[1]
    cwa = _opt(class_weight, np.float64)
    losses = np.empty(rows, xa.dtype)
    grad = np.empty_like(xa) if with_grad else None
    cdef _RowPointers x_rows = _RowPointers(xa), g_rows = _RowPointers(grad)
    cdef const double *CW = <const double *>_ptr(cwa)
    cdef ptrdiff_t *T = <ptrdiff_t *>_ptr(ta)
    cdef const double *GS = <const double *>_ptr(gs)
    cdef void *L = _ptr(losses)
    if _is32(xa):
        t.ce_softmax_xent_index_rows_f32(<const float **>x_rows.p, rows, 0, n, T, CW,
                                         label_smoothing, <float **>g_rows.p, GS, <float *>L)
    else:
        t.ce_softmax_xent_index_rows_f64(<const double **>x_rows.p, rows, 0, n, T, CW,
                                         label_smoothing, <double **>g_rows.p, GS, <double *>L)
    return losses, grad


def activation_rows(variant, name, x, in_place=False):
    """The rows of a 2-D x through the batched row function 'softmax_rows',
    'log_softmax_rows' (-> 2-D, written over a copy of x when in_place) or
    'logsumexp_rows' (-> 1-D, one per row)."""
    cdef const ce_rows_table *t = _table(variant)
    cdef cnp.ndarray xa = _real(x)
    if xa.ndim != 2:
        raise ValueError("x must be 2-D")
    if name not in ("softmax_rows", "log_softmax_rows", "logsumexp_rows"):
        raise ValueError(f"unknown batched row function {name!r}")
    cdef Py_ssize_t rows = xa.shape[0], n = xa.shape[1]
    if in_place:
        xa = xa.copy()
    out = xa if in_place else np.empty_like(xa)
    values = np.empty(rows, xa.dtype)
    cdef _RowPointers x_rows = _RowPointers(xa), o_rows = _RowPointers(out)
    cdef void *V = _ptr(values)
    cdef bint is32 = _is32(xa)
    if name == "softmax_rows":
        if is32:
            t.ce_softmax_rows_f32(<const float **>x_rows.p, rows, n, <float **>o_rows.p)
        else:
            t.ce_softmax_rows_f64(<const double **>x_rows.p, rows, n, <double **>o_rows.p)
    elif name == "log_softmax_rows":
        if is32:
            t.ce_log_softmax_rows_f32(<const float **>x_rows.p, rows, n, <float **>o_rows.p)
        else:
            t.ce_log_softmax_rows_f64(<const double **>x_rows.p, rows, n, <double **>o_rows.p)
    elif is32:
        t.ce_logsumexp_rows_f32(<const float **>x_rows.p, rows, n, <float *>V)
    else:
        t.ce_logsumexp_rows_f64(<const double **>x_rows.p, rows, n, <double *>V)
    return values if name == "logsumexp_rows" else out


def nll_index_rows(variant, x, target, class_weight=None, grad_scale=None, with_grad=True,
                   grad_gaps=()):
    """(losses, grad or None) of the rows of a 2-D x through ce_nll_index_rows;
    the gradient rows follow each other in memory except after the rows in
    grad_gaps (a gap of one row there, never to be written)."""
    cdef const ce_rows_table *t = _table(variant)
    xa, ta, gs = _index_rows_operands(x, target, grad_scale)
    cdef Py_ssize_t rows = xa.shape[0], n = xa.shape[1]
    cwa = _opt(class_weight, np.float64)
    losses = np.empty(rows, xa.dtype)
    used = [k + sum(g < k for g in grad_gaps) for k in range(rows)]
    buffer = np.full((rows + len(grad_gaps), n), np.nan, xa.dtype) if with_grad else None
    cdef _RowPointers x_rows = _RowPointers(xa), g_rows = _RowPointers(buffer, used)
    cdef const double *CW = <const double *>_ptr(cwa)
    cdef ptrdiff_t *T = <ptrdiff_t *>_ptr(ta)
    cdef const double *GS = <const double *>_ptr(gs)
    cdef void *L = _ptr(losses)
    if _is32(xa):
        t.ce_nll_index_rows_f32(<const float **>x_rows.p, rows, n, T, CW, <float **>g_rows.p,
                                GS, <float *>L)
    else:
        t.ce_nll_index_rows_f64(<const double **>x_rows.p, rows, n, T, CW, <double **>g_rows.p,
                                GS, <double *>L)
    if buffer is None:
        return losses, None
    if not np.isnan(np.delete(buffer, used, axis=0)).all():
        raise AssertionError("a gap row of the gradient buffer was written")
    return losses, buffer[used]
