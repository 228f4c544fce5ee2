"""The check that probabilities lie in [0, 1] (SPEC §3: ``binary_cross_entropy``'s
``p``, ``categorical_cross_entropy``'s ``probs``, ``focal_loss``'s ``y``).

* the ``outside_unit_count`` kernel against the reference and a plain NumPy
  count: both dtypes, 2-byte floats, every layout, the edge values (0, 1,
  -0.0, NaN, ±inf, the nearest values outside), several blocks and threads;
* the facade's error names the first bad entry in C order, with the message
  of a contiguous input, whatever the layout and the backend;
* NaN, 0, 1 and -0.0 are accepted.
"""
import re

import numpy as np
import pytest

import crossent
from crossent import _api, _backends
from crossent import _reference as reference
from crossent._blocking import BLOCK_ELEMS

try:
    import ml_dtypes
except ImportError:
    ml_dtypes = None

BACKENDS = crossent.backends()
COMPILED = [name for name in BACKENDS if name != "numpy"]
DTYPES = [np.float32, np.float64]


def edge_values(dtype):
    """Every value the check must get right, inside and outside [0, 1]."""
    one, zero = dtype(1), dtype(0)
    return np.array([0, 1, -0.0, np.nan, 0.5, np.inf, -np.inf,
                     np.nextafter(one, dtype(2)), np.nextafter(zero, dtype(-1)),
                     np.nextafter(one, zero), np.nextafter(zero, one), -1, 2], dtype=dtype)


def values(shape, dtype, seed=0):
    """Mostly probabilities, with every edge value scattered over the array."""
    rng = np.random.default_rng(seed)
    x = rng.random(shape).astype(dtype)
    flat = x.reshape(-1)
    edges = edge_values(dtype)
    picks = rng.choice(flat.size, size=min(flat.size, 4 * edges.size), replace=False)
    flat[picks] = np.resize(edges, picks.size)
    return x


def layouts(x):
    """(name, view) pairs of one 2-D array: the views the kernels must read."""
    big = np.repeat(np.repeat(x, 2, axis=0), 3, axis=1)
    yield "contiguous", x
    yield "every other column", np.repeat(x, 2, axis=1)[:, ::2]
    yield "negative strides", big[::-2, ::-3]
    yield "Fortran order", np.asfortranarray(x)
    yield "transposed", x.T
    yield "broadcast row", np.broadcast_to(x[-1], x.shape)
    yield "broadcast column", np.broadcast_to(x[:, :1], x.shape)


def numpy_count(x):
    x = np.asarray(x, dtype=np.float64)
    return float(np.count_nonzero((x < 0) | (x > 1)))


# ================================================================ the kernel

@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 13), (7, 50), (3, BLOCK_ELEMS + 5), (129, 257)])
def test_the_kernel_counts_as_the_reference(backend, dtype, shape):
    module = _backends.module(backend)
    for name, view in layouts(values(shape, dtype)):
        expected = numpy_count(view)
        assert reference.outside_unit_count(view, 1, 0.0) == expected, name
        for n_threads in (1, 2):
            assert module.outside_unit_count(view, n_threads, 0.0) == expected, (name, n_threads)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_each_edge_value_alone(backend, dtype):
    module = _backends.module(backend)
    for value in edge_values(dtype):
        x = np.full((2, 3), value, dtype=dtype)
        expected = 6.0 if value < 0 or value > 1 else 0.0
        assert module.outside_unit_count(x, 1, 0.0) == expected, value
        assert reference.outside_unit_count(x, 1, 0.0) == expected, value


@pytest.mark.parametrize("backend", COMPILED)
def test_the_count_continues_from_acc(backend):
    module = _backends.module(backend)
    x = np.array([[-1.0, 0.5, 2.0]])
    assert module.outside_unit_count(x, 1, 3.0) == reference.outside_unit_count(x, 1, 3.0) == 5.0


half_dtypes = [pytest.param(np.dtype(np.float16), id="float16"),
               pytest.param(np.dtype(ml_dtypes.bfloat16) if ml_dtypes else None, id="bfloat16",
                            marks=pytest.mark.skipif(ml_dtypes is None, reason="needs ml_dtypes"))]


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("half", half_dtypes)
def test_two_byte_floats_count_as_their_float32_values(backend, half):
    module = _backends.module(backend)
    x = values((9, BLOCK_ELEMS // 4 + 3), np.float32).astype(half)
    for name, view in layouts(x):
        expected = numpy_count(view.astype(np.float32))
        assert module.outside_unit_count(view, 2, 0.0) == expected, name
        assert reference.outside_unit_count(view, 1, 0.0) == expected, name


# ================================================================ the facade

def strided(x):
    """A view of x's values that is not contiguous, with reversed rows."""
    return np.repeat(x, 2, axis=1)[::-1, ::2][::-1]


def probabilities_call(loss, p, backend):
    """One call of `loss` that checks `p` (2-D)."""
    if loss == "binary_cross_entropy":
        crossent.binary_cross_entropy(p, np.zeros(p.shape), backend=backend)
    elif loss == "categorical_cross_entropy":
        crossent.categorical_cross_entropy(p, np.zeros(p.shape[0], np.int64), backend=backend)
    else:
        crossent.focal_loss(np.zeros(p.shape, p.dtype), p, backend=backend)


LOSSES = ["binary_cross_entropy", "categorical_cross_entropy", "focal_loss"]
ARGUMENT = {"binary_cross_entropy": "p", "categorical_cross_entropy": "probs", "focal_loss": "y"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_error_names_the_first_bad_entry_in_c_order(backend, loss, dtype):
    x = np.full((40, 30), 0.25, dtype=dtype)
    x[7, 3], x[7, 20], x[31, 1] = np.nan, 1.5, -0.5  # a NaN before them is allowed
    message = (rf"{ARGUMENT[loss]}: expected probabilities in \[0, 1\], got 1.5 "
               rf"at position \(7, 20\)$")
    views = [("contiguous", x), ("strided", strided(x)), ("Fortran order", np.asfortranarray(x)),
             ("reversed", x[::-1, ::-1].copy()[::-1, ::-1])]
    for name, view in views:
        assert np.array_equal(view, x, equal_nan=True), name
        with pytest.raises(ValueError, match=message):
            probabilities_call(loss, view, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_the_message_formats_the_value_as_the_input_holds_it(backend, loss):
    """float32's -1e-30 as a format() of the float32 entry shows it."""
    x = np.full((3, 4), 0.5, dtype=np.float32)
    x[2, 1] = -1e-30
    expected = re.escape(f"got {x[2, 1]} at position (2, 1)") + "$"
    with pytest.raises(ValueError, match=expected):
        probabilities_call(loss, strided(x), backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_nan_zero_one_and_negative_zero_pass(backend, loss):
    x = np.resize(np.array([0.0, 1.0, -0.0, np.nan, 0.5]), (4, 5))
    probabilities_call(loss, strided(x), backend)
    probabilities_call(loss, x, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_more_axes_in_any_layout(backend):
    """Three axes take the memory-order fold, and its copy when no two axes join."""
    x = np.full((4, 5, 6), 0.5)
    x[2, 3, 4] = 7.0
    views = [np.asfortranarray(x), x.transpose(2, 0, 1).copy().transpose(1, 2, 0),
             np.repeat(np.repeat(x, 2, axis=0), 2, axis=2)[::2, :, ::-2][:, :, ::-1],
             np.repeat(np.repeat(np.repeat(x, 2, axis=0), 2, axis=1), 2, axis=2)[::2, ::2, ::2]]
    for view in views:
        assert np.array_equal(view, x)
        with pytest.raises(ValueError, match=r"got 7.0 at position \(2, 3, 4\)$"):
            crossent.binary_cross_entropy(view, np.zeros(x.shape), backend=backend)
        assert _api._as_elements(view).ndim == 2


def test_the_check_reads_the_views_without_a_copy():
    x = np.asfortranarray(np.zeros((3, 4, 5)))
    assert np.shares_memory(_api._as_elements(x), x)
    assert np.shares_memory(_api._as_elements(x[::-1, :, ::2]), x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("half", half_dtypes)
def test_two_byte_probabilities_are_checked_in_every_layout(backend, half):
    x = np.full((6, 5), 0.5, dtype=half)
    x[1, 2], x[4, 0] = np.nan, -2.0
    for view in (x, strided(x)):
        with pytest.raises(ValueError, match=r"p: expected probabilities in \[0, 1\], got -2.0 "
                                             r"at position \(4, 0\)$"):
            crossent.binary_cross_entropy(view, np.zeros(x.shape, np.float32), backend=backend)
