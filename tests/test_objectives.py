"""crossent.objectives: gradients and Hessians for gradient boosting.

* the NumPy reference against finite differences of independent losses
  (crossent's own losses with reduction="none") and against mpmath's
  derivatives at ordinary and extreme margins (±1e4 included);
* the Hessian conventions against formulas transcribed from the XGBoost and
  LightGBM sources;
* every backend against the reference, float32 and float64, weights, memory
  layouts of every operand, out=; thread counts and SIMD variants bit for bit;
* bad input raises, naming the argument, and writes nothing.
"""
import math
import zlib

import numpy as np
import pytest

import crossent
from crossent import _backends, objectives
from crossent import _reference as reference
from arrays import central_difference, layouts

BACKENDS = crossent.backends()
COMPILED = [name for name in BACKENDS if name != "numpy"]
DTYPES = [np.float32, np.float64]
# Kernel against reference: a few units of the dtype's epsilon relative to the
# array's scale (the softmax is computed by different sums).
RTOL = {np.float32: 4e-6, np.float64: 1e-13}
FOCAL_OPTIONS = [(0.25, 2.0), (None, 0.0), (0.75, 0.5), (0.4, 3.5)]


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def assert_close(got, expected, dtype, message=""):
    expected = np.asarray(expected, dtype=np.float64)
    finite = expected[np.isfinite(expected)]
    scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale,
                               equal_nan=True, err_msg=message)


def binary_inputs(n, dtype, rng, soft=True):
    z = rng.normal(0, 3, n).astype(dtype)
    y = rng.integers(0, 2, n).astype(dtype)
    if soft:
        y[::3] = rng.random(len(y[::3]))
    s = rng.uniform(0.1, 2.0, n).astype(dtype)
    return z, y, s


def softmax_inputs(n, k, dtype, rng):
    z = rng.normal(0, 3, (n, k)).astype(dtype)
    labels = rng.integers(0, k, n)
    soft = rng.dirichlet(np.ones(k), n).astype(dtype)
    s = rng.uniform(0.1, 2.0, n).astype(dtype)
    return z, labels, soft, s


# ------------------------------------------------ reference vs finite differences

def per_row_logistic(z, y, s):
    return crossent.binary_cross_entropy_with_logits(z, y, sample_weight=s, reduction="none",
                                                     backend="numpy")


def per_row_softmax(z, y, s):
    return crossent.cross_entropy(z, y, sample_weight=s, reduction="none", backend="numpy")


def per_row_focal(z, y, s, alpha, gamma):
    return crossent.focal_loss(z, y, sample_weight=s, alpha=-1.0 if alpha is None else alpha,
                               gamma=gamma, reduction="none", backend="numpy")


def fd_gradient_and_hessian(loss, grad_of, z):
    """∂Σloss/∂z and the diagonal ∂grad_i/∂z_i, both by central differences."""
    fd_grad = central_difference(lambda x: float(np.sum(loss(x))), z)
    fd_hess = np.empty_like(z)
    for index in np.ndindex(z.shape):
        def component(x, index=index):
            return grad_of(x)[index]
        step = np.zeros_like(z)
        step[index] = 1.0
        h = 1e-4
        fd_hess[index] = (-component(z + 2 * h * step) + 8 * component(z + h * step)
                          - 8 * component(z - h * step) + component(z - 2 * h * step)) / (12 * h)
    return fd_grad, fd_hess


def test_logistic_reference_matches_finite_differences():
    z, y, s = binary_inputs(12, np.float64, rng_for("fd-logistic"))
    grad, hess = objectives.binary_logistic(z, y, sample_weight=s, backend="numpy")
    fd_grad, fd_hess = fd_gradient_and_hessian(
        lambda x: per_row_logistic(x, y, s),
        lambda x: objectives.binary_logistic(x, y, sample_weight=s, backend="numpy")[0], z)
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(hess, fd_hess, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("soft", [False, True], ids=["labels", "soft"])
def test_softmax_reference_matches_finite_differences(soft):
    z, labels, soft_y, s = softmax_inputs(5, 4, np.float64, rng_for("fd-softmax", soft))
    y = soft_y if soft else labels
    grad, hess = objectives.softmax(z, y, sample_weight=s, backend="numpy")
    fd_grad, fd_hess = fd_gradient_and_hessian(
        lambda x: per_row_softmax(x, y, s),
        lambda x: objectives.softmax(x, y, sample_weight=s, backend="numpy")[0], z)
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(hess, fd_hess, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("alpha, gamma", FOCAL_OPTIONS)
def test_focal_reference_matches_finite_differences(alpha, gamma):
    z, y, s = binary_inputs(12, np.float64, rng_for("fd-focal", alpha, gamma), soft=False)
    grad, hess = objectives.focal(z, y, alpha=alpha, gamma=gamma, sample_weight=s,
                                  backend="numpy")
    fd_grad, fd_hess = fd_gradient_and_hessian(
        lambda x: per_row_focal(x, y, s, alpha, gamma),
        lambda x: objectives.focal(x, y, alpha=alpha, gamma=gamma, sample_weight=s,
                                   backend="numpy")[0], z)
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(hess, fd_hess, rtol=1e-6, atol=1e-8)


def test_focal_hessian_turns_negative_for_wrong_margins_and_min_hessian_floors_it():
    z, y = np.array([-8.0, 8.0]), np.array([1.0, 0.0])
    _, hess = objectives.focal(z, y, alpha=0.25, gamma=2.0)
    assert np.all(hess < 0)
    _, floored = objectives.focal(z, y, alpha=0.25, gamma=2.0, min_hessian=1e-6)
    assert np.all(floored == 1e-6)


# ------------------------------------------------------------------ mpmath

MARGINS = [-1e4, -700.0, -40.0, -5.0, -0.3, 0.0, 0.7, 6.0, 40.0, 700.0, 1e4]


def mp_softplus(x):
    """log(1 + exp(x)) in mpmath, written so that no digit of exp(-|x|) is lost."""
    import mpmath
    return x + mpmath.log1p(mpmath.exp(-x)) if x > 0 else mpmath.log1p(mpmath.exp(x))


def mp_derivatives(f, z):
    """f'(z) and f''(z) by mpmath's numerical differentiation, with enough
    digits that exp(−|z|) survives beside |z| down to float64's underflow
    (60 more than min(|z|, 800)/ln 10; below that the value is 0 in both
    dtypes)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(60 + int(min(abs(z), 800.0) / 2.3)):
        x = mpmath.mpf(z)
        return float(mpmath.diff(f, x, 1)), float(mpmath.diff(f, x, 2))


def assert_matches_mp(got, expected, dtype):
    """Relative agreement to a few ulps; values below the dtype's smallest
    normal number count as equal to anything as small."""
    tiny = np.finfo(dtype).tiny
    eps = np.finfo(dtype).eps
    if abs(expected) < tiny:
        assert abs(got) <= 4 * tiny, (got, expected)
    else:
        assert abs(got - expected) <= 16 * eps * abs(expected), (got, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("y", [0.0, 1.0, 0.3])
def test_logistic_matches_mpmath_at_extreme_margins(dtype, y):
    mpmath = pytest.importorskip("mpmath")
    z = np.array(MARGINS, dtype=dtype)
    yy = np.full_like(z, y)
    grad, hess = objectives.binary_logistic(z, yy)
    for i, zi in enumerate(z):
        exact_g, exact_h = mp_derivatives(lambda x: mp_softplus(x) - y * x, float(zi))
        assert_matches_mp(grad[i], exact_g, dtype)
        assert_matches_mp(hess[i], exact_h, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("y", [0.0, 1.0])
@pytest.mark.parametrize("alpha, gamma", FOCAL_OPTIONS)
def test_focal_matches_mpmath_at_extreme_margins(dtype, y, alpha, gamma):
    mpmath = pytest.importorskip("mpmath")
    a = 1 if alpha is None else (alpha if y == 1 else 1 - alpha)

    def loss(x):
        u = x if y == 1 else -x
        # (1 − p)^γ = σ(−u)^γ = exp(−γ softplus(u)); −log p = softplus(−u)
        return a * mpmath.exp(-gamma * mp_softplus(u)) * mp_softplus(-u)

    z = np.array(MARGINS, dtype=dtype)
    grad, hess = objectives.focal(z, np.full_like(z, y), alpha=alpha, gamma=gamma)
    for i, zi in enumerate(z):
        exact_g, exact_h = mp_derivatives(loss, float(zi))
        # a few ulps per operation of the longer Hessian formula
        tolerance = 64 * np.finfo(dtype).eps
        for got, exact in ((grad[i], exact_g), (hess[i], exact_h)):
            if abs(exact) < np.finfo(dtype).tiny:
                assert abs(got) <= 4 * np.finfo(dtype).tiny, (zi, got, exact)
            else:
                assert abs(got - exact) <= tolerance * abs(exact), (zi, got, exact)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_matches_mpmath_at_extreme_margins(dtype):
    mpmath = pytest.importorskip("mpmath")
    z = np.array([[1e4, 0.0, -1e4], [-40.0, 0.0, 40.0], [0.5, -0.25, 2.0]], dtype=dtype)
    labels = np.array([1, 2, 0])
    grad, hess = objectives.softmax(z, labels)
    with mpmath.workdps(60):
        for r in range(3):
            row = [mpmath.mpf(float(v)) for v in z[r]]
            total = mpmath.fsum(mpmath.exp(v) for v in row)
            for c in range(3):
                p = mpmath.exp(row[c]) / total
                # absolute: 1 − p is computed from a rounded p, as every library does
                assert abs(grad[r, c] - float(p - (c == labels[r]))) <= 4 * np.finfo(dtype).eps
                assert abs(hess[r, c] - float(p * (1 - p))) <= 4 * np.finfo(dtype).eps


# ------------------------------------------------------ Hessian conventions

def test_hessian_conventions_follow_the_library_sources():
    z, labels, _, s = softmax_inputs(50, 5, np.float64, rng_for("conventions"))
    z[0] = [60.0, -60.0, 0.0, 0.0, 0.0]      # p = 1, 0: XGBoost's floor applies
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    one_hot = np.eye(5)[labels]
    w = s[:, None]
    expected = {
        # src/objective/multiclass_obj.cc: fmaxf(2.0f * p * (1.0f - p) * weight, 1e-16f)
        "xgboost": np.maximum(2 * p * (1 - p) * w, 1e-16),
        # src/objective/multiclass_objective.hpp: factor_ * p * (1 - p) * w, K/(K-1)
        "lightgbm": 5 / 4 * p * (1 - p) * w,
        "exact": p * (1 - p) * w,
        "pseudo": np.abs(p - one_hot) * w,
    }
    for name, hess in expected.items():
        g, h = objectives.softmax(z, labels, sample_weight=s, hessian=name)
        np.testing.assert_allclose(g, (p - one_hot) * w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(h, hess, rtol=1e-12, atol=1e-300, err_msg=name)
    zb, yb, sb = binary_inputs(50, np.float64, rng_for("conventions-binary"), soft=False)
    zb[0] = 60.0
    pb = 1 / (1 + np.exp(-zb))
    # src/objective/logistic_obj.h: fmaxf(p * (1 - p), 1e-16f) * weight
    _, h = objectives.binary_logistic(zb, yb, sample_weight=sb, hessian="xgboost")
    np.testing.assert_allclose(h, np.maximum(pb * (1 - pb), 1e-16) * sb, rtol=1e-9)
    # src/objective/binary_objective.hpp: |r| (1 - |r|) * w with |r| = |p - y|
    _, h = objectives.binary_logistic(zb, yb, sample_weight=sb, hessian="lightgbm")
    r = np.abs(pb - yb)
    np.testing.assert_allclose(h, r * (1 - r) * sb, rtol=1e-7, atol=1e-15)  # 1 - p rounds


def test_min_hessian_replaces_the_convention_floor():
    z = np.array([[50.0, -50.0]])
    _, h = objectives.softmax(z, np.array([0]), hessian="xgboost", min_hessian=0.5,
                              sample_weight=np.array([2.0]))
    assert np.all(h == 0.5)                   # floored after the weight (XGBoost's order)
    _, h = objectives.softmax(z, np.array([0]), hessian="exact", min_hessian=0.5,
                              sample_weight=np.array([2.0]))
    assert np.all(h == 1.0)                   # floored, then weighted
    _, h = objectives.binary_logistic(np.array([-800.0]), np.array([0.0]))
    assert h[0] == 0.0
    _, h = objectives.binary_logistic(np.array([-800.0]), np.array([0.0]), hessian="xgboost")
    assert h[0] == 1e-16


# ------------------------------------------------------ kernels vs reference

def run(function, backend, *args, **kwargs):
    return function(*args, backend=backend, **kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hessian", objectives.HESSIANS)
@pytest.mark.parametrize("weighted", [False, True])
def test_logistic_backends_match_the_reference(backend, dtype, hessian, weighted):
    z, y, s = binary_inputs(5000, dtype, rng_for("logistic", dtype))
    z[:4] = [np.nan, np.inf, -np.inf, 1e4]
    s = s if weighted else None
    got = objectives.binary_logistic(z, y, sample_weight=s, hessian=hessian, backend=backend)
    expected = objectives.binary_logistic(z, y, sample_weight=s, hessian=hessian,
                                          backend="numpy")
    for g, e in zip(got, expected):
        assert g.dtype == dtype and g.shape == z.shape
        assert_close(g, e, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha, gamma", FOCAL_OPTIONS)
def test_focal_backends_match_the_reference(backend, dtype, alpha, gamma):
    z, y, s = binary_inputs(5000, dtype, rng_for("focal", dtype), soft=False)
    z[:4] = [np.nan, np.inf, -np.inf, -1e4]
    got = objectives.focal(z, y, alpha=alpha, gamma=gamma, sample_weight=s, backend=backend)
    expected = objectives.focal(z, y, alpha=alpha, gamma=gamma, sample_weight=s,
                                backend="numpy")
    for g, e in zip(got, expected):
        assert g.dtype == dtype
        assert_close(g, e, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hessian", objectives.HESSIANS)
@pytest.mark.parametrize("target", ["labels", "soft"])
@pytest.mark.parametrize("n_classes", [2, 10, 37])
def test_softmax_backends_match_the_reference(backend, dtype, hessian, target, n_classes):
    z, labels, soft, s = softmax_inputs(700, n_classes, dtype, rng_for("softmax", dtype, n_classes))
    z[0, 0], z[1, 1], z[2, :] = np.inf, np.nan, -np.inf     # limits and NaN rows (SPEC 1.7)
    z[3, 0], z[4, :] = 1e4, -1e4
    y = labels if target == "labels" else soft
    got = objectives.softmax(z, y, sample_weight=s, hessian=hessian, backend=backend)
    expected = objectives.softmax(z, y, sample_weight=s, hessian=hessian, backend="numpy")
    for g, e in zip(got, expected):
        assert g.dtype == dtype and g.shape == z.shape
        assert_close(g, e, dtype)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_layout_gives_the_bits_of_contiguous_operands(backend, dtype):
    rng = rng_for("layouts", dtype)
    z2, labels, soft, s = softmax_inputs(30, 6, dtype, rng)
    yb = (rng.random((30, 6)) < 0.5).astype(dtype)
    sb = rng.uniform(0.1, 2, (30, 6)).astype(dtype)
    cases = [
        (lambda z, y, s: objectives.binary_logistic(z, y, sample_weight=s, backend=backend),
         (z2, yb, sb)),
        (lambda z, y, s: objectives.focal(z, y, alpha=0.25, gamma=2.0, sample_weight=s,
                                          backend=backend), (z2, yb, sb)),
        (lambda z, y, s: objectives.softmax(z, y, sample_weight=s, backend=backend),
         (z2, soft, s)),
        (lambda z, y, s: objectives.softmax(z, y, sample_weight=s, backend=backend),
         (z2, labels, s)),
    ]
    for call, operands in cases:
        for position in range(3):
            for description, view in layouts(operands[position], broadcast=False):
                if description == "unaligned" and position == 1 and view.dtype.kind == "i":
                    continue
                args = list(operands)
                args[position] = view
                expected = call(*[np.ascontiguousarray(a) for a in args])
                got = call(*args)
                for g, e in zip(got, expected):
                    assert same_bits(g, e), (position, description)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_out_arrays_of_any_layout_receive_the_bits(backend, dtype):
    z, labels, _, s = softmax_inputs(300, 7, dtype, rng_for("out", dtype))
    expected = objectives.softmax(z, labels, sample_weight=s, backend=backend)
    # class-major (LightGBM's layout) and strided outputs
    grad = np.empty((7, 300), dtype).T
    hess = np.zeros((300, 14), dtype)[:, ::2]
    got = objectives.softmax(z, labels, sample_weight=s, out=(grad, hess), backend=backend)
    assert got[0] is grad and got[1] is hess
    assert np.array_equal(grad, expected[0]) and np.array_equal(hess, expected[1])
    zb = z[:, 0].copy()
    yb = (labels % 2).astype(dtype)
    expected = objectives.binary_logistic(zb, yb, backend=backend)
    out = (np.empty(600, dtype)[::2], np.empty(300, dtype))
    got = objectives.binary_logistic(zb, yb, out=out, backend=backend)
    assert got[0] is out[0] and same_bits(np.ascontiguousarray(out[0]), expected[0])


@pytest.mark.parametrize("backend", COMPILED)
def test_thread_counts_give_the_same_bits(backend):
    rng = rng_for("threads")
    z, labels, soft, s = softmax_inputs(40000, 10, np.float32, rng)
    zb, yb, sb = binary_inputs(300000, np.float32, rng)
    calls = [
        lambda t: objectives.softmax(z, labels, sample_weight=s, backend=backend, n_threads=t),
        lambda t: objectives.softmax(z, soft, hessian="xgboost", backend=backend, n_threads=t),
        lambda t: objectives.binary_logistic(zb, yb, sample_weight=sb, backend=backend,
                                             n_threads=t),
        lambda t: objectives.focal(zb, np.round(yb), alpha=0.25, gamma=2.0, backend=backend,
                                   n_threads=t),
    ]
    for call in calls:
        one, two = call(1), call(2)
        assert all(same_bits(a, b) for a, b in zip(one, two))


@pytest.mark.parametrize("backend", COMPILED)
def test_every_simd_variant_gives_the_same_bits(backend):
    module = _backends.module(backend)
    best = module.info()["simd"]
    rng = rng_for("simd")
    results = {}
    for dtype in DTYPES:
        z, labels, soft, s = softmax_inputs(2000, 10, dtype, rng)
        zb, yb, sb = binary_inputs(20000, dtype, rng)
        zb[:3] = [np.nan, np.inf, -1e4]
        calls = {
            "softmax-labels": lambda: objectives.softmax(z, labels, sample_weight=s,
                                                         hessian="lightgbm", backend=backend),
            "softmax-soft": lambda: objectives.softmax(z, soft, hessian="pseudo", backend=backend),
            "logistic": lambda: objectives.binary_logistic(zb, yb, sample_weight=sb,
                                                           backend=backend),
            "focal": lambda: objectives.focal(zb, np.round(yb), alpha=0.25, gamma=2.0,
                                              sample_weight=sb, backend=backend),
        }
        try:
            for variant in module.info()["simd_available"].split(","):
                module.set_simd(variant)
                for name, call in calls.items():
                    results.setdefault((dtype, name), []).append((variant, call()))
        finally:
            module.set_simd(best)
    for key, runs in results.items():
        first_variant, first = runs[0]
        for variant, got in runs[1:]:
            assert all(same_bits(a, b) for a, b in zip(first, got)), (key, first_variant, variant)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dtypes_of_the_result(backend):
    for dtype, expected in [(np.float16, np.float32), (np.int64, np.float64),
                            (np.float32, np.float32), (np.float64, np.float64)]:
        z = np.array([0, 1, -2], dtype=dtype)
        g, h = objectives.binary_logistic(z, np.array([1.0, 0.0, 1.0]), backend=backend)
        assert g.dtype == expected and h.dtype == expected
        g, h = objectives.softmax(z.reshape(1, 3), np.array([2]), backend=backend)
        assert g.dtype == expected and h.dtype == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_input(backend):
    g, h = objectives.binary_logistic(np.empty(0), np.empty(0), backend=backend)
    assert g.shape == h.shape == (0,)
    g, h = objectives.softmax(np.empty((0, 3)), np.empty(0, np.int64), backend=backend)
    assert g.shape == h.shape == (0, 3)


# ------------------------------------------------------------- bad input

def bad_calls():
    z = np.zeros(4)
    y = np.array([0.0, 1.0, 1.0, 0.0])
    zk = np.zeros((4, 3))
    labels = np.array([0, 1, 2, 1])
    return [
        ("mismatched shapes", lambda out: objectives.binary_logistic(z, y[:3], out=out),
         ValueError, "y: expected shape"),
        ("NaN target", lambda out: objectives.binary_logistic(z, [0, np.nan, 1, 0], out=out),
         ValueError, r"y: expected targets in \[0, 1\].*nan.*position 1"),
        ("target above 1", lambda out: objectives.binary_logistic(z, [0, 1, 2, 0], out=out),
         ValueError, r"y: expected targets in \[0, 1\]"),
        ("complex margins", lambda out: objectives.binary_logistic(z.astype(complex), y, out=out),
         TypeError, "raw"),
        ("string targets", lambda out: objectives.binary_logistic(z, ["a"] * 4, out=out),
         TypeError, "y"),
        ("negative weight", lambda out: objectives.binary_logistic(
            z, y, sample_weight=[1, -1, 1, 1], out=out), ValueError, "sample_weight"),
        ("weight shape", lambda out: objectives.binary_logistic(
            z, y, sample_weight=[1, 1], out=out), ValueError, "sample_weight: expected shape"),
        ("unknown hessian", lambda out: objectives.binary_logistic(z, y, hessian="newton",
                                                                   out=out),
         ValueError, "hessian: expected one of"),
        ("soft focal target", lambda out: objectives.focal(z, [0, 0.5, 1, 0], alpha=0.25,
                                                           gamma=2, out=out),
         ValueError, "targets 0 or 1"),
        ("negative gamma", lambda out: objectives.focal(z, y, alpha=0.25, gamma=-1, out=out),
         ValueError, "gamma"),
        ("alpha above 1", lambda out: objectives.focal(z, y, alpha=2.0, gamma=1, out=out),
         ValueError, "alpha"),
        ("NaN min_hessian", lambda out: objectives.binary_logistic(z, y, min_hessian=math.nan,
                                                                   out=out),
         ValueError, "min_hessian"),
    ], [
        ("label out of range", lambda out: objectives.softmax(zk, [0, 1, 3, 1], out=out),
         ValueError, r"y: expected class labels in \[0, 3\), got 3 at position 2"),
        ("negative label", lambda out: objectives.softmax(zk, [0, -1, 2, 1], out=out),
         ValueError, "got -1 at position 1"),
        ("float labels", lambda out: objectives.softmax(zk, labels.astype(float), out=out),
         ValueError, "convert labels to an integer dtype"),
        ("labels shape", lambda out: objectives.softmax(zk, labels[:2], out=out),
         ValueError, "y: integer labels must have"),
        ("NaN soft target", lambda out: objectives.softmax(
            zk, np.where(np.eye(4, 3) > 0, np.nan, 0.2), out=out), ValueError, "nan"),
        ("lightgbm with one class", lambda out: objectives.softmax(
            np.zeros((4, 1)), np.zeros(4, int), hessian="lightgbm", out=None),
         ValueError, "K >= 2"),
    ]


@pytest.mark.parametrize("case", range(18))
def test_bad_input_raises_and_writes_nothing(case):
    binary, multiclass = bad_calls()
    calls = binary + multiclass
    if case >= len(calls):
        pytest.skip("no such case")
    name, call, error, message = calls[case]
    shape = (4,) if case < len(binary) else (4, 3)
    dtype = np.float64
    out = (np.full(shape, 7.0, dtype), np.full(shape, 7.0, dtype))
    with pytest.raises(error, match=message):
        call(out if shape[-1] != 1 else None)
    assert np.all(out[0] == 7.0) and np.all(out[1] == 7.0), name


@pytest.mark.parametrize("out, message", [
    (np.zeros(4), "out: expected a pair"),
    ((np.zeros(4), np.zeros(3)), r"out\[1\] \(hess\): expected shape"),
    ((np.zeros(4, np.float32), np.zeros(4)), r"out\[0\] \(grad\): expected dtype"),
])
def test_bad_out_is_refused(out, message):
    with pytest.raises((TypeError, ValueError), match=message):
        objectives.binary_logistic(np.zeros(4), np.zeros(4), out=out)


def test_out_must_not_overlap_the_inputs_or_each_other():
    z, y = np.zeros(4), np.zeros(4)
    with pytest.raises(ValueError, match="overlap"):
        objectives.binary_logistic(z, y, out=(z, np.zeros(4)))
    shared = np.zeros(4)
    with pytest.raises(ValueError, match="must not overlap"):
        objectives.binary_logistic(z, y, out=(shared, shared))


def test_inputs_are_never_modified():
    z, labels, soft, s = softmax_inputs(50, 4, np.float32, rng_for("readonly"))
    for a in (z, labels, soft, s):
        a.flags.writeable = False
    objectives.softmax(z, labels, sample_weight=s)
    objectives.softmax(z, soft, sample_weight=s)
    objectives.binary_logistic(z, (soft > 0.5).astype(np.float32))


def test_kernels_of_the_reference_are_exported():
    for name in ("logistic_objective", "focal_objective", "softmax_objective_index",
                 "softmax_objective_soft"):
        assert callable(getattr(reference, name))


def test_docstring_examples_run_as_shown():
    import doctest
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(objectives, globs={"np": np})
    assert sum(len(t.examples) for t in tests) >= 6
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
