"""Accuracy against mpmath at 50 digits, in units in the last place (ulps).

The exact value is computed from the input's own binary value (so the test
measures the function, not the rounding of the input), then the error of the
returned value is expressed in ulps of the result's dtype.

Bounds (stated here, checked below):

* elementwise primitives (sigmoid, log_sigmoid, softmax, binary cross-entropy
  of a probability with a 0/1 label): 4 ulps of the exact value.
* results that are a difference of two terms of the max-shifted algorithm
  (log_softmax, logsumexp, the per-sample cross-entropy ``lse - z_t``, the
  BCE-with-logits loss ``(1 - y)·z + softplus(-z)`` and the gradients
  ``σ(z) - y`` / ``softmax(z) - onehot``): 4 ulps of the largest magnitude
  involved (``scale``).  Their cancellation is inherent to the stable
  formulas PyTorch and SciPy use, so a relative bound on a tiny result would
  demand a different algorithm, not a better implementation.
* means: 8 ulps of the largest per-sample scale (the float64 accumulation
  adds well under one ulp for these few samples).
"""
import mpmath
import numpy as np
import pytest

import crossent

mpmath.mp.dps = 50

MAX_ULPS = 4

# Branch points of the stable formulas (sklearn's log1pexp cut-offs -37, -2,
# 18, 33.3), overflow edges of exp in float32 (88) and float64 (709), huge
# logits, tiny ones and subnormals of both dtypes.
EXTREME_LOGITS = [-1e4, -709.5, -88.7, -88.0, -37.0, -33.3, -18.0, -2.0, -1.0, -1e-30,
                  -5e-324, -1e-45, 0.0, 1e-45, 5e-324, 1e-40, 1e-30, 1e-8, 0.5, 1.0,
                  2.0, 18.0, 33.3, 37.0, 88.0, 88.7, 709.5, 1e4]

SOFTMAX_ROWS = [
    [1e4, 0.0, -1e4],
    [88.0, -88.0, 0.0, 1.0],
    [37.0, 18.0, -37.0, -18.0],
    [1e-30, 0.0, -1e-30],
    [5e-324, 0.0, -1e-45],
    [0.0, 0.0, 0.0, 0.0],
    [-1e4, -9999.0, -9998.0],
    [1e4, 1e4],
    [-0.6931471805599453, -0.6931471805599453],  # logsumexp cancels to ~0
    [3.0],
    [-88.0, -87.0, -86.5, -100.0, -1e3],
]

DTYPES = [np.float16, np.float32, np.float64]


def result_dtype(dtype):
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def exact(value):
    """The exact binary value of a NumPy number as an mpmath number."""
    return mpmath.mpf(float(value))


def ulp_error(got, exact_value, dtype, scale=0):
    """|got - exact| in ulps of ``dtype`` at max(|exact|, scale).

    The ulp of 0 is the smallest subnormal, so an underflowed exact value that
    rounds to 0 counts as 0 ulps off.
    """
    dtype = np.dtype(dtype)
    got = float(got)
    if mpmath.isinf(exact_value) or np.isinf(got):
        return 0.0 if got == exact_value else np.inf
    magnitude = max(abs(exact_value), abs(mpmath.mpf(scale)))
    largest = np.finfo(dtype).max
    rounded = dtype.type(float(magnitude)) if magnitude < largest else largest
    ulp = np.spacing(np.abs(rounded))
    return float(abs(mpmath.mpf(got) - exact_value) / mpmath.mpf(float(ulp)))


def inputs(values, dtype):
    """The extreme values representable in ``dtype`` (duplicates after the
    cast dropped), as an array of that dtype."""
    cast = np.array(values, dtype=np.float64).astype(dtype)
    finite = cast[np.isfinite(cast)]
    return np.unique(finite)


def sigmoid_exact(z):
    return 1 / (1 + mpmath.exp(-z))


def softplus_exact(z):
    # log1p: at 50 digits 1 + exp(-709) is 1, and the log would lose it
    return mpmath.log1p(mpmath.exp(z))


def assert_ulps(got, expected, dtype, what, scales=None, max_ulps=MAX_ULPS):
    got = np.asarray(got)
    assert got.dtype == result_dtype(dtype), what
    scales = [0] * got.size if scales is None else scales
    errors = [ulp_error(g, e, result_dtype(dtype), s)
              for g, e, s in zip(got.ravel(), expected, scales)]
    worst = int(np.argmax(errors)) if errors else 0
    assert not errors or errors[worst] <= max_ulps, (
        f"{what}: {errors[worst]:.3g} ulps at element {worst} "
        f"(got {got.ravel()[worst]!r}, exact {mpmath.nstr(expected[worst], 20)})")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_ulps(backend, dtype):
    z = inputs(EXTREME_LOGITS, dtype)
    got = crossent.sigmoid(z, backend=backend)
    assert_ulps(got, [sigmoid_exact(exact(v)) for v in z], dtype, "sigmoid")


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_sigmoid_ulps(backend, dtype):
    z = inputs(EXTREME_LOGITS, dtype)
    got = crossent.log_sigmoid(z, backend=backend)
    assert_ulps(got, [-softplus_exact(-exact(v)) for v in z], dtype, "log_sigmoid")


def _rows(dtype):
    for row in SOFTMAX_ROWS:
        z = np.array(row, dtype=np.float64).astype(dtype)
        yield z, [exact(v) for v in z]


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_ulps(backend, dtype):
    for z, zx in _rows(dtype):
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zx))
        got = crossent.softmax(z, backend=backend)
        assert_ulps(got, [mpmath.exp(v - lse) for v in zx], dtype, f"softmax({z})")


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_ulps(backend, dtype):
    for z, zx in _rows(dtype):
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zx))
        top = max(zx)
        got = crossent.log_softmax(z, backend=backend)
        # scale: the shifted logit and log(Σ exp) (≥ the ulp of 1): see the module doc
        scales = [max(abs(v - top), 1) for v in zx]
        assert_ulps(got, [v - lse for v in zx], dtype, f"log_softmax({z})", scales)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_ulps(backend, dtype):
    for z, zx in _rows(dtype):
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zx))
        got = crossent.logsumexp(z, backend=backend)
        assert np.shape(got) == ()
        assert_ulps(got, [lse], dtype, f"logsumexp({z})", [max(abs(max(zx)), 1)])


def bce_logits_exact(z, y):
    return y * softplus_exact(-z) + (1 - y) * softplus_exact(z)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label", [0.0, 1.0, 0.25, 0.5])
def test_bce_with_logits_ulps(backend, dtype, label):
    z = inputs(EXTREME_LOGITS, dtype)
    y = np.full_like(z, label)
    loss, grad = crossent.binary_cross_entropy_with_logits(
        z, y, reduction="none", return_grad=True, backend=backend)
    zx = [exact(v) for v in z]
    yx = exact(y[0])
    scales = [max(abs((1 - yx) * v), 1) for v in zx]
    assert_ulps(loss, [bce_logits_exact(v, yx) for v in zx], dtype,
                f"bce_with_logits(y={label})", scales)
    assert_ulps(grad, [sigmoid_exact(v) - yx for v in zx], dtype,
                f"bce_with_logits gradient (y={label})", [1] * len(zx))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_binary_cross_entropy_ulps(backend, dtype, label):
    eps = np.finfo(dtype).eps
    tiny = np.finfo(dtype).smallest_subnormal
    p = np.unique(np.array([0.0, tiny, 1e-300, 1e-40, 1e-30, 1e-5, 0.25, 0.5,
                            1 - 1e-5, 1 - 2 * eps, 1 - eps / 2, 1.0]).astype(dtype))
    y = np.full_like(p, label)
    got = crossent.binary_cross_entropy(p, y, reduction="none", backend=backend)
    terms = [mpmath.log(exact(v)) if label == 1 else mpmath.log1p(-exact(v)) for v in p]
    clamped = [-max(t, -100) if t != -mpmath.inf else mpmath.mpf(100) for t in terms]
    assert_ulps(got, clamped, dtype, f"binary_cross_entropy(y={label})")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_categorical_cross_entropy_ulps(backend, dtype):
    """−max(log p_t, −100) of the given probability, near 0 and 1 too."""
    tiny = np.finfo(dtype).smallest_subnormal
    p_target = np.unique(np.array([0.0, tiny, 1e-300, 1e-40, 1e-30, 1e-5, 0.25, 0.5,
                                   1 - 1e-5, 1.0]).astype(dtype))
    probs = np.stack([p_target, 1 - p_target], axis=1).astype(dtype)
    got = crossent.categorical_cross_entropy(probs, np.zeros(len(probs), dtype=np.int64),
                                             reduction="none", backend=backend)
    expected = [mpmath.mpf(100) if v == 0 else -max(mpmath.log(exact(v)), -100) for v in p_target]
    assert_ulps(got, expected, dtype, "categorical_cross_entropy")


def cross_entropy_exact(zx, t):
    return mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zx)) - zx[t]


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_per_sample_ulps(backend, dtype):
    for z, zx in _rows(dtype):
        top = max(zx)
        for t in range(len(zx)):
            loss, grad = crossent.cross_entropy(z[None, :], np.array([t]), reduction="none",
                                                return_grad=True, backend=backend)
            assert_ulps(loss, [cross_entropy_exact(zx, t)], dtype, f"cross_entropy({z}, {t})",
                        [max(abs(zx[t] - top), 1)])
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zx))
            expected_grad = [mpmath.exp(v - lse) - (c == t) for c, v in enumerate(zx)]
            assert_ulps(grad, expected_grad, dtype, f"cross_entropy gradient ({z}, {t})",
                        [1] * len(zx))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_weighted_mean_ulps(backend, dtype):
    rows = [r for r in SOFTMAX_ROWS if len(r) == 3]
    z = np.array(rows, dtype=np.float64).astype(dtype)
    target = np.arange(len(rows)) % 3
    weight = np.array([0.5, 2.0, 1.25])
    got = crossent.cross_entropy(z, target, weight=weight, backend=backend)
    assert isinstance(got, np.floating) and got.dtype == result_dtype(dtype)
    per_sample = [cross_entropy_exact([exact(v) for v in row], t) for row, t in zip(z, target)]
    w = [exact(weight[t]) for t in target]
    expected = mpmath.fsum(wi * li for wi, li in zip(w, per_sample)) / mpmath.fsum(w)
    scale = max(max(abs(v) for v in row) for row in z.astype(np.float64))
    assert ulp_error(got, expected, result_dtype(dtype), scale) <= 2 * MAX_ULPS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_mean_ulps(backend, dtype):
    z = inputs(EXTREME_LOGITS, dtype)
    y = (np.arange(z.size) % 2).astype(dtype)
    got = crossent.binary_cross_entropy_with_logits(z, y, backend=backend)
    expected = mpmath.fsum(bce_logits_exact(exact(a), exact(b)) for a, b in zip(z, y)) / z.size
    scale = float(np.max(np.abs(z.astype(np.float64))))
    assert ulp_error(got, expected, result_dtype(dtype), scale) <= 2 * MAX_ULPS
