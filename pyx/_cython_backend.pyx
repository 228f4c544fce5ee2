# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython backend ("cython"): nogil, OpenMP loops over the row and block
functions of csrc/crossent_rows.h.

The loops own iteration, staging and threading; the math lives in the C
header.  Every kernel of docs/kernels.md follows the same plan:

* The def function of a kernel reads the canonical operands' data pointers
  and byte strides into a plain C struct (a context) and picks the float32 or
  float64 specialisation of the fused loops.
* The work is cut into fixed blocks (CE_BLOCK_ELEMS flat elements, or
  CE_BLOCK_ROWS rows).  A block function stages what is not contiguous into
  per-thread buffers (a few rows at a time for row operands), calls the C function on contiguous data, scatters the
  outputs back and returns the block's float64 loss sum.
* _run_blocks runs the blocks, in parallel when the work pays for the
  threads, and adds the block sums to acc one by one in block order: the bits
  never depend on n_threads, and a strided operand gives the bits of its
  contiguous copy (the C function sees the same values either way).
"""
from cython.parallel cimport prange, parallel
from cython cimport floating
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from libc.stdint cimport int32_t, int64_t
from libc.math cimport NAN, INFINITY
cimport numpy as cnp

from crossent_rows cimport *

cnp.import_array()

from crossent._outputs import RECYCLE_MIN_BYTES, empty as _recycled_empty

cdef Py_ssize_t _RECYCLE_MIN_BYTES = RECYCLE_MIN_BYTES

cdef extern from "numpy/arrayobject.h":
    # (commented out in numpy's own __init__.pxd)
    object PyArray_Scalar(void *data, cnp.dtype descr, object base)

cdef extern from *:
    """
    #if CE_HAVE_OPENMP && defined(_OPENMP)
    #include <omp.h>
    static int ce_cy_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int ce_cy_max_threads(void) { return 1; }
    #endif
    """
    int ce_cy_max_threads() nogil
    int CE_HAVE_OPENMP
    const char *CE_BUILD_FLAGS

NAME = "cython"

# Below this many elements of work, a second thread costs more (wake-up,
# false sharing of the block-sum array) than it saves.
cdef Py_ssize_t PARALLEL_MIN_WORK = 32768


def info():
    return {
        "simd": ce_simd_name().decode(),
        "simd_available": ce_simd_available().decode(),
        "openmp": bool(CE_HAVE_OPENMP),
        "build_flags": CE_BUILD_FLAGS.decode(),
        "max_threads": ce_cy_max_threads(),
    }


def set_simd(variant):
    """Use SIMD variant ``variant`` ("baseline", "avx2", "avx512"; "" = best)."""
    if ce_simd_select(str(variant).encode()) != 0:
        raise ValueError(f"SIMD variant {variant!r} is not available on this CPU "
                         f"(available: {ce_simd_available().decode()})")


# ----------------------------------------------------------------- operands

# A strided operand, type-erased: data pointer and BYTE strides, so that every
# offset is computed in Py_ssize_t (no int overflow past 2**31 elements).
# data == NULL marks an absent operand.
cdef struct Strided:
    char *data
    Py_ssize_t shape[3]
    Py_ssize_t strides[3]


cdef inline bint _is_float32(object arr) except -1:
    return cnp.PyArray_TYPE(<cnp.ndarray?>arr) == cnp.NPY_FLOAT32


# Operands are read through the NumPy C API rather than typed memoryviews:
# acquiring a memoryview costs ~0.3-0.5 us per operand (buffer export, format
# parsing, a Python object), which would dominate a small call; reading
# data/shape/strides off the ndarray costs a few ns, and the checks below
# keep the same guarantees (ndim, dtype, native byte order, alignment,
# writability).
cdef int _bind(Strided *op, object arr, int ndim, int typenum, bint writable) except -1:
    """Describe ``arr`` (None: absent) in ``op``."""
    cdef cnp.ndarray a
    cdef int d
    memset(op, 0, sizeof(Strided))
    if arr is None:
        return 0
    a = <cnp.ndarray?>arr
    if (cnp.PyArray_NDIM(a) != ndim or cnp.PyArray_TYPE(a) != typenum
            or not (cnp.PyArray_ISBEHAVED(a) if writable else cnp.PyArray_ISBEHAVED_RO(a))):
        raise ValueError(f"kernel operand: expected a {'writable ' if writable else ''}aligned "
                         f"native {ndim}-D array of type number {typenum}, got {arr!r:.80}")
    op.data = cnp.PyArray_BYTES(a)
    for d in range(ndim):
        op.shape[d] = cnp.PyArray_DIMS(a)[d]
        op.strides[d] = cnp.PyArray_STRIDES(a)[d]
    return 0


cdef inline int _bind_float(Strided *op, object arr, int ndim, bint f32,
                            bint writable) except -1:
    return _bind(op, arr, ndim, cnp.NPY_FLOAT32 if f32 else cnp.NPY_FLOAT64, writable)


cdef int _bind_target(Strided *op, object arr) except -1:
    """Describe an int32 or int64 (A, B) target array; returns its itemsize."""
    if cnp.PyArray_TYPE(<cnp.ndarray?>arr) == cnp.NPY_INT32:
        _bind(op, arr, 2, cnp.NPY_INT32, False)
        return 4
    _bind(op, arr, 2, cnp.NPY_INT64, False)
    return 8


cdef const double *_class_weight_pointer(object class_weight) except? NULL:
    """class_weight is None or a C-contiguous float64 vector."""
    cdef Strided op
    _bind(&op, class_weight, 1, cnp.NPY_FLOAT64, False)
    if op.data != NULL and op.shape[0] > 1 and op.strides[0] != sizeof(double):
        raise ValueError("kernel operand: class_weight must be C-contiguous")
    return <const double *>op.data


cdef inline char *_at2(const Strided *op, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    return op.data + i * op.strides[0] + j * op.strides[1]


cdef inline Py_ssize_t _target_at(const Strided *op, int itemsize, Py_ssize_t a,
                                  Py_ssize_t b) noexcept nogil:
    if itemsize == 4:
        return (<const int32_t *>_at2(op, a, b))[0]
    return (<const int64_t *>_at2(op, a, b))[0]


cdef inline Py_ssize_t _min(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


# ------------------------------------------------------------- block runner

# Processes block `block` of ctx; scratch is this thread's staging memory
# (NULL when none is needed); stores the block's loss sum in *block_sum.
ctypedef void (*BlockFn)(const void *ctx, Py_ssize_t block, void *scratch,
                         double *block_sum) noexcept nogil


cdef int _threads_for(Py_ssize_t work, Py_ssize_t n_blocks, int n_threads) noexcept nogil:
    if work < PARALLEL_MIN_WORK or n_blocks < 2 or n_threads < 2:
        return 1
    return <int>_min(n_threads, n_blocks)


cdef int _run_blocks(BlockFn block_fn, const void *ctx, Py_ssize_t n_blocks,
                     size_t scratch_bytes, int threads, double *acc) noexcept nogil:
    """Run every block; add the block sums to *acc in block order.
    Returns -1 when a staging buffer cannot be allocated, else 0."""
    cdef Py_ssize_t block, parallel_block
    cdef double block_sum
    cdef double *block_sums
    cdef void *scratch = NULL
    cdef int failed = 0
    if threads <= 1:
        if scratch_bytes:
            scratch = malloc(scratch_bytes)
            if scratch == NULL:
                return -1
        for block in range(n_blocks):
            block_fn(ctx, block, scratch, &block_sum)
            acc[0] += block_sum
        free(scratch)
        return 0
    block_sums = <double *>malloc(n_blocks * sizeof(double))
    if block_sums == NULL:
        return -1
    with parallel(num_threads=threads):
        scratch = malloc(scratch_bytes) if scratch_bytes else NULL
        # A few blocks at a time (dynamic, see ce_blocks_per_grab), as the C
        # loops hand them out: on a busy machine a thread whose core is
        # taken then does less of the work instead of holding up the call;
        # the sums stay in block order.
        for parallel_block in prange(n_blocks, schedule='dynamic',
                                     chunksize=ce_blocks_per_grab(n_blocks, threads)):
            if scratch_bytes and scratch == NULL:
                failed += 1
            else:
                block_fn(ctx, parallel_block, scratch, &block_sums[parallel_block])
        free(scratch)
    if failed == 0:
        for block in range(n_blocks):
            acc[0] += block_sums[block]
    free(block_sums)
    return -1 if failed else 0


cdef double _run(BlockFn block_fn, const void *ctx, Py_ssize_t n_blocks, size_t scratch_bytes,
                 Py_ssize_t work, int n_threads, double acc) except? -1:
    """acc plus the ordered block sums; the GIL is dropped only when the work
    is large enough for that to be worth its cost."""
    cdef int threads = _threads_for(work, n_blocks, n_threads)
    cdef int status
    if work < PARALLEL_MIN_WORK:
        status = _run_blocks(block_fn, ctx, n_blocks, scratch_bytes, threads, &acc)
    else:
        with nogil:
            status = _run_blocks(block_fn, ctx, n_blocks, scratch_bytes, threads, &acc)
    if status != 0:
        raise MemoryError("crossent: cannot allocate a staging buffer")
    return acc


# ------------------------------------------------------- elementwise kernels

cdef enum ElementwiseKind:
    EW_SIGMOID
    EW_LOG_SIGMOID
    EW_BCE
    EW_BCE_LOGITS
    EW_MSE

# Operand slots of an elementwise kernel, inputs first.
cdef enum:
    OP_X            # x, p or z
    OP_Y            # y or t
    OP_WEIGHT
    OP_POS_WEIGHT
    OP_SAMPLE_WEIGHT
    N_INPUTS
    OP_LOSS = N_INPUTS   # per-element losses (a buffer even when not requested)
    OP_GRAD          # gradient, or the activation's output
    N_OPERANDS

cdef struct ElementwiseCtx:
    int kind
    Py_ssize_t cols, total
    Strided op[N_OPERANDS]
    bint needed[N_OPERANDS]    # the C function gets a pointer here
    Py_ssize_t slot[N_OPERANDS]  # staging slot, -1: contiguous, used in place
    Py_ssize_t block_len         # elements per staging slot
    double label_smoothing, grad_scale


cdef void _gather_flat(const Strided *op, Py_ssize_t cols, Py_ssize_t start,
                       Py_ssize_t n, floating *dst) noexcept nogil:
    """dst[i] = op[flat index start + i] for i < n (C order of (R, cols))."""
    cdef Py_ssize_t r = start // cols
    cdef Py_ssize_t k = start - r * cols
    cdef Py_ssize_t i = 0, j, take
    cdef char *row
    while i < n:
        row = op.data + r * op.strides[0] + k * op.strides[1]
        take = _min(cols - k, n - i)
        if op.strides[1] == sizeof(floating):
            memcpy(dst + i, row, take * sizeof(floating))
        else:
            for j in range(take):
                dst[i + j] = (<floating *>(row + j * op.strides[1]))[0]
        i += take
        k = 0
        r += 1


cdef void _scatter_flat(const Strided *op, Py_ssize_t cols, Py_ssize_t start,
                        Py_ssize_t n, const floating *src) noexcept nogil:
    """op[flat index start + i] = src[i] for i < n."""
    cdef Py_ssize_t r = start // cols
    cdef Py_ssize_t k = start - r * cols
    cdef Py_ssize_t i = 0, j, take
    cdef char *row
    while i < n:
        row = op.data + r * op.strides[0] + k * op.strides[1]
        take = _min(cols - k, n - i)
        if op.strides[1] == sizeof(floating):
            memcpy(row, src + i, take * sizeof(floating))
        else:
            for j in range(take):
                (<floating *>(row + j * op.strides[1]))[0] = src[i + j]
        i += take
        k = 0
        r += 1


cdef void _elementwise_call(const ElementwiseCtx *c, floating **p, Py_ssize_t n) noexcept nogil:
    """The one C block function of kind c.kind on contiguous pointers p."""
    if c.kind == EW_SIGMOID:
        if floating is float:
            ce_sigmoid_f32(p[OP_X], p[OP_GRAD], n)
        else:
            ce_sigmoid_f64(p[OP_X], p[OP_GRAD], n)
    elif c.kind == EW_LOG_SIGMOID:
        if floating is float:
            ce_log_sigmoid_f32(p[OP_X], p[OP_GRAD], n)
        else:
            ce_log_sigmoid_f64(p[OP_X], p[OP_GRAD], n)
    elif c.kind == EW_BCE:
        if floating is float:
            ce_bce_block_f32(p[OP_X], p[OP_Y], p[OP_WEIGHT], p[OP_SAMPLE_WEIGHT],
                             p[OP_LOSS], p[OP_GRAD], c.grad_scale, n)
        else:
            ce_bce_block_f64(p[OP_X], p[OP_Y], p[OP_WEIGHT], p[OP_SAMPLE_WEIGHT],
                             p[OP_LOSS], p[OP_GRAD], c.grad_scale, n)
    elif c.kind == EW_BCE_LOGITS:
        if floating is float:
            ce_bce_logits_block_f32(p[OP_X], p[OP_Y], p[OP_WEIGHT], p[OP_POS_WEIGHT],
                                    p[OP_SAMPLE_WEIGHT], c.label_smoothing, p[OP_LOSS],
                                    p[OP_GRAD], c.grad_scale, n)
        else:
            ce_bce_logits_block_f64(p[OP_X], p[OP_Y], p[OP_WEIGHT], p[OP_POS_WEIGHT],
                                    p[OP_SAMPLE_WEIGHT], c.label_smoothing, p[OP_LOSS],
                                    p[OP_GRAD], c.grad_scale, n)
    elif c.kind == EW_MSE:
        if floating is float:
            ce_mse_block_f32(p[OP_X], p[OP_Y], p[OP_WEIGHT], p[OP_SAMPLE_WEIGHT],
                             p[OP_LOSS], p[OP_GRAD], c.grad_scale, n)
        else:
            ce_mse_block_f64(p[OP_X], p[OP_Y], p[OP_WEIGHT], p[OP_SAMPLE_WEIGHT],
                             p[OP_LOSS], p[OP_GRAD], c.grad_scale, n)


cdef void _elementwise_block(const ElementwiseCtx *c, Py_ssize_t block, floating *scratch,
                             double *block_sum) noexcept nogil:
    cdef Py_ssize_t start = block * CE_BLOCK_ELEMS
    cdef Py_ssize_t n = _min(CE_BLOCK_ELEMS, c.total - start)
    cdef floating *p[N_OPERANDS]
    cdef int i
    for i in range(N_OPERANDS):
        if not c.needed[i]:
            p[i] = NULL
        elif c.slot[i] < 0:
            p[i] = <floating *>c.op[i].data + start
        else:
            p[i] = scratch + c.slot[i] * c.block_len
            if i < N_INPUTS:
                _gather_flat(&c.op[i], c.cols, start, n, p[i])
    _elementwise_call(c, p, n)
    for i in range(N_INPUTS, N_OPERANDS):
        if c.needed[i] and c.slot[i] >= 0 and c.op[i].data != NULL:
            _scatter_flat(&c.op[i], c.cols, start, n, p[i])
    block_sum[0] = 0.0
    if c.needed[OP_LOSS]:
        if floating is float:
            block_sum[0] = ce_sum_f32(p[OP_LOSS], n)
        else:
            block_sum[0] = ce_sum_f64(p[OP_LOSS], n)


cdef void _elementwise_block_f32(const void *ctx, Py_ssize_t block, void *scratch,
                                 double *block_sum) noexcept nogil:
    _elementwise_block(<const ElementwiseCtx *>ctx, block, <float *>scratch, block_sum)


cdef void _elementwise_block_f64(const void *ctx, Py_ssize_t block, void *scratch,
                                 double *block_sum) noexcept nogil:
    _elementwise_block(<const ElementwiseCtx *>ctx, block, <double *>scratch, block_sum)


cdef inline bint _flat_contiguous(const Strided *op, Py_ssize_t rows, Py_ssize_t cols,
                                  Py_ssize_t itemsize) noexcept nogil:
    """True when element r*cols + k sits at data + (r*cols + k)*itemsize."""
    return ((cols <= 1 or op.strides[1] == itemsize)
            and (rows <= 1 or op.strides[0] == cols * itemsize))


cdef object _run_elementwise(int kind, x2, y2, weight2, pos_weight2, sample_weight2,
                             losses_out2, out2, double label_smoothing, double grad_scale,
                             int n_threads, double acc):
    cdef ElementwiseCtx c
    cdef bint f32 = _is_float32(x2)
    c.kind = kind
    c.label_smoothing = label_smoothing
    c.grad_scale = grad_scale
    _bind_float(&c.op[OP_X], x2, 2, f32, False)
    _bind_float(&c.op[OP_Y], y2, 2, f32, False)
    _bind_float(&c.op[OP_WEIGHT], weight2, 2, f32, False)
    _bind_float(&c.op[OP_POS_WEIGHT], pos_weight2, 2, f32, False)
    _bind_float(&c.op[OP_SAMPLE_WEIGHT], sample_weight2, 2, f32, False)
    _bind_float(&c.op[OP_LOSS], losses_out2, 2, f32, True)
    _bind_float(&c.op[OP_GRAD], out2, 2, f32, True)
    return _run_bound_elementwise(&c, f32, n_threads, acc)


cdef double _run_bound_elementwise(ElementwiseCtx *c, bint f32, int n_threads,
                                   double acc) except? -1:
    """Run the elementwise kernel whose kind and operands c holds."""
    cdef Py_ssize_t itemsize = 4 if f32 else 8
    cdef Py_ssize_t rows, n_blocks, n_slots = 0
    cdef int i
    rows = c.op[OP_X].shape[0]
    c.cols = c.op[OP_X].shape[1]
    c.total = rows * c.cols
    c.block_len = _min(CE_BLOCK_ELEMS, c.total)
    for i in range(N_OPERANDS):
        c.needed[i] = c.op[i].data != NULL or (i == OP_LOSS and c.kind >= EW_BCE)
        c.slot[i] = -1
        if c.needed[i] and (c.op[i].data == NULL
                            or not _flat_contiguous(&c.op[i], rows, c.cols, itemsize)):
            c.slot[i] = n_slots
            n_slots += 1
    n_blocks = (c.total + CE_BLOCK_ELEMS - 1) // CE_BLOCK_ELEMS
    return _run(_elementwise_block_f32 if f32 else _elementwise_block_f64, c, n_blocks,
                n_slots * c.block_len * itemsize, c.total, n_threads, acc)


def sigmoid(x2, out2, int n_threads):
    _run_elementwise(EW_SIGMOID, x2, None, None, None, None, None, out2, 0.0, 1.0, n_threads, 0.0)


def log_sigmoid(x2, out2, int n_threads):
    _run_elementwise(EW_LOG_SIGMOID, x2, None, None, None, None, None, out2, 0.0, 1.0,
                     n_threads, 0.0)


def bce(p2, y2, weight2, sample_weight2, losses_out2, grad_out2, double grad_scale,
        int n_threads, double acc):
    return _run_elementwise(EW_BCE, p2, y2, weight2, None, sample_weight2, losses_out2,
                            grad_out2, 0.0, grad_scale, n_threads, acc)


def bce_with_logits(z2, y2, weight2, pos_weight2, sample_weight2, double label_smoothing,
                    losses_out2, grad_out2, double grad_scale, int n_threads, double acc):
    return _run_elementwise(EW_BCE_LOGITS, z2, y2, weight2, pos_weight2, sample_weight2,
                            losses_out2, grad_out2, label_smoothing, grad_scale, n_threads, acc)


def mse(x2, t2, weight2, sample_weight2, losses_out2, grad_out2, double grad_scale,
        int n_threads, double acc):
    return _run_elementwise(EW_MSE, x2, t2, weight2, None, sample_weight2, losses_out2,
                            grad_out2, 0.0, grad_scale, n_threads, acc)


# ---------------------------------------------------------------- row kernels

cdef enum RowKind:
    ROW_SOFTMAX
    ROW_LOG_SOFTMAX
    ROW_LOGSUMEXP
    ROW_SOFTMAX_XENT_INDEX
    ROW_SOFTMAX_XENT_SOFT
    ROW_CATEGORICAL_XENT_INDEX
    ROW_CATEGORICAL_XENT_SOFT
    ROW_NLL_INDEX

cdef struct RowCtx:
    int kind
    Py_ssize_t n_rows, inner, n_classes   # rows are (a, b), a*inner + b
    Strided x, y, out3                    # (A, B, C); out3: gradient or activation
    Strided target, sample_weight, out2   # (A, B); out2: losses or logsumexp
    int target_itemsize
    const double *class_weight
    Py_ssize_t ignore_index
    double label_smoothing, grad_scale
    # Operands whose class stride is not one element are staged tile_rows
    # rows at a time into a (tile_rows, C) tile at these offsets (elements)
    # of scratch; -1: the rows are used in place.
    Py_ssize_t tile_rows
    Py_ssize_t stage_x, stage_y, stage_out


cdef inline bint _is_index_kind(int kind) noexcept nogil:
    return (kind == ROW_SOFTMAX_XENT_INDEX or kind == ROW_CATEGORICAL_XENT_INDEX
            or kind == ROW_NLL_INDEX)


cdef inline bint _has_loss(int kind) noexcept nogil:
    return kind >= ROW_SOFTMAX_XENT_INDEX


# A staging tile holds at most this many elements.  Gathering several rows
# at once reads a Fortran-ordered operand a cache line (and a page) at a time
# instead of one element per page; the tile stays within L2.
cdef Py_ssize_t TILE_ELEMS = 16384


cdef void _gather_tile(const Strided *op, const Py_ssize_t *row_a, const Py_ssize_t *row_b,
                       Py_ssize_t n_rows, Py_ssize_t n_classes, floating *tile) noexcept nogil:
    """tile[i*C + j] = op[row_a[i], row_b[i], j]."""
    cdef char *rows[CE_BLOCK_ROWS]
    cdef Py_ssize_t i, j
    for i in range(n_rows):
        rows[i] = _at2(op, row_a[i], row_b[i])
    for j in range(n_classes):
        for i in range(n_rows):
            tile[i * n_classes + j] = (<floating *>(rows[i] + j * op.strides[2]))[0]


cdef void _scatter_tile(const Strided *op, const Py_ssize_t *row_a, const Py_ssize_t *row_b,
                        Py_ssize_t n_rows, Py_ssize_t n_classes, const floating *tile) noexcept nogil:
    """op[row_a[i], row_b[i], j] = tile[i*C + j]."""
    cdef char *rows[CE_BLOCK_ROWS]
    cdef Py_ssize_t i, j
    for i in range(n_rows):
        rows[i] = _at2(op, row_a[i], row_b[i])
    for j in range(n_classes):
        for i in range(n_rows):
            (<floating *>(rows[i] + j * op.strides[2]))[0] = tile[i * n_classes + j]


cdef inline floating *_row_pointer(const Strided *op, Py_ssize_t a, Py_ssize_t b,
                                   Py_ssize_t stage, Py_ssize_t tile_row, Py_ssize_t n_classes,
                                   floating *scratch) noexcept nogil:
    """Row (a, b) of op as a contiguous pointer: in place, or its tile row."""
    if stage < 0:
        return <floating *>_at2(op, a, b)
    return scratch + stage + tile_row * n_classes


cdef floating _row_loss(const RowCtx *c, const floating *x, const floating *y, Py_ssize_t t,
                        floating *grad, double scale) noexcept nogil:
    """The C row function of kind c.kind: class-weighted loss of one row."""
    cdef Py_ssize_t n = c.n_classes
    if c.kind == ROW_SOFTMAX_XENT_INDEX:
        if floating is float:
            return ce_softmax_xent_index_row_f32(x, n, t, c.class_weight, c.label_smoothing, grad, scale)
        else:
            return ce_softmax_xent_index_row_f64(x, n, t, c.class_weight, c.label_smoothing, grad, scale)
    if c.kind == ROW_SOFTMAX_XENT_SOFT:
        if floating is float:
            return ce_softmax_xent_soft_row_f32(x, y, n, c.class_weight, c.label_smoothing, grad, scale)
        else:
            return ce_softmax_xent_soft_row_f64(x, y, n, c.class_weight, c.label_smoothing, grad, scale)
    if c.kind == ROW_CATEGORICAL_XENT_INDEX:
        if floating is float:
            return ce_categorical_xent_index_row_f32(x, n, t, c.class_weight, c.label_smoothing, grad, scale)
        else:
            return ce_categorical_xent_index_row_f64(x, n, t, c.class_weight, c.label_smoothing, grad, scale)
    if c.kind == ROW_CATEGORICAL_XENT_SOFT:
        if floating is float:
            return ce_categorical_xent_soft_row_f32(x, y, n, c.class_weight, c.label_smoothing, grad, scale)
        else:
            return ce_categorical_xent_soft_row_f64(x, y, n, c.class_weight, c.label_smoothing, grad, scale)
    if floating is float:  # ROW_NLL_INDEX
        return ce_nll_index_row_f32(x, n, t, c.class_weight, grad, scale)
    else:
        return ce_nll_index_row_f64(x, n, t, c.class_weight, grad, scale)


cdef void _row_activation(const RowCtx *c, const floating *x, floating *out, Py_ssize_t a,
                          Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t n = c.n_classes
    if c.kind == ROW_SOFTMAX:
        if floating is float:
            ce_softmax_row_f32(x, out, n)
        else:
            ce_softmax_row_f64(x, out, n)
    elif c.kind == ROW_LOG_SOFTMAX:
        if floating is float:
            ce_log_softmax_row_f32(x, out, n)
        else:
            ce_log_softmax_row_f64(x, out, n)
    else:  # ROW_LOGSUMEXP
        if floating is float:
            (<float *>_at2(&c.out2, a, b))[0] = ce_row_logsumexp_f32(x, n)
        else:
            (<double *>_at2(&c.out2, a, b))[0] = ce_row_logsumexp_f64(x, n)


cdef floating _one_row(const RowCtx *c, Py_ssize_t a, Py_ssize_t b, Py_ssize_t tile_row,
                       floating *scratch) noexcept nogil:
    """Process row (a, b), row tile_row of the current tile; return its
    weighted loss (0 for activations)."""
    cdef Py_ssize_t n = c.n_classes, t = 0, j
    cdef const floating *x = _row_pointer(&c.x, a, b, c.stage_x, tile_row, n, scratch)
    cdef const floating *y = NULL
    cdef floating *out = NULL
    cdef floating s = 1, loss = 0
    if c.y.data != NULL:
        y = _row_pointer(&c.y, a, b, c.stage_y, tile_row, n, scratch)
    if c.out3.data != NULL:
        out = _row_pointer(&c.out3, a, b, c.stage_out, tile_row, n, scratch)
    if not _has_loss(c.kind):
        _row_activation(c, x, out, a, b)
    else:
        if c.sample_weight.data != NULL:
            s = (<floating *>_at2(&c.sample_weight, a, b))[0]
        if _is_index_kind(c.kind):
            t = _target_at(&c.target, c.target_itemsize, a, b)
        if _is_index_kind(c.kind) and t == c.ignore_index:
            if out != NULL:
                for j in range(n):
                    out[j] = 0
        else:
            loss = _row_loss(c, x, y, t, out, c.grad_scale * <double>s) * s
        if c.out2.data != NULL:
            (<floating *>_at2(&c.out2, a, b))[0] = loss
    return loss


cdef void _xent_index_tile(const RowCtx *c, const Py_ssize_t *row_a, const Py_ssize_t *row_b,
                           Py_ssize_t n_rows, floating *scratch, floating *losses) noexcept nogil:
    """_one_row over a tile of softmax_xent_index rows, with one call of the
    batched row function for the rows not ignored: it computes short and
    medium rows several per vector, with the bits of the row function."""
    cdef Py_ssize_t n = c.n_classes, i, j, kept = 0, t
    cdef const floating *x_rows[CE_BLOCK_ROWS]
    cdef floating *out_rows[CE_BLOCK_ROWS]
    cdef ptrdiff_t targets[CE_BLOCK_ROWS]
    cdef double scales[CE_BLOCK_ROWS]
    cdef floating weights[CE_BLOCK_ROWS]
    cdef floating row_losses[CE_BLOCK_ROWS]
    cdef Py_ssize_t tile_rows[CE_BLOCK_ROWS]
    cdef floating *out = NULL
    cdef floating s
    for i in range(n_rows):
        if c.out3.data != NULL:
            out = _row_pointer(&c.out3, row_a[i], row_b[i], c.stage_out, i, n, scratch)
        t = _target_at(&c.target, c.target_itemsize, row_a[i], row_b[i])
        losses[i] = 0
        if t == c.ignore_index:
            if out != NULL:
                for j in range(n):
                    out[j] = 0
            continue
        s = 1
        if c.sample_weight.data != NULL:
            s = (<floating *>_at2(&c.sample_weight, row_a[i], row_b[i]))[0]
        x_rows[kept] = _row_pointer(&c.x, row_a[i], row_b[i], c.stage_x, i, n, scratch)
        out_rows[kept] = out
        targets[kept] = t
        scales[kept] = c.grad_scale * <double>s
        weights[kept] = s
        tile_rows[kept] = i
        kept += 1
    if floating is float:
        ce_softmax_xent_index_rows_f32(x_rows, kept, n, targets, c.class_weight,
                                       c.label_smoothing,
                                       out_rows if c.out3.data != NULL else NULL, scales,
                                       row_losses)
    else:
        ce_softmax_xent_index_rows_f64(x_rows, kept, n, targets, c.class_weight,
                                       c.label_smoothing,
                                       out_rows if c.out3.data != NULL else NULL, scales,
                                       row_losses)
    for j in range(kept):
        losses[tile_rows[j]] = row_losses[j] * weights[j]
    if c.out2.data != NULL:
        for i in range(n_rows):
            (<floating *>_at2(&c.out2, row_a[i], row_b[i]))[0] = losses[i]


cdef inline bint _plain_index_rows(const RowCtx *c) noexcept nogil:
    """Rows with class-index targets that _plain_index_block can take: one
    leading index, rows used in place, no sample weights, no per-row losses."""
    return (_is_index_kind(c.kind) and c.x.shape[0] == 1 and c.stage_x < 0
            and c.stage_out < 0 and c.sample_weight.data == NULL and c.out2.data == NULL)


cdef void _plain_index_block(const RowCtx *c, Py_ssize_t first, Py_ssize_t n_rows,
                             floating *losses) noexcept nogil:
    """_one_row (softmax_xent_index: _xent_index_tile) for the rows of
    _plain_index_rows, their operands found by plain strides: the same row
    functions (softmax_xent_index: one call of the batched one) on the same
    operands, a weight of 1 leaving a row's loss and gradient scale as they
    are."""
    cdef Py_ssize_t n = c.n_classes, i, j, kept = 0, t
    cdef const char *x = c.x.data + first * c.x.strides[1]
    cdef char *out = c.out3.data + first * c.out3.strides[1] if c.out3.data != NULL else NULL
    cdef const char *target = c.target.data + first * c.target.strides[1]
    cdef const floating *x_rows[CE_BLOCK_ROWS]
    cdef floating *out_rows[CE_BLOCK_ROWS]
    cdef ptrdiff_t targets[CE_BLOCK_ROWS]
    cdef double scales[CE_BLOCK_ROWS]
    cdef floating row_losses[CE_BLOCK_ROWS]
    cdef floating *kept_losses
    cdef Py_ssize_t kept_rows[CE_BLOCK_ROWS]
    for i in range(n_rows):
        if c.target_itemsize == 4:
            t = (<const int32_t *>(target + i * c.target.strides[1]))[0]
        else:
            t = (<const int64_t *>(target + i * c.target.strides[1]))[0]
        if t == c.ignore_index:
            losses[i] = 0
            if out != NULL:
                memset(out + i * c.out3.strides[1], 0, n * sizeof(floating))
            continue
        x_rows[kept] = <const floating *>(x + i * c.x.strides[1])
        out_rows[kept] = <floating *>(out + i * c.out3.strides[1]) if out != NULL else NULL
        targets[kept] = t
        scales[kept] = c.grad_scale
        kept_rows[kept] = i
        kept += 1
    if c.kind == ROW_CATEGORICAL_XENT_INDEX:
        for j in range(kept):
            losses[kept_rows[j]] = _row_loss(c, x_rows[j], NULL, targets[j], out_rows[j],
                                             c.grad_scale)
        return
    # No row ignored (the usual case): the batched function writes losses itself.
    kept_losses = losses if kept == n_rows else row_losses
    if c.kind == ROW_NLL_INDEX:
        if floating is float:
            ce_nll_index_rows_f32(x_rows, kept, n, targets, c.class_weight,
                                  out_rows if out != NULL else NULL, scales, kept_losses)
        else:
            ce_nll_index_rows_f64(x_rows, kept, n, targets, c.class_weight,
                                  out_rows if out != NULL else NULL, scales, kept_losses)
    elif floating is float:
        ce_softmax_xent_index_rows_f32(x_rows, kept, n, targets, c.class_weight,
                                       c.label_smoothing, out_rows if out != NULL else NULL,
                                       scales, kept_losses)
    else:
        ce_softmax_xent_index_rows_f64(x_rows, kept, n, targets, c.class_weight,
                                       c.label_smoothing, out_rows if out != NULL else NULL,
                                       scales, kept_losses)
    if kept < n_rows:
        for j in range(kept):
            losses[kept_rows[j]] = row_losses[j]


cdef inline bint _plain_activation_rows(const RowCtx *c) noexcept nogil:
    """softmax, log_softmax or logsumexp rows that _plain_activation_block
    can take: one leading index, rows used in place."""
    return (not _has_loss(c.kind) and c.x.shape[0] == 1 and c.stage_x < 0
            and c.stage_out < 0)


cdef void _plain_activation_block(const RowCtx *c, Py_ssize_t first,
                                  Py_ssize_t n_rows, floating zero) noexcept nogil:
    """_one_row over the rows of _plain_activation_rows: one call of the
    batched row function, the same bits.  (zero only selects the dtype.)"""
    cdef Py_ssize_t n = c.n_classes, i
    cdef const floating *x_rows[CE_BLOCK_ROWS]
    cdef floating *out_rows[CE_BLOCK_ROWS]
    cdef floating values[CE_BLOCK_ROWS]
    for i in range(n_rows):
        x_rows[i] = <const floating *>(c.x.data + (first + i) * c.x.strides[1])
    if c.kind == ROW_LOGSUMEXP:
        if floating is float:
            ce_logsumexp_rows_f32(x_rows, n_rows, n, values)
        else:
            ce_logsumexp_rows_f64(x_rows, n_rows, n, values)
        for i in range(n_rows):
            (<floating *>(c.out2.data + (first + i) * c.out2.strides[1]))[0] = values[i]
        return
    for i in range(n_rows):
        out_rows[i] = <floating *>(c.out3.data + (first + i) * c.out3.strides[1])
    if c.kind == ROW_SOFTMAX:
        if floating is float:
            ce_softmax_rows_f32(x_rows, n_rows, n, out_rows)
        else:
            ce_softmax_rows_f64(x_rows, n_rows, n, out_rows)
    elif floating is float:
        ce_log_softmax_rows_f32(x_rows, n_rows, n, out_rows)
    else:
        ce_log_softmax_rows_f64(x_rows, n_rows, n, out_rows)


cdef void _staged_rows(const RowCtx *c, Py_ssize_t first, Py_ssize_t n, floating *scratch,
                       floating *losses) noexcept nogil:
    """Rows first .. first+n-1 of any kind, a tile at a time: operands whose
    rows are strided are staged through scratch."""
    cdef Py_ssize_t a = first // c.inner
    cdef Py_ssize_t b = first - a * c.inner
    cdef Py_ssize_t i, tile_first, tile_len, C = c.n_classes
    cdef Py_ssize_t row_a[CE_BLOCK_ROWS]
    cdef Py_ssize_t row_b[CE_BLOCK_ROWS]
    for i in range(n):
        row_a[i] = a
        row_b[i] = b
        b += 1
        if b == c.inner:
            b = 0
            a += 1
    tile_first = 0
    while tile_first < n:
        tile_len = _min(c.tile_rows, n - tile_first)
        if c.stage_x >= 0:
            _gather_tile(&c.x, row_a + tile_first, row_b + tile_first, tile_len, C,
                         scratch + c.stage_x)
        if c.stage_y >= 0:
            _gather_tile(&c.y, row_a + tile_first, row_b + tile_first, tile_len, C,
                         scratch + c.stage_y)
        if c.kind == ROW_SOFTMAX_XENT_INDEX:
            _xent_index_tile(c, row_a + tile_first, row_b + tile_first, tile_len, scratch,
                             losses + tile_first)
        else:
            for i in range(tile_first, tile_first + tile_len):
                losses[i] = _one_row(c, row_a[i], row_b[i], i - tile_first, scratch)
        if c.stage_out >= 0:
            _scatter_tile(&c.out3, row_a + tile_first, row_b + tile_first, tile_len, C,
                          scratch + c.stage_out)
        tile_first += tile_len


cdef void _row_block(const RowCtx *c, Py_ssize_t block, floating *scratch,
                     double *block_sum) noexcept nogil:
    cdef Py_ssize_t first = block * CE_BLOCK_ROWS
    cdef Py_ssize_t n = _min(CE_BLOCK_ROWS, c.n_rows - first)
    cdef floating losses[CE_BLOCK_ROWS]
    if _plain_index_rows(c):
        _plain_index_block(c, first, n, losses)
    elif _plain_activation_rows(c):
        _plain_activation_block(c, first, n, <floating>0)
    else:
        _staged_rows(c, first, n, scratch, losses)
    block_sum[0] = 0.0
    if _has_loss(c.kind):
        if floating is float:
            block_sum[0] = ce_sum_f32(losses, n)
        else:
            block_sum[0] = ce_sum_f64(losses, n)


cdef void _row_block_f32(const void *ctx, Py_ssize_t block, void *scratch,
                         double *block_sum) noexcept nogil:
    _row_block(<const RowCtx *>ctx, block, <float *>scratch, block_sum)


cdef void _row_block_f64(const void *ctx, Py_ssize_t block, void *scratch,
                         double *block_sum) noexcept nogil:
    _row_block(<const RowCtx *>ctx, block, <double *>scratch, block_sum)


cdef Py_ssize_t _stage_offset(const Strided *op, Py_ssize_t itemsize, Py_ssize_t tile_elems,
                              Py_ssize_t *scratch_elems) noexcept nogil:
    """Where op's tile lives in scratch, or -1 when its rows are used in place."""
    cdef Py_ssize_t offset
    if op.data == NULL or op.shape[2] <= 1 or op.strides[2] == itemsize:
        return -1
    offset = scratch_elems[0]
    scratch_elems[0] += tile_elems
    return offset


cdef object _run_rows(int kind, x3, y3, target2, class_weight, sample_weight2,
                      Py_ssize_t ignore_index, double label_smoothing, out2, out3,
                      double grad_scale, int n_threads, double acc):
    cdef RowCtx c
    cdef bint f32 = _is_float32(x3)
    memset(&c, 0, sizeof(RowCtx))
    c.kind = kind
    _bind_float(&c.x, x3, 3, f32, False)
    _bind_float(&c.y, y3, 3, f32, False)
    _bind_float(&c.out3, out3, 3, f32, True)
    _bind_float(&c.sample_weight, sample_weight2, 2, f32, False)
    _bind_float(&c.out2, out2, 2, f32, True)
    if target2 is not None:
        c.target_itemsize = _bind_target(&c.target, target2)
    c.class_weight = _class_weight_pointer(class_weight)
    c.ignore_index = ignore_index
    c.label_smoothing = label_smoothing
    c.grad_scale = grad_scale
    return _run_bound_rows(&c, f32, n_threads, acc)


cdef double _run_bound_rows(RowCtx *c, bint f32, int n_threads, double acc) except? -1:
    """Run the row kernel whose operands c holds: its shape, tiles and staging
    follow from the operands."""
    cdef Py_ssize_t itemsize = 4 if f32 else 8
    cdef Py_ssize_t n_blocks, scratch_elems = 0
    c.inner = c.x.shape[1]
    c.n_rows = c.x.shape[0] * c.inner
    c.n_classes = c.x.shape[2]
    c.tile_rows = max(1, min(CE_BLOCK_ROWS, TILE_ELEMS // max(c.n_classes, 1)))
    c.stage_x = _stage_offset(&c.x, itemsize, c.tile_rows * c.n_classes, &scratch_elems)
    c.stage_y = _stage_offset(&c.y, itemsize, c.tile_rows * c.n_classes, &scratch_elems)
    c.stage_out = _stage_offset(&c.out3, itemsize, c.tile_rows * c.n_classes, &scratch_elems)
    n_blocks = (c.n_rows + CE_BLOCK_ROWS - 1) // CE_BLOCK_ROWS
    if (scratch_elems == 0 and n_blocks < n_threads and c.n_rows > 1
            and c.n_rows * c.n_classes >= PARALLEL_MIN_WORK):
        if f32:
            return _run_rows_shared(c, <float>0, n_threads, acc)
        return _run_rows_shared(c, <double>0, n_threads, acc)
    return _run(_row_block_f32 if f32 else _row_block_f64, c, n_blocks,
                scratch_elems * itemsize, c.n_rows * c.n_classes, n_threads, acc)


cdef double _run_rows_shared(const RowCtx *c, floating zero, int n_threads,
                             double acc) except? -1:
    """Fewer blocks than threads (a few wide rows, e.g. 32 x 128 000 is one
    block): the threads share the rows of each block instead of whole blocks.
    A row's result does not depend on the thread computing it, and each
    block's losses are summed afterwards in row order as _row_block sums them,
    so the bits are those of the block path, for any n_threads.  (zero only
    selects the dtype of the fused specialisation.)"""
    cdef Py_ssize_t i, first, n_rows = c.n_rows, run, n_runs
    cdef int threads = <int>_min(n_threads, n_rows)
    cdef Py_ssize_t run_rows = _min(CE_BLOCK_ROWS, n_rows // (4 * threads))
    cdef floating *losses = <floating *>malloc(n_rows * sizeof(floating))
    cdef floating *no_scratch = NULL
    if losses == NULL:
        raise MemoryError("crossent: cannot allocate the row losses")
    with nogil:
        if run_rows < 1:
            run_rows = 1
        if _plain_index_rows(c) or _plain_activation_rows(c):
            # Runs of consecutive rows, each one call of the batched row
            # function, which fetches a run's next row during the exps of
            # the current one (a 128 000-entry row read cold costs as much
            # as its exps); a few runs per thread, handed out dynamically.
            n_runs = (n_rows + run_rows - 1) // run_rows
            for run in prange(n_runs, schedule='dynamic', chunksize=1, num_threads=threads):
                if _plain_index_rows(c):
                    _plain_index_block(c, run * run_rows,
                                       _min(run_rows, n_rows - run * run_rows),
                                       losses + run * run_rows)
                else:
                    _plain_activation_block(c, run * run_rows,
                                            _min(run_rows, n_rows - run * run_rows), zero)
        else:
            for i in prange(n_rows, schedule='dynamic', chunksize=1, num_threads=threads):
                losses[i] = _one_row(c, i // c.inner, i % c.inner, 0, no_scratch)
        first = 0
        while _has_loss(c.kind) and first < n_rows:
            if floating is float:
                acc += ce_sum_f32(losses + first, _min(CE_BLOCK_ROWS, n_rows - first))
            else:
                acc += ce_sum_f64(losses + first, _min(CE_BLOCK_ROWS, n_rows - first))
            first += CE_BLOCK_ROWS
    free(losses)
    return acc


cdef void _bind_with_leading_one(Strided *op, cnp.ndarray a) noexcept:
    """Describe a behaved array with one more leading axis of length 1: (n, C)
    logits as the (1, n, C) of the row kernels, (n,) labels as (1, n)."""
    cdef int d
    memset(op, 0, sizeof(Strided))
    op.data = cnp.PyArray_BYTES(a)
    op.shape[0] = 1
    for d in range(cnp.PyArray_NDIM(a)):
        op.shape[d + 1] = cnp.PyArray_DIMS(a)[d]
        op.strides[d + 1] = cnp.PyArray_STRIDES(a)[d]


cdef cnp.ndarray _new_output(int ndim, cnp.npy_intp *dims, int typenum):
    """A new float32/float64 result: crossent._outputs.empty (a recycled
    buffer) from its size on, else PyArray_EMPTY."""
    cdef Py_ssize_t nbytes = 4 if typenum == cnp.NPY_FLOAT32 else 8
    cdef int d
    for d in range(ndim):
        nbytes *= dims[d]
    if nbytes < _RECYCLE_MIN_BYTES:
        return cnp.PyArray_EMPTY(ndim, dims, typenum, 0)
    return _recycled_empty(tuple([dims[d] for d in range(ndim)]),
                           cnp.PyArray_DescrFromType(typenum))


cdef inline bint _plain_array(cnp.ndarray a, int ndim) noexcept:
    return (cnp.PyArray_NDIM(a) == ndim and cnp.PyArray_IS_C_CONTIGUOUS(a)
            and cnp.PyArray_ISBEHAVED_RO(a))


def fast_softmax_xent_index(z, t, Py_ssize_t ignore_index, double label_smoothing, bint mean,
                            bint return_grad, int n_threads):
    """The facade's plain ``cross_entropy(z, t)`` in one compiled call: 2-D
    C-contiguous float32/float64 logits, 1-D C-contiguous int32/int64 labels
    in range, no weights, the last axis; returns the loss as a NumPy scalar
    (with the gradient when return_grad), the bits of the general path (the
    same kernel, block order and mean).  None for any other call, which the
    general path computes or rejects with its error message."""
    return _fast_index_loss(ROW_SOFTMAX_XENT_INDEX, z, t, ignore_index, label_smoothing, mean,
                            return_grad, n_threads)


def fast_nll_index(z, t, Py_ssize_t ignore_index, bint mean, bint return_grad, int n_threads):
    """fast_softmax_xent_index for the facade's plain ``nll_loss(x, t)``."""
    return _fast_index_loss(ROW_NLL_INDEX, z, t, ignore_index, 0.0, mean, return_grad,
                            n_threads)


cdef object _fast_index_loss(int kind, z, t, Py_ssize_t ignore_index, double label_smoothing,
                             bint mean, bint return_grad, int n_threads):
    cdef cnp.ndarray za = <cnp.ndarray?>z, ta = <cnp.ndarray?>t, grad = None
    cdef int typenum = cnp.PyArray_TYPE(za), label_type = cnp.PyArray_TYPE(ta)
    cdef RowCtx c
    cdef Py_ssize_t n, kept
    cdef double total, denominator = 1.0
    if (not _plain_array(za, 2) or not _plain_array(ta, 1)
            or (typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64)
            or (label_type != cnp.NPY_INT32 and label_type != cnp.NPY_INT64)
            or not 0.0 <= label_smoothing <= 1.0):
        return None
    n = cnp.PyArray_DIMS(za)[0]
    if n == 0 or cnp.PyArray_DIMS(za)[1] == 0 or cnp.PyArray_DIMS(ta)[0] != n:
        return None
    memset(&c, 0, sizeof(RowCtx))
    c.kind = kind
    _bind_with_leading_one(&c.x, za)
    _bind_with_leading_one(&c.target, ta)
    c.target_itemsize = 4 if label_type == cnp.NPY_INT32 else 8
    if _first_bad_row(&c.target, c.target_itemsize, c.x.shape[2], ignore_index, &kept) >= 0:
        return None
    if mean:
        # index_weight_sum without weights: a count, exact in float64.
        denominator = <double>kept
    if return_grad:
        grad = _new_output(2, cnp.PyArray_DIMS(za), typenum)
        _bind_with_leading_one(&c.out3, grad)
    c.ignore_index = ignore_index
    c.label_smoothing = label_smoothing
    c.grad_scale = 1.0 / denominator if denominator != 0 else 0.0
    total = _run_bound_rows(&c, typenum == cnp.NPY_FLOAT32, n_threads, 0.0)
    if mean:
        total = _mean(total, denominator)
    loss = _loss_scalar(total, typenum)
    return (loss, grad) if return_grad else loss


cdef object _loss_scalar(double total, int typenum):
    """A loss total as the NumPy scalar of the data's dtype."""
    cdef float total32 = <float>total
    if typenum == cnp.NPY_FLOAT32:
        return PyArray_Scalar(&total32, cnp.PyArray_DescrFromType(typenum), None)
    return PyArray_Scalar(&total, cnp.PyArray_DescrFromType(typenum), None)


cdef void _bind_rows(Strided *op, cnp.ndarray a, Py_ssize_t rows, Py_ssize_t cols) noexcept:
    """Describe the C-contiguous a as (1, rows, cols), or (1, rows) when cols
    is 0."""
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(a)
    memset(op, 0, sizeof(Strided))
    op.data = cnp.PyArray_BYTES(a)
    op.shape[0] = 1
    op.shape[1] = rows
    op.strides[1] = (cols if cols else 1) * itemsize
    if cols:
        op.shape[2] = cols
        op.strides[2] = itemsize


cdef object _scalar_if_0d(cnp.ndarray a):
    """As the facade returns a new result (not PyArray_Return, which steals
    the reference Cython also releases)."""
    return a[()] if cnp.PyArray_NDIM(a) == 0 else a


def fast_activation(str name, z, int n_threads):
    """The facade's plain ``name(z)`` (sigmoid, log_sigmoid, softmax,
    log_softmax or logsumexp; the last axis) in one compiled call: a
    C-contiguous float32/float64 array of any shape, a new result.  The
    kernels run on the views the general path folds the arrays to, (1, size)
    or (1, rows, classes), so the bits are the same.  None for any other
    call, which the general path computes or rejects."""
    cdef cnp.ndarray za = <cnp.ndarray?>z, result
    cdef int typenum = cnp.PyArray_TYPE(za), ndim = cnp.PyArray_NDIM(za)
    cdef bint f32 = typenum == cnp.NPY_FLOAT32, drops_axis = name == "logsumexp"
    cdef Py_ssize_t size = cnp.PyArray_SIZE(za), classes
    cdef ElementwiseCtx e
    cdef RowCtx c
    if (not (f32 or typenum == cnp.NPY_FLOAT64) or size == 0
            or not (cnp.PyArray_IS_C_CONTIGUOUS(za) and cnp.PyArray_ISBEHAVED_RO(za))):
        return None
    if name == "sigmoid" or name == "log_sigmoid":
        result = _new_output(ndim, cnp.PyArray_DIMS(za), typenum)
        memset(&e, 0, sizeof(ElementwiseCtx))
        e.kind = EW_SIGMOID if name == "sigmoid" else EW_LOG_SIGMOID
        e.grad_scale = 1.0
        _bind_rows(&e.op[OP_X], za, size, 0)
        _bind_rows(&e.op[OP_GRAD], result, size, 0)
        _run_bound_elementwise(&e, f32, n_threads, 0.0)
        return _scalar_if_0d(result)
    if ndim == 0:
        return None
    classes = cnp.PyArray_DIMS(za)[ndim - 1]
    result = _new_output(ndim - drops_axis, cnp.PyArray_DIMS(za), typenum)
    memset(&c, 0, sizeof(RowCtx))
    if name == "softmax":
        c.kind = ROW_SOFTMAX
    elif name == "log_softmax":
        c.kind = ROW_LOG_SOFTMAX
    elif drops_axis:
        c.kind = ROW_LOGSUMEXP
    else:
        raise ValueError(f"fast_activation: no activation {name!r}")
    c.grad_scale = 1.0
    _bind_rows(&c.x, za, size // classes, classes)
    if drops_axis:
        _bind_rows(&c.out2, result, size // classes, 0)
    else:
        _bind_rows(&c.out3, result, size // classes, classes)
    _run_bound_rows(&c, f32, n_threads, 0.0)
    return _scalar_if_0d(result)


def fast_bce_with_logits(z, y, double label_smoothing, bint mean, bint return_grad,
                         int n_threads):
    """The facade's plain ``binary_cross_entropy_with_logits(z, y)`` in one
    compiled call: z and y C-contiguous float32/float64 arrays of one dtype
    and shape, not empty, no weights; the loss as a NumPy scalar (with the
    gradient when return_grad).  The kernel runs on the (1, size) views the
    general path folds the arrays to, so the bits are the same.  None for
    any other call, which the general path computes or rejects."""
    cdef cnp.ndarray za = <cnp.ndarray?>z, ya = <cnp.ndarray?>y, grad = None
    cdef int typenum = cnp.PyArray_TYPE(za), ndim = cnp.PyArray_NDIM(za)
    cdef bint f32 = typenum == cnp.NPY_FLOAT32
    cdef Py_ssize_t size = cnp.PyArray_SIZE(za)
    cdef ElementwiseCtx e
    cdef double total
    if (not (f32 or typenum == cnp.NPY_FLOAT64) or cnp.PyArray_TYPE(ya) != typenum
            or size == 0 or cnp.PyArray_NDIM(ya) != ndim
            or not cnp.PyArray_CompareLists(cnp.PyArray_DIMS(za), cnp.PyArray_DIMS(ya), ndim)
            or not (cnp.PyArray_IS_C_CONTIGUOUS(za) and cnp.PyArray_ISBEHAVED_RO(za))
            or not (cnp.PyArray_IS_C_CONTIGUOUS(ya) and cnp.PyArray_ISBEHAVED_RO(ya))
            or not 0.0 <= label_smoothing <= 1.0):
        return None
    memset(&e, 0, sizeof(ElementwiseCtx))
    e.kind = EW_BCE_LOGITS
    e.label_smoothing = label_smoothing
    e.grad_scale = 1.0 / size if mean else 1.0
    _bind_rows(&e.op[OP_X], za, size, 0)
    _bind_rows(&e.op[OP_Y], ya, size, 0)
    if return_grad:
        grad = _new_output(ndim, cnp.PyArray_DIMS(za), typenum)
        _bind_rows(&e.op[OP_GRAD], grad, size, 0)
    total = _run_bound_elementwise(&e, f32, n_threads, 0.0)
    if mean:
        total = total / size
    loss = _loss_scalar(total, typenum)
    return (loss, grad) if return_grad else loss


cdef double _mean(double total, double denominator) noexcept:
    """crossent._api._mean: 0/0 is nan (as PyTorch), x/0 is +-inf."""
    if denominator != 0:
        return total / denominator
    if total == 0 or total != total:
        return NAN
    return INFINITY if total > 0 else -INFINITY


def softmax(x3, out3, int n_threads):
    _run_rows(ROW_SOFTMAX, x3, None, None, None, None, 0, 0.0, None, out3, 1.0, n_threads, 0.0)


def log_softmax(x3, out3, int n_threads):
    _run_rows(ROW_LOG_SOFTMAX, x3, None, None, None, None, 0, 0.0, None, out3, 1.0,
              n_threads, 0.0)


def logsumexp(x3, out2, int n_threads):
    _run_rows(ROW_LOGSUMEXP, x3, None, None, None, None, 0, 0.0, out2, None, 1.0, n_threads, 0.0)


def softmax_xent_index(z3, target2, class_weight, sample_weight2, Py_ssize_t ignore_index,
                       double label_smoothing, losses_out2, grad_out3, double grad_scale,
                       int n_threads, double acc):
    return _run_rows(ROW_SOFTMAX_XENT_INDEX, z3, None, target2, class_weight, sample_weight2,
                     ignore_index, label_smoothing, losses_out2, grad_out3, grad_scale,
                     n_threads, acc)


def softmax_xent_soft(z3, y3, class_weight, sample_weight2, double label_smoothing,
                      losses_out2, grad_out3, double grad_scale, int n_threads, double acc):
    return _run_rows(ROW_SOFTMAX_XENT_SOFT, z3, y3, None, class_weight, sample_weight2, 0,
                     label_smoothing, losses_out2, grad_out3, grad_scale, n_threads, acc)


def categorical_xent_index(p3, target2, class_weight, sample_weight2, Py_ssize_t ignore_index,
                           double label_smoothing, losses_out2, grad_out3, double grad_scale,
                           int n_threads, double acc):
    return _run_rows(ROW_CATEGORICAL_XENT_INDEX, p3, None, target2, class_weight,
                     sample_weight2, ignore_index, label_smoothing, losses_out2, grad_out3,
                     grad_scale, n_threads, acc)


def categorical_xent_soft(p3, y3, class_weight, sample_weight2, double label_smoothing,
                          losses_out2, grad_out3, double grad_scale, int n_threads, double acc):
    return _run_rows(ROW_CATEGORICAL_XENT_SOFT, p3, y3, None, class_weight, sample_weight2, 0,
                     label_smoothing, losses_out2, grad_out3, grad_scale, n_threads, acc)


def nll_index(x3, target2, class_weight, sample_weight2, Py_ssize_t ignore_index,
              losses_out2, grad_out3, double grad_scale, int n_threads, double acc):
    return _run_rows(ROW_NLL_INDEX, x3, None, target2, class_weight, sample_weight2,
                     ignore_index, 0.0, losses_out2, grad_out3, grad_scale, n_threads, acc)


# ------------------------------------------------------------ target helpers

cdef struct WeightSumCtx:
    Py_ssize_t n_rows, inner
    Strided target, sample_weight
    int target_itemsize, sample_weight_itemsize
    const double *class_weight
    Py_ssize_t ignore_index


cdef void _weight_sum_block(const void *ctx, Py_ssize_t block, void *scratch,
                            double *block_sum) noexcept nogil:
    """Per row (double)cw[t] * (double)s, 0 when ignored, summed per block."""
    cdef const WeightSumCtx *c = <const WeightSumCtx *>ctx
    cdef Py_ssize_t first = block * CE_BLOCK_ROWS
    cdef Py_ssize_t n = _min(CE_BLOCK_ROWS, c.n_rows - first)
    cdef Py_ssize_t a = first // c.inner
    cdef Py_ssize_t b = first - a * c.inner
    cdef Py_ssize_t i, t
    cdef double weights[CE_BLOCK_ROWS]
    cdef char *s
    if c.class_weight == NULL and c.sample_weight.data == NULL:
        # Weights of 1 and 0: the sum is the exact count of rows kept.
        block_sum[0] = <double>_kept_rows(&c.target, c.target_itemsize, a, b, n, c.inner,
                                          c.ignore_index)
        return
    for i in range(n):
        t = _target_at(&c.target, c.target_itemsize, a, b)
        weights[i] = 0.0
        if t != c.ignore_index:
            weights[i] = c.class_weight[t] if c.class_weight != NULL else 1.0
            if c.sample_weight.data != NULL:
                s = _at2(&c.sample_weight, a, b)
                weights[i] *= ((<float *>s)[0] if c.sample_weight_itemsize == 4
                               else (<double *>s)[0])
        b += 1
        if b == c.inner:
            b = 0
            a += 1
    block_sum[0] = ce_sum_f64(weights, n)


def index_weight_sum(target2, class_weight, sample_weight2, Py_ssize_t ignore_index,
                     int n_threads, double acc):
    cdef WeightSumCtx c
    cdef Py_ssize_t n_blocks
    memset(&c, 0, sizeof(WeightSumCtx))
    c.target_itemsize = _bind_target(&c.target, target2)
    if sample_weight2 is not None:
        c.sample_weight_itemsize = 4 if _is_float32(sample_weight2) else 8
        _bind_float(&c.sample_weight, sample_weight2, 2, c.sample_weight_itemsize == 4, False)
    c.class_weight = _class_weight_pointer(class_weight)
    c.ignore_index = ignore_index
    c.inner = c.target.shape[1]
    c.n_rows = c.target.shape[0] * c.inner
    n_blocks = (c.n_rows + CE_BLOCK_ROWS - 1) // CE_BLOCK_ROWS
    return _run(_weight_sum_block, &c, n_blocks, 0, c.n_rows, n_threads, acc)


def first_bad_index(target2, Py_ssize_t n_classes, Py_ssize_t ignore_index):
    cdef Strided target
    memset(&target, 0, sizeof(Strided))
    cdef int itemsize = _bind_target(&target, target2)
    cdef Py_ssize_t bad, kept
    with nogil:
        bad = _first_bad_row(&target, itemsize, n_classes, ignore_index, &kept)
    return bad


cdef Py_ssize_t _first_bad_row(const Strided *target, int itemsize, Py_ssize_t n_classes,
                               Py_ssize_t ignore_index, Py_ssize_t *kept) noexcept nogil:
    """The first row whose target is neither a class nor ignore_index, or -1;
    then *kept is the count of rows not ignored.  Contiguous runs of targets
    go to the vectorised C scan, strided ones entry by entry."""
    cdef Py_ssize_t a, b, t, bad, inner = target.shape[1]
    cdef ptrdiff_t run_kept
    cdef const char *row
    kept[0] = 0
    for a in range(target.shape[0]):
        row = _at2(target, a, 0)
        if target.strides[1] == itemsize or inner == 1:
            if itemsize == 4:
                bad = ce_scan_targets_i32(<const int32_t *>row, inner, n_classes,
                                          ignore_index, &run_kept)
            else:
                bad = ce_scan_targets_i64(<const int64_t *>row, inner, n_classes,
                                          ignore_index, &run_kept)
            if bad >= 0:
                return a * inner + bad
            kept[0] += run_kept
            continue
        for b in range(inner):
            t = _target_at(target, itemsize, a, b)
            if (t < 0 or t >= n_classes) and t != ignore_index:
                return a * inner + b
            kept[0] += t != ignore_index
    return -1


ctypedef fused index_t:
    int32_t
    int64_t


cdef Py_ssize_t _kept_in_run(const index_t *first, Py_ssize_t step, Py_ssize_t run,
                             Py_ssize_t ignore_index) noexcept nogil:
    """How many of run indices (step bytes apart) are not ignore_index."""
    cdef Py_ssize_t i, kept = 0
    if step == sizeof(index_t):
        for i in range(run):
            kept += first[i] != ignore_index
    else:
        for i in range(run):
            kept += (<const index_t *>(<const char *>first + i * step))[0] != ignore_index
    return kept


cdef Py_ssize_t _kept_rows(const Strided *target, int itemsize, Py_ssize_t a, Py_ssize_t b,
                           Py_ssize_t n, Py_ssize_t inner, Py_ssize_t ignore_index) noexcept nogil:
    """How many of the n rows from (a, b) on are not ignored."""
    cdef Py_ssize_t run, kept = 0
    cdef const char *row
    while n > 0:
        run = _min(n, inner - b)
        row = _at2(target, a, b)
        if itemsize == 4:
            kept += _kept_in_run(<const int32_t *>row, target.strides[1], run, ignore_index)
        else:
            kept += _kept_in_run(<const int64_t *>row, target.strides[1], run, ignore_index)
        n -= run
        a += 1
        b = 0
    return kept
