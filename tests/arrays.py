"""The shared array generator (in the spirit of bottleneck's ``array_generator``).

Every generator yields ``(description, array)`` pairs, so a failing assertion
can name the layout it failed on.  The rule the layouts test (SPEC §1.1): a
view must give the same result as ``np.ascontiguousarray(view)`` -- within
float tolerance for the NumPy reference and bit for bit for the compiled
backends (``assert_same_as_contiguous``).
"""
import numpy as np

FLOAT_DTYPES = (np.float16, np.float32, np.float64)
INT_DTYPES = (np.int8, np.int32, np.int64, np.uint8)
ALL_PREDICTION_DTYPES = FLOAT_DTYPES + INT_DTYPES + (np.bool_,)

# Shapes for the generator: empty, one element, one class, two classes, and
# every rank the class axis is moved around in (2-D, 3-D, 4-D).
SHAPES = [(0,), (1,), (7,), (0, 3), (1, 1), (1, 4), (5, 1), (5, 2), (6, 5),
          (3, 0, 4), (2, 3, 4), (3, 1, 2, 5)]


def computation_dtype(dtype):
    """SPEC §1.2: float32 and float16 compute in float32, float64 and every
    integer or bool dtype in float64."""
    dtype = np.dtype(dtype)
    if dtype in (np.float16, np.float32):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def random_values(shape, dtype, kind="logits", rng=None):
    """Random contiguous values for an input of the given kind.

    kind: "logits" (any real), "probs" (inside (0, 1)), "simplex" (rows on the
    last axis sum to 1), "binary" (0/1 labels as floats), "positive" (weights).
    Integer dtypes get small integers (logits) or 0/1 (probs, binary).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    dtype = np.dtype(dtype)
    if kind == "logits":
        values = rng.normal(scale=3.0, size=shape)
    elif kind == "probs":
        values = rng.uniform(0.02, 0.98, size=shape)
    elif kind == "simplex":
        raw = rng.uniform(0.05, 1.0, size=shape)
        values = raw / raw.sum(axis=-1, keepdims=True) if raw.size else raw
    elif kind == "binary":
        values = rng.integers(0, 2, size=shape).astype(float)
    elif kind == "positive":
        values = rng.uniform(0.25, 2.0, size=shape)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    unit_interval = kind in ("probs", "binary", "simplex")
    if dtype.kind == "b":
        values = values > (0.5 if unit_interval else 0.0)
    elif dtype.kind in "iu":
        values = np.round(values) if unit_interval else np.clip(np.round(values), -8, 8)
        if dtype.kind == "u":
            values = np.abs(values)
    return np.ascontiguousarray(values).astype(dtype)


def _strided(a):
    """``a`` as a view with a step of 2 along every axis."""
    big = np.zeros(tuple(2 * n for n in a.shape), dtype=a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def _reversed(a):
    """``a`` as a view with negative strides along every axis."""
    flip = tuple(slice(None, None, -1) for _ in a.shape)
    return np.ascontiguousarray(a[flip])[flip]


def _unaligned(a):
    """``a`` copied into a buffer that starts one byte off alignment."""
    raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


def _readonly(a):
    view = a.copy()
    view.flags.writeable = False
    return view


def layouts(a, broadcast=True):
    """Yield ``(description, view)``: ``a`` in every memory layout we support.

    All views but the broadcast ones hold ``a``'s values; the broadcast views
    (zero strides) repeat one slice of ``a`` along an axis, so compare each
    view's result with the result of ``np.ascontiguousarray(view)``.
    """
    a = np.require(np.asarray(a), requirements="C")  # (ascontiguousarray would make 0-d 1-d)
    yield "C-contiguous", a.copy()
    yield "readonly", _readonly(a)
    if a.ndim == 0:
        return
    if a.ndim >= 2:
        yield "Fortran", np.asfortranarray(a)
    if a.ndim >= 3:
        # neither C nor Fortran: axes stored in the order (1, 2, ..., 0)
        yield "permuted", np.moveaxis(np.ascontiguousarray(np.moveaxis(a, 0, -1)), -1, 0)
    yield "strided", _strided(a)
    yield "negative-stride", _reversed(a)
    if a.dtype.itemsize > 1:
        yield "unaligned", _unaligned(a)
    if not broadcast or a.size == 0:
        return
    for axis, length in enumerate(a.shape):
        if length > 1:
            yield f"broadcast-axis{axis}", np.broadcast_to(a.take([0], axis=axis), a.shape)
    if a.size > 1:
        yield "broadcast-all", np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * a.ndim), a.shape)


def array_generator(shapes=SHAPES, dtypes=FLOAT_DTYPES, kind="logits", seed=0,
                    broadcast=True, min_ndim=0):
    """Yield ``(description, array)`` for every shape x dtype x layout."""
    rng = np.random.default_rng(seed)
    for shape in shapes:
        if len(shape) < min_ndim:
            continue
        for dtype in dtypes:
            base = random_values(shape, dtype, kind, rng)
            for layout, view in layouts(base, broadcast=broadcast):
                yield f"{np.dtype(dtype).name}{list(shape)} {layout}", view


def class_axes(ndim):
    """The class axes to try on an ``ndim``-D input: 0, 1 and -1 when valid."""
    axes = [axis for axis in (0, 1, -1) if -ndim <= axis < ndim]
    normalised = {}
    for axis in axes:
        normalised.setdefault(axis % ndim, axis)
    return list(normalised.values())


def assert_same_as_contiguous(backend, got, expected, description):
    """Bitwise for the compiled backends (their kernels stage strided data into
    contiguous blocks); a few ulps for the NumPy reference, whose ufuncs may
    take different SIMD paths for different strides."""
    got = np.asarray(got)
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype, description
    assert got.shape == expected.shape, description
    if backend != "numpy":
        np.testing.assert_array_equal(got, expected, err_msg=description)
    else:
        rtol = 8 * np.finfo(got.dtype).eps if got.dtype.kind == "f" else 0
        finite = expected[np.isfinite(expected)] if expected.dtype.kind == "f" else expected
        # cancellation (a gradient near 0) is judged against the array's scale
        atol = rtol * float(np.max(np.abs(finite))) if finite.size else 0.0
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=description)


def central_difference(f, x, step=1e-4):
    """∂f/∂x by the 4th-order central difference, one coordinate at a time."""
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        def shifted(delta):
            moved = x.copy()
            moved[index] += delta
            return f(moved)
        grad[index] = (-shifted(2 * step) + 8 * shifted(step)
                       - 8 * shifted(-step) + shifted(-2 * step)) / (12 * step)
    return grad
