"""The compiled loops, called directly through the kernel interface
(docs/kernels.md) with canonical operands: every compiled backend against the
NumPy reference, bit for bit across thread counts and memory layouts, in
place, with ignored rows, and without copying strided inputs."""
import importlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from arrays import layouts, random_values
from crossent import _reference as reference

BLOCK_ELEMS = reference.BLOCK_ELEMS
BLOCK_ROWS = reference.BLOCK_ROWS
IGNORE = -100


def _import_backend(module_name):
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


COMPILED_MODULES = ["crossent._cython_backend", "crossent._c_backend"]


@pytest.fixture(params=COMPILED_MODULES, ids=["cython", "c"])
def kernels(request):
    """One compiled kernel module (skipped when it is not built)."""
    module = _import_backend(request.param)
    if module is None:
        pytest.skip(f"{request.param} is not built")
    return module


# --------------------------------------------------------------- kernel cases
#
# A case builds the positional arguments of one kernel call.  Arrays are
# inputs; Out(shape) marks an output buffer, made fresh (NaN-filled) for each
# call; Fixed(array) is passed as it is (class_weight must stay a C-contiguous
# float64 vector); THREADS is replaced by the thread count.

class Out:
    def __init__(self, shape):
        self.shape = shape


class Fixed:
    def __init__(self, value):
        self.value = value


THREADS = object()

VARIANTS = ["bare", "loss_only", "full"]


def _maybe(flag, value):
    return value if flag else None


def _elementwise_case(name, rows, cols, dtype, variant, rng):
    """bare: no weights, gradient only; loss_only: no outputs at all;
    full: every weight, label smoothing, per-element losses and gradient."""
    shape = (rows, cols)
    full = variant == "full"
    grad = Out(shape) if variant != "loss_only" else None
    losses = _maybe(full, Out(shape))
    if name in ("sigmoid", "log_sigmoid"):
        return [random_values(shape, dtype, "logits", rng), Out(shape), THREADS]
    weight = _maybe(full, random_values((1, cols), dtype, "positive", rng).repeat(rows, 0))
    sample_weight = _maybe(full, random_values(shape, dtype, "positive", rng))
    if name == "bce":
        return [random_values(shape, dtype, "probs", rng), random_values(shape, dtype, "probs", rng),
                weight, sample_weight, losses, grad, 0.25, THREADS, 0.0]
    if name == "bce_with_logits":
        pos_weight = _maybe(full, random_values(shape, dtype, "positive", rng))
        return [random_values(shape, dtype, "logits", rng), random_values(shape, dtype, "probs", rng),
                weight, pos_weight, sample_weight, 0.1 if full else 0.0, losses, grad, 0.25,
                THREADS, 0.0]
    assert name == "mse"
    return [random_values(shape, dtype, "logits", rng), random_values(shape, dtype, "logits", rng),
            weight, sample_weight, losses, grad, 0.25, THREADS, 0.0]


def _targets(rows_shape, n_classes, variant, rng):
    """int64 labels; the full variant uses int32 and ignores a few rows."""
    target = rng.integers(0, n_classes, size=rows_shape)
    if variant == "full":
        target[rng.random(rows_shape) < 0.2] = IGNORE
        return target.astype(np.int32)
    return target


def _row_case(name, rows_shape, n_classes, dtype, variant, rng):
    shape = rows_shape + (n_classes,)
    full = variant == "full"
    grad = Out(shape) if variant != "loss_only" else None
    losses = _maybe(full, Out(rows_shape))
    if name in ("softmax", "log_softmax"):
        return [random_values(shape, dtype, "logits", rng), Out(shape), THREADS]
    if name == "logsumexp":
        return [random_values(shape, dtype, "logits", rng), Out(rows_shape), THREADS]
    class_weight = _maybe(full, Fixed(random_values((n_classes,), np.float64, "positive", rng)))
    sample_weight = _maybe(full, random_values(rows_shape, dtype, "positive", rng))
    smoothing = 0.1 if full else 0.0
    target = _targets(rows_shape, n_classes, variant, rng)
    probs = random_values(shape, dtype, "simplex", rng)
    if name == "index_weight_sum":
        return [target, class_weight, sample_weight, IGNORE, THREADS, 0.0]
    if name == "softmax_xent_index":
        return [random_values(shape, dtype, "logits", rng), target, class_weight, sample_weight,
                IGNORE, smoothing, losses, grad, 0.25, THREADS, 0.0]
    if name == "softmax_xent_soft":
        return [random_values(shape, dtype, "logits", rng), probs, class_weight, sample_weight,
                smoothing, losses, grad, 0.25, THREADS, 0.0]
    if name == "categorical_xent_index":
        return [probs, target, class_weight, sample_weight, IGNORE, smoothing, losses, grad,
                0.25, THREADS, 0.0]
    if name == "categorical_xent_soft":
        return [probs, random_values(shape, dtype, "simplex", rng), class_weight, sample_weight,
                smoothing, losses, grad, 0.25, THREADS, 0.0]
    assert name == "nll_index"
    return [random_values(shape, dtype, "logits", rng), target, class_weight, sample_weight,
            IGNORE, losses, grad, 0.25, THREADS, 0.0]


ELEMENTWISE = ["sigmoid", "log_sigmoid", "bce", "bce_with_logits", "mse"]
ROWS = ["softmax", "log_softmax", "logsumexp", "softmax_xent_index", "softmax_xent_soft",
        "categorical_xent_index", "categorical_xent_soft", "nll_index", "index_weight_sum"]
INDEX_LOSSES = ["softmax_xent_index", "categorical_xent_index", "nll_index"]
LOSSES = ["bce", "bce_with_logits", "mse"] + ROWS[3:8]
DTYPES = [np.float32, np.float64]

# Small shapes that still span several blocks, with block boundaries inside
# rows (elementwise: 8643 elements = 2 full blocks + a tail) or inside the
# leading axis (rows: 145 rows of 13 classes = 2 full blocks + a tail).
SMALL_ELEMENTWISE = (67, 129)
SMALL_ROWS = ((5, 29), 13)


def make_case(name, dtype, variant="full", rng=None, elementwise_shape=SMALL_ELEMENTWISE,
              rows_shape=SMALL_ROWS):
    rng = np.random.default_rng(1) if rng is None else rng
    if name in ELEMENTWISE:
        return _elementwise_case(name, *elementwise_shape, dtype, variant, rng)
    return _row_case(name, rows_shape[0], rows_shape[1], dtype, variant, rng)


def _output_dtype(args):
    floats = [a for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    return floats[0].dtype if floats else np.float64


def call(module, name, args, n_threads=1, relayout=None, relayout_outputs=None):
    """Run kernel `name` of `module`; return (result, list of outputs).

    relayout(array) -> view is applied to every input array, and
    relayout_outputs(array) -> view to every NaN-filled output buffer."""
    dtype = _output_dtype(args)
    actual, outputs = [], []
    for arg in args:
        if arg is THREADS:
            arg = n_threads
        elif isinstance(arg, Fixed):
            arg = arg.value
        elif isinstance(arg, Out):
            buffer = np.full(arg.shape, np.nan, dtype=dtype)
            arg = relayout_outputs(buffer) if relayout_outputs else buffer
            outputs.append(arg)
        elif isinstance(arg, np.ndarray) and relayout is not None:
            arg = relayout(arg)
        actual.append(arg)
    result = getattr(module, name)(*actual)
    return result, [np.array(out) for out in outputs]


def assert_bitwise(got, expected):
    got_result, got_outputs = got
    expected_result, expected_outputs = expected
    assert type(got_result) is type(expected_result)
    if got_result is not None:
        assert got_result == expected_result or (np.isnan(got_result) and np.isnan(expected_result))
    assert len(got_outputs) == len(expected_outputs)
    for g, e in zip(got_outputs, expected_outputs):
        np.testing.assert_array_equal(g, e)


def assert_close_to_reference(got, expected, dtype):
    """A few ulps: rtol 1e-12 (float64) / 1e-5 (float32), relative to the
    array's scale so that a gradient near 0 is not judged on its own."""
    tol = 1e-5 if dtype == np.float32 else 1e-12
    got_result, got_outputs = got
    expected_result, expected_outputs = expected
    if expected_result is None:
        assert got_result is None
    else:
        assert isinstance(got_result, float)
        scale = max(1.0, abs(expected_result))
        assert abs(got_result - expected_result) <= tol * scale * 10, (got_result, expected_result)
    for g, e in zip(got_outputs, expected_outputs):
        assert g.dtype == e.dtype
        scale = max(1.0, float(np.max(np.abs(e)))) if e.size else 1.0
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol * scale)


# ---------------------------------------------------------------------- tests

ALL_KERNELS = ELEMENTWISE + ROWS


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", ALL_KERNELS)
def test_matches_reference(kernels, name, variant, dtype):
    args = make_case(name, dtype, variant)
    assert_close_to_reference(call(kernels, name, args, n_threads=2),
                              call(reference, name, args), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ALL_KERNELS)
def test_compiled_backends_give_the_same_bits(name, dtype):
    """Both loops call the same row functions on the same blocks."""
    modules = [_import_backend(m) for m in COMPILED_MODULES]
    if None in modules:
        pytest.skip("needs both compiled backends")
    cython_loops, c_loops = modules
    args = make_case(name, dtype, "full")
    assert_bitwise(call(cython_loops, name, args, n_threads=2), call(c_loops, name, args, n_threads=2))


# Layouts of arrays.layouts() a kernel may receive (the facade copies
# unaligned data).  Output buffers get the same layout when it is writable.
LAYOUTS = ["readonly", "Fortran", "permuted", "strided", "negative-stride",
           "broadcast-axis0", "broadcast-axis1", "broadcast-axis2", "broadcast-all"]
WRITABLE_OUTPUT_LAYOUTS = ["Fortran", "permuted", "strided", "negative-stride"]


def _layout(name):
    def relayout(array):
        return dict(layouts(array)).get(name, array)
    return relayout


def _layout_cases():
    """Every kernel with every layout its operands can take (2-D operands
    have no permuted or axis-2 broadcast layout)."""
    for name in ALL_KERNELS:
        ndim = 2 if name in ELEMENTWISE or name == "index_weight_sum" else 3
        for layout in LAYOUTS:
            if ndim == 3 or layout not in ("permuted", "broadcast-axis2"):
                yield pytest.param(name, layout, id=f"{name}-{layout}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,layout", list(_layout_cases()))
def test_layout_gives_the_bits_of_its_contiguous_copy(kernels, name, layout, dtype):
    args = make_case(name, dtype, "full")
    relayout = _layout(layout)
    relayout_outputs = relayout if layout in WRITABLE_OUTPUT_LAYOUTS else None
    views = [relayout(a) if isinstance(a, np.ndarray) else a for a in args]
    contiguous = [np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v for v in views]
    assert_bitwise(call(kernels, name, views, n_threads=2, relayout_outputs=relayout_outputs),
                   call(kernels, name, contiguous, n_threads=2))


def _thread_cases():
    for name in ALL_KERNELS:
        for dtype in DTYPES:
            for shape in [(200_000, 37), (64, 100_000)]:
                yield pytest.param(name, dtype, shape, id=f"{name}-{np.dtype(dtype).name}-{shape}")


@pytest.mark.slow
@pytest.mark.parametrize("name,dtype,shape", list(_thread_cases()))
def test_bitwise_identical_for_every_thread_count(kernels, name, dtype, shape):
    rows, cols = shape
    # rows kernels: (A, B) = (rows / 8, 8) where that divides, so that both
    # leading axes are walked
    rows_shape = (rows // 8, 8) if rows % 8 == 0 and rows > 64 else (rows, 1)
    args = make_case(name, dtype, "full", elementwise_shape=shape, rows_shape=(rows_shape, cols))
    assert_bitwise(call(kernels, name, args, n_threads=2), call(kernels, name, args, n_threads=1))


@pytest.mark.parametrize("n_threads", [2, 3])
@pytest.mark.parametrize("name", ALL_KERNELS)
def test_blocks_taken_several_at_a_time_give_the_bits_of_one_thread(kernels, name, n_threads):
    # 103 blocks of CE_BLOCK_ROWS rows (or CE_BLOCK_ELEMS elements): the
    # threads take them 3 (2 threads) or 2 (3 threads) at a time, with a
    # short last grab (ce_blocks_per_grab)
    args = make_case(name, np.float32, "full", elementwise_shape=(103, 4096),
                     rows_shape=((103 * 64 // 8, 8), 3))
    assert_bitwise(call(kernels, name, args, n_threads=n_threads),
                   call(kernels, name, args, n_threads=1))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", LOSSES + ["index_weight_sum"])
def test_bitwise_identical_for_every_thread_count_small(kernels, name, dtype):
    # just above the size where the loops start a second thread
    args = make_case(name, dtype, "full", elementwise_shape=(300, 129),
                     rows_shape=((40, 100), 13))
    assert_bitwise(call(kernels, name, args, n_threads=2), call(kernels, name, args, n_threads=1))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ALL_KERNELS)
@pytest.mark.parametrize("rows_shape", [((3, 1), 20_000), ((2, 5), 4_000)], ids=["3x20000", "2x5x4000"])
def test_a_few_wide_rows_give_the_same_bits_for_every_thread_count(kernels, name, dtype,
                                                                    rows_shape):
    # fewer row blocks than threads: the threads share the rows of a block
    args = make_case(name, dtype, "full", elementwise_shape=(300, 129), rows_shape=rows_shape)
    assert_bitwise(call(kernels, name, args, n_threads=2), call(kernels, name, args, n_threads=1))


@pytest.mark.parametrize("layout", ["C-contiguous", "strided", "negative-stride", "Fortran"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["sigmoid", "log_sigmoid", "softmax", "log_softmax"])
def test_activation_in_place(kernels, name, dtype, layout):
    x = make_case(name, dtype)[0]
    expected = np.empty_like(x)
    getattr(kernels, name)(x, expected, 2)
    inplace = dict(layouts(x))[layout]
    getattr(kernels, name)(inplace, inplace, 2)
    np.testing.assert_array_equal(inplace, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_ignored_rows_have_zero_loss_and_gradient(kernels, name, dtype):
    args = make_case(name, dtype, "full")
    target = args[1]
    ignored = target == IGNORE
    assert ignored.any() and not ignored.all()
    result, (losses, grad) = call(kernels, name, args)
    assert np.all(losses[ignored] == 0)
    assert np.all(grad[ignored] == 0)
    assert np.all(np.isfinite(losses[~ignored])) and np.any(grad[~ignored] != 0)
    assert result == pytest.approx(float(np.sum(losses, dtype=np.float64)), rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", LOSSES + ["index_weight_sum"])
def test_block_aligned_chunks_chain_through_acc(kernels, name, dtype):
    """Feeding the rows in block-aligned chunks, each result passed on as the
    next acc, gives the one-shot bits (what crossent.evaluate relies on)."""
    cols = 64  # 64 elements per row: a chunk of 64 rows is 1 elementwise block
    args = make_case(name, dtype, "full", elementwise_shape=(5 * BLOCK_ROWS + 7, cols),
                     rows_shape=((5 * BLOCK_ROWS + 7, 1), cols))
    one_shot, _ = call(kernels, name, args, n_threads=2)
    n_rows = args[0].shape[0]
    acc = 0.0
    for start in range(0, n_rows, 2 * BLOCK_ROWS):
        chunk = [a[start:start + 2 * BLOCK_ROWS] if isinstance(a, np.ndarray)
                 else Out((min(2 * BLOCK_ROWS, n_rows - start),) + a.shape[1:])
                 if isinstance(a, Out) else a for a in args]
        chunk[-1] = acc
        acc, _ = call(kernels, name, chunk, n_threads=2)
    assert acc == one_shot


@pytest.mark.parametrize("name", ALL_KERNELS)
def test_empty_input_returns_acc(kernels, name):
    args = make_case(name, np.float32, "full", elementwise_shape=(0, 5), rows_shape=((0, 3), 4))
    if args[-1] is THREADS:
        assert call(kernels, name, args)[0] is None
    else:
        args[-1] = 1.5
        assert call(kernels, name, args)[0] == 1.5


@pytest.mark.parametrize("layout", ["C-contiguous", "Fortran", "negative-stride", "strided"])
@pytest.mark.parametrize("int_dtype", [np.int32, np.int64])
def test_first_bad_index(kernels, int_dtype, layout):
    target = np.random.default_rng(0).integers(0, 10, size=(7, 9)).astype(int_dtype)
    target[2, 3] = IGNORE
    assert kernels.first_bad_index(dict(layouts(target))[layout], 10, IGNORE) == -1
    target[4, 5] = 10
    target[5, 0] = -1
    view = dict(layouts(target))[layout]
    assert kernels.first_bad_index(view, 10, IGNORE) == 4 * 9 + 5
    assert kernels.first_bad_index(view, 11, IGNORE) == 5 * 9


@pytest.mark.parametrize("int_dtype", [np.int32, np.int64])
def test_first_bad_index_in_long_runs_of_targets(kernels, int_dtype):
    """Contiguous runs go to the chunked, vectorised scan (1024 targets a
    chunk): a bad target is found wherever it lies, a value equal to
    ignore_index never is, and every kind of bad value counts."""
    info = np.iinfo(int_dtype)
    rng = np.random.default_rng(5)
    for position in [0, 1023, 1024, 1025, 3000, 4999]:
        for bad in [-1, 10, info.min, info.max]:
            target = rng.integers(0, 10, 5000).astype(int_dtype)
            target[::7] = IGNORE
            target[position] = bad
            for view in [target.reshape(1, -1), target.reshape(50, 100),
                         target.reshape(5000, 1)]:
                assert kernels.first_bad_index(view, 10, IGNORE) == position
                # the bad value as ignore_index: the first -100 is then bad
                assert kernels.first_bad_index(view, 10, int(bad)) == (0 if position else 7)
            assert reference.first_bad_index(target.reshape(1, -1), 10, IGNORE) == position
    # an ignore_index that no int32 can equal, and more classes than int32 has
    target = np.full((1, 3000), -1, int_dtype)
    assert kernels.first_bad_index(target, 10, 2 ** 40) == 0
    assert kernels.first_bad_index(target + 1, 2 ** 40, IGNORE) == -1


@pytest.mark.parametrize("int_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n_classes", [10, 100, 1000])
@pytest.mark.parametrize("name,options", [
    pytest.param(name, options, id=f"{name}-{'-'.join(options) or 'plain'}")
    for name in INDEX_LOSSES
    for options in [{}, {"smoothing": 0.1}, {"class_weight": True}]
    if not (name == "nll_index" and "smoothing" in options)])  # nll_loss has no smoothing
def test_rows_along_one_axis_give_the_bits_of_rows_along_two(kernels, name, int_dtype, dtype,
                                                             options, n_classes):
    """An index loss over (1, N, C) rows without per-row weights or losses
    reads its rows by plain strides (the Cython loops' short way); the same
    rows as (N, 1, C) go the general way: the same bits, ignored rows and a
    row with a NaN included, with and without the gradient, and the
    reference's answer."""
    rng = np.random.default_rng(3)
    rows = 3 * 64 + 5
    kind = "simplex" if name == "categorical_xent_index" else "logits"
    z = random_values((rows, n_classes), dtype, kind, rng)
    z[100, n_classes // 2] = np.nan
    target = rng.integers(0, n_classes, rows).astype(int_dtype)
    target[rng.random(rows) < 0.2] = IGNORE
    target[64:70] = IGNORE
    target[100] = 0
    class_weight = (random_values((n_classes,), np.float64, "positive", rng)
                    if options.get("class_weight") else None)
    smoothing = () if name == "nll_index" else (options.get("smoothing", 0.0),)

    def run(module, z3, target2, grad, n_threads):
        return getattr(module, name)(z3, target2, class_weight, None, IGNORE, *smoothing, None,
                                     grad, 0.25, n_threads, 0.0)

    for with_grad in [True, False]:
        results = []
        for shape in [(1, rows), (rows, 1)]:
            grad = np.full(shape + (n_classes,), np.nan, dtype) if with_grad else None
            total = run(kernels, z.reshape(shape + (n_classes,)), target.reshape(shape), grad, 2)
            results.append((total, None if grad is None else grad.reshape(rows, n_classes)))
        (plain, plain_grad), (general, general_grad) = results
        assert np.isnan(plain) and np.isnan(general)  # row 100's NaN
        # without the NaN row: the bits of the general way and the reference's sum
        keep = target.copy()
        keep[100] = IGNORE
        plain = run(kernels, z.reshape(1, rows, n_classes), keep.reshape(1, rows), None, 2)
        general = run(kernels, z.reshape(rows, 1, n_classes), keep.reshape(rows, 1), None, 2)
        assert plain == general
        expected = run(reference, z.reshape(1, rows, n_classes), keep.reshape(1, rows), None, 1)
        assert plain == pytest.approx(expected, rel=1e-5 if dtype == np.float32 else 1e-12)
        if with_grad:
            np.testing.assert_array_equal(plain_grad, general_grad)
            assert not np.any(plain_grad[target == IGNORE])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n_classes", [10, 100, 1000])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_activation_rows_along_one_axis_give_the_bits_of_rows_along_two(kernels, name, dtype,
                                                                        n_classes):
    """softmax, log_softmax and logsumexp over (1, N, C) rows go through the
    batched row functions in the Cython loops; as (N, 1, C) rows, one row at
    a time: the same bits, on 1 thread and 2, in place too."""
    rng = np.random.default_rng(4)
    rows = 3 * 64 + 5
    z = random_values((rows, n_classes), dtype, "logits", rng)
    z[7, 3] = np.nan
    z[8] = -np.inf
    z[9, 1] = np.inf
    results = []
    for shape, n_threads in [((1, rows), 1), ((1, rows), 2), ((rows, 1), 2)]:
        out = np.full(shape if name == "logsumexp" else shape + (n_classes,), np.nan, dtype)
        getattr(kernels, name)(z.reshape(shape + (n_classes,)), out, n_threads)
        results.append(out.reshape(rows, -1))
    for other in results[1:]:
        assert other.tobytes() == results[0].tobytes()
    if name != "logsumexp":
        in_place = z.copy().reshape(1, rows, n_classes)
        getattr(kernels, name)(in_place, in_place, 2)
        assert in_place.reshape(rows, n_classes).tobytes() == results[0].tobytes()
    expected = np.empty((1, rows) if name == "logsumexp" else (1, rows, n_classes), dtype)
    with np.errstate(invalid="ignore"):
        getattr(reference, name)(z.reshape(1, rows, n_classes), expected, 1)
    np.testing.assert_allclose(results[0], expected.reshape(rows, -1),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-30)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", INDEX_LOSSES + ["softmax", "log_softmax", "logsumexp"])
def test_a_few_wide_rows_along_one_axis_give_the_same_bits_for_every_thread_count(
        kernels, name, dtype):
    """Fewer row blocks than threads, rows along one axis: the threads share
    runs of consecutive rows (one batched call each) instead of single rows.
    The bits of 1 thread, of 3, and of the same rows taken one at a time as
    (N, 1, C); ignored rows too."""
    rng = np.random.default_rng(5)
    rows, n_classes = 41, 2000   # one block, work above the parallel threshold
    kind = "simplex" if name == "categorical_xent_index" else "logits"
    z = random_values((rows, n_classes), dtype, kind, rng)
    target = rng.integers(0, n_classes, rows)
    target[[0, 7, 8, 40]] = IGNORE

    def run(module, shape, n_threads):
        z3 = z.reshape(shape + (n_classes,))
        if name in ("softmax", "log_softmax", "logsumexp"):
            out = np.full(shape if name == "logsumexp" else z3.shape, np.nan, dtype)
            getattr(module, name)(z3, out, n_threads)
            return None, out.reshape(rows, -1)
        grad = np.full(z3.shape, np.nan, dtype)
        smoothing = () if name == "nll_index" else (0.1,)
        total = getattr(module, name)(z3, target.reshape(shape), None, None, IGNORE, *smoothing,
                                      None, grad, 0.5, n_threads, 0.0)
        return total, grad.reshape(rows, n_classes)

    total, out = run(kernels, (1, rows), 2)
    for shape, n_threads in [((1, rows), 1), ((1, rows), 3), ((rows, 1), 2)]:
        other_total, other_out = run(kernels, shape, n_threads)
        assert other_total == total
        assert other_out.tobytes() == out.tobytes()
    expected_total, expected_out = run(reference, (1, rows), 1)
    tolerance = dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out, expected_out, **tolerance)
    if total is not None:
        assert total == pytest.approx(expected_total, rel=tolerance["rtol"])
        assert not np.any(out[target == IGNORE])


def test_info_and_simd_selection(kernels):
    info = kernels.info()
    assert set(info) >= {"simd", "simd_available", "openmp", "build_flags", "max_threads"}
    assert info["simd"] in info["simd_available"].split(",")
    assert isinstance(info["openmp"], bool) and info["max_threads"] >= 1
    with pytest.raises(ValueError):
        kernels.set_simd("no-such-variant")
    assert kernels.info()["simd"] == info["simd"]
    args = make_case("softmax_xent_index", np.float32)
    best = call(kernels, "softmax_xent_index", args)
    try:
        kernels.set_simd("baseline")
        assert kernels.info()["simd"] == "baseline"
        assert_close_to_reference(call(kernels, "softmax_xent_index", args), best, np.float32)
    finally:
        kernels.set_simd(info["simd"])


PEAK_MEMORY_SCRIPT = textwrap.dedent("""
    import importlib, sys
    import numpy as np
    kernels = importlib.import_module(sys.argv[1])

    def peak_kib():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    rows, n_classes = 2_000_000, 10
    rng = np.random.default_rng(0)
    # Fortran-ordered operands, generated in place so that no temporary
    # raises the peak before the call
    z = np.empty((n_classes, rows), np.float32)
    rng.standard_normal(dtype=np.float32, out=z)
    grad = np.empty((n_classes, rows), np.float32)
    grad.fill(0)
    target = rng.integers(0, n_classes, size=(rows, 1))
    losses = np.empty((rows, 1), np.float32)
    losses.fill(0)  # touch the pages now (np.zeros maps them lazily)
    z3, grad3 = z.T.reshape(rows, 1, n_classes), grad.T.reshape(rows, 1, n_classes)
    assert not z3.flags.c_contiguous and np.shares_memory(z3, z)
    before = peak_kib()
    kernels.softmax_xent_index(z3, target, None, None, -100, 0.0, losses, grad3, 1.0, 2, 0.0)
    print(peak_kib() - before)
""")


def test_fortran_input_is_staged_not_copied(kernels):
    out = subprocess.run([sys.executable, "-c", PEAK_MEMORY_SCRIPT, kernels.__name__],
                         capture_output=True, text=True, check=True)
    growth_kib = int(out.stdout)
    # the input is 80 MB; the staging buffers and block sums are < 1 MB
    assert growth_kib < 4096, f"peak RSS grew by {growth_kib} KiB"


@pytest.mark.slow
def test_flat_index_beyond_2_31(kernels):
    """2**31 + 2**20 elements (zero row strides keep the memory small): every
    flat offset past 2**31 must be computed without overflow."""
    cols = 2 ** 20
    rows = 2 ** 11 + 1
    rng = np.random.default_rng(0)
    x_row = rng.normal(size=(1, cols)).astype(np.float32)
    t_row = rng.normal(size=(1, cols)).astype(np.float32)
    x = np.broadcast_to(x_row, (rows, cols))
    t = np.broadcast_to(t_row, (rows, cols))
    total = kernels.mse(x, t, None, None, None, None, 1.0, 2, 0.0)
    one_row = kernels.mse(x_row, t_row, None, None, None, None, 1.0, 1, 0.0)
    assert total == pytest.approx(rows * one_row, rel=1e-9)
