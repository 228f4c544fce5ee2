"""focal_loss and kl_div (SPEC §7 "More of the family").

* values and gradients against PyTorch: focal through the formula of
  ``torchvision.ops.sigmoid_focal_loss`` written in torch (torchvision does
  not install beside torch here), gradients by autograd; kl_div against
  ``torch.nn.functional.kl_div`` for every reduction and ``log_target``;
* mpmath at extreme and infinite logits (focal), finite differences (both);
* edge values of kl_div against what PyTorch gives, with the documented
  exceptions (a zero target probability gives 0, never 0·inf);
* memory layouts, dtypes, empty input, thread counts, ``grad_out``;
* the C block functions (ce_focal_block_*, ce_kl_div_block_*) against the
  NumPy reference on every SIMD variant, and the variants against each other;
* bad arguments raise errors naming them.
"""
import math
import warnings
import zlib

import numpy as np
import pytest

import crossent
from crossent import _reference as reference
from arrays import assert_same_as_contiguous, central_difference, layouts, random_values

BACKENDS = crossent.backends()

DTYPES = [np.float32, np.float64]
EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}
# Agreement with PyTorch (evaluated in float64 on the same values): a few
# units of the dtype's epsilon, relative to the largest entry.
RTOL = {np.float32: 2e-6, np.float64: 1e-12}
# (alpha, gamma): the default, no alpha weighting with gamma 0 (plain BCE),
# gamma below 1 (q^γ is steep at 0) and a non-integer gamma above 2.
FOCAL_OPTIONS = [(0.25, 2.0), (-1.0, 0.0), (0.75, 0.5), (0.4, 3.5)]
KL_REDUCTIONS = ["batchmean", "mean", "sum", "none"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def rng_for(*key):
    """A generator seeded by the test's parameters (stable across processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def focal_targets(shape, rng, dtype=np.float64):
    """0/1 labels with a third of the entries soft labels in (0, 1)."""
    y = rng.integers(0, 2, size=shape).astype(np.float64)
    soft = rng.random(shape) < 1 / 3
    y[soft] = rng.uniform(0.05, 0.95, size=int(soft.sum()))
    return y.astype(dtype)


def kl_inputs(shape, rng, dtype=np.float64, axis=-1):
    """log q (normalised along axis) and p (with a few zero entries)."""
    q = rng.uniform(0.05, 1.0, size=shape)
    q /= q.sum(axis=axis, keepdims=True)
    p = rng.uniform(0.0, 1.0, size=shape)
    p[rng.random(shape) < 0.15] = 0.0
    p /= np.maximum(p.sum(axis=axis, keepdims=True), 1e-300)
    return np.log(q).astype(dtype), p.astype(dtype)


def assert_close(ours, theirs, dtype, what):
    """rtol of the dtype, with an absolute slack of rtol x the largest entry
    (gradients and small losses cancel in PyTorch's formulas, not in ours)."""
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    scale = float(np.max(np.abs(theirs[np.isfinite(theirs)]), initial=0.0))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL[dtype], atol=RTOL[dtype] * scale,
                               equal_nan=True, err_msg=what)


# ================================================================ PyTorch

def torch_focal(torch, z, y, alpha, gamma, weight=None, sample_weight=None, reduction="mean"):
    """torchvision.ops.sigmoid_focal_loss's formula in float64, times weight,
    reduced as SPEC §1.5 (mean = Σ s·w·l / Σ s); (loss, ∂loss/∂z by autograd)."""
    import torch.nn.functional as F
    f64 = torch.float64
    zt = torch.tensor(np.asarray(z, np.float64), requires_grad=True)
    yt = torch.tensor(np.asarray(y, np.float64))
    p = torch.sigmoid(zt)
    ce = F.binary_cross_entropy_with_logits(zt, yt, reduction="none")
    p_t = p * yt + (1 - p) * (1 - yt)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * yt + (1 - alpha) * (1 - yt)) * loss
    if weight is not None:
        loss = loss * torch.tensor(weight, dtype=f64)
    s = (torch.ones_like(loss) if sample_weight is None
         else torch.tensor(sample_weight, dtype=f64).expand_as(loss))
    loss = loss * s
    if reduction == "sum":
        loss = loss.sum()
    elif reduction == "mean":
        loss = loss.sum() / s.sum()
    loss.sum().backward()
    return loss.detach().numpy(), zt.grad.numpy()


def torch_kl(torch, x, t, log_target, reduction, sample_weight=None, axis=-1):
    """torch.nn.functional.kl_div in float64 on the same values; with
    sample_weight (one per slice along axis) the reduction is built on its
    elementwise losses as the docstring of crossent.kl_div says."""
    import torch.nn.functional as F
    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    tt = torch.tensor(np.asarray(t, np.float64))
    if sample_weight is None:
        with warnings.catch_warnings():  # its note that "mean" is not "batchmean"
            warnings.simplefilter("ignore", UserWarning)
            loss = F.kl_div(xt, tt, reduction=reduction, log_target=log_target)
    else:
        s = torch.tensor(np.expand_dims(np.asarray(sample_weight, np.float64), axis))
        loss = F.kl_div(xt, tt, reduction="none", log_target=log_target) * s
        n_classes = x.shape[axis]
        if reduction == "batchmean":
            loss = loss.sum() / s.sum()
        elif reduction == "mean":
            loss = loss.sum() / (s.sum() * n_classes)
        elif reduction == "sum":
            loss = loss.sum()
    loss.sum().backward()
    return loss.detach().numpy(), xt.grad.numpy()


@pytest.mark.peers
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha, gamma", FOCAL_OPTIONS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_focal_matches_torchvision_formula(backend, torch, dtype, alpha, gamma, reduction):
    rng = rng_for("focal-torch", alpha, gamma, reduction)
    z = rng.normal(scale=3.0, size=(7, 6)).astype(dtype)
    y = focal_targets(z.shape, rng, dtype)
    loss, grad = crossent.focal_loss(z, y, alpha=alpha, gamma=gamma, reduction=reduction,
                                     return_grad=True, backend=backend)
    assert np.asarray(loss).dtype == dtype and grad.dtype == dtype
    their_loss, their_grad = torch_focal(torch, z, y, alpha, gamma, reduction=reduction)
    assert_close(loss, their_loss, dtype, "loss")
    assert_close(grad, their_grad, dtype, "gradient")


@pytest.mark.peers
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weights", ["weight", "sample_weight", "both"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_focal_weights_match_torch(backend, torch, dtype, weights, reduction):
    """weight rescales elements; the mean divides by Σ sample_weight (the
    element count without it), as for the other binary losses."""
    rng = rng_for("focal-weights", weights, reduction)
    z = rng.normal(scale=3.0, size=(5, 4)).astype(dtype)
    y = focal_targets(z.shape, rng, dtype)
    w = rng.uniform(0.3, 2.0, size=(1, 4)) if weights in ("weight", "both") else None
    s = rng.uniform(0.3, 2.0, size=(5, 1)) if weights in ("sample_weight", "both") else None
    ours = crossent.focal_loss(z, y, weight=w, sample_weight=s, reduction=reduction,
                               return_grad=True, backend=backend)
    w_d = None if w is None else w.astype(dtype)  # the weights as the kernel sees them
    s_d = None if s is None else s.astype(dtype)
    theirs = torch_focal(torch, z, y, 0.25, 2.0, w_d, s_d, reduction)
    assert_close(ours[0], theirs[0], dtype, "loss")
    assert_close(ours[1], theirs[1], dtype, "gradient")


@pytest.mark.peers
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
def test_kl_div_matches_torch(backend, torch, dtype, log_target, reduction):
    """Zero target probabilities included (log_target=False: PyTorch's xlogy
    gives 0 there; with log_target, t = -inf is test_kl_div_edge_values')."""
    rng = rng_for("kl-torch", log_target, reduction)
    x, p = kl_inputs((6, 5), rng, dtype)
    t = np.log(np.maximum(p, dtype(0.01))) if log_target else p
    ours = crossent.kl_div(x, t, log_target=log_target, reduction=reduction, return_grad=True,
                           backend=backend)
    assert np.asarray(ours[0]).dtype == dtype and ours[1].dtype == dtype
    their_loss, their_grad = torch_kl(torch, x, t, log_target, reduction)
    assert_close(ours[0], their_loss, dtype, "loss")
    assert_close(ours[1], their_grad, dtype, "gradient")


@pytest.mark.peers
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
def test_kl_div_sample_weight_matches_torch(backend, torch, log_target, reduction):
    rng = rng_for("kl-sample-weight", log_target, reduction)
    x, p = kl_inputs((6, 5), rng)
    p = np.maximum(p, 0.01)
    t = np.log(p) if log_target else p
    s = rng.uniform(0.3, 2.0, size=6)
    ours = crossent.kl_div(x, t, log_target=log_target, sample_weight=s, reduction=reduction,
                           return_grad=True, backend=backend)
    theirs = torch_kl(torch, x, t, log_target, reduction, sample_weight=s)
    assert_close(ours[0], theirs[0], np.float64, "loss")
    assert_close(ours[1], theirs[1], np.float64, "gradient")


@pytest.mark.peers
@pytest.mark.parametrize("shape, axis", [((4, 6), 0), ((3, 5, 4), 1), ((3, 4, 5), -1)])
@pytest.mark.parametrize("weighted", [False, True])
def test_kl_div_batchmean_divides_by_the_samples_along_axis(backend, torch, shape, axis,
                                                            weighted):
    """A sample is a slice along ``axis``: batchmean = Σ l / (element count / C)
    (PyTorch's Σ l / N for 2-D input with the classes last), "mean" = Σ l / count."""
    rng = rng_for("batchmean", shape, axis, weighted)
    x, p = kl_inputs(shape, rng, axis=axis)
    sample_shape = np.delete(np.array(shape), axis)
    s = rng.uniform(0.3, 2.0, size=tuple(sample_shape)) if weighted else None
    for reduction in ("batchmean", "mean"):
        ours = crossent.kl_div(x, p, axis=axis, sample_weight=s, reduction=reduction,
                               return_grad=True, backend=backend)
        theirs = torch_kl(torch, x, p, False, reduction, sample_weight=s, axis=axis)
        if s is None:
            total_loss, total_grad = torch_kl(torch, x, p, False, "sum")
            divisor = np.prod(sample_shape) if reduction == "batchmean" else x.size
            theirs = (total_loss / divisor, total_grad / divisor)
        assert_close(ours[0], theirs[0], np.float64, f"{reduction} loss")
        assert_close(ours[1], theirs[1], np.float64, f"{reduction} gradient")


@pytest.mark.peers
def test_kl_div_batchmean_is_torchs_for_2d_input(backend, torch):
    import torch.nn.functional as F
    x, p = kl_inputs((8, 3), rng_for("batchmean-2d"))
    ours = crossent.kl_div(x, p, backend=backend)
    theirs = F.kl_div(torch.tensor(x), torch.tensor(p), reduction="batchmean").item()
    np.testing.assert_allclose(ours, theirs, rtol=1e-14)


# ------------------------------------------------------ kl_div edge values

INF, NAN = math.inf, math.nan
EDGE_X = [-INF, -1.5, 0.0, 1.5, INF, NAN]


@pytest.mark.peers
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_edge_values_follow_torch(backend, torch, log_target):
    """Every pair of special x and t against PyTorch's elementwise value and
    gradient.  PyTorch (2.13) gives, with log_target=False, l = xlogy(t, t) -
    t·x: NaN for a negative or NaN t, NaN for NaN x, inf for x = -inf, -inf
    for x = +inf (t > 0), 0 for t = 0 and finite x, and NaN for t = 0 with x =
    ±inf (0·inf); with log_target=True, l = exp(t)·(t - x): NaN for t = -inf.
    The gradient is -t (-exp(t)) whatever x is, NaN x included.

    crossent follows it except where a limit exists that PyTorch misses
    (SPEC §1.7): a target probability of exactly 0 (t = 0, or t = -inf with
    log_target) gives 0 for every x but NaN, and t = +inf with finite x
    gives the limit +inf of t(log t - x) (PyTorch: inf - inf = NaN)."""
    if log_target:
        edge_t = [-INF, -800.0, -2.0, 0.0, 1.5, INF, NAN]
    else:
        edge_t = [0.0, -0.0, 0.4, 1.0, -0.5, INF, NAN]
    x, t = (np.array(v, np.float64) for v in zip(*[(a, b) for a in EDGE_X for b in edge_t]))
    loss, grad = crossent.kl_div(x, t, log_target=log_target, reduction="none",
                                 return_grad=True, backend=backend)
    their_loss, their_grad = torch_kl(torch, x, t, log_target, "none")
    p = np.exp(t) if log_target else t
    expected = their_loss.copy()
    exactly_zero = (t == -INF) if log_target else (t == 0)
    expected[exactly_zero & ~np.isnan(x)] = 0.0
    if not log_target:
        expected[(t == INF) & np.isfinite(x)] = INF
    # p(log p - x) and PyTorch's xlogy(p, p) - p·x round differently
    np.testing.assert_allclose(loss, expected, rtol=4 * EPS[np.float64], atol=0, equal_nan=True)
    np.testing.assert_array_equal(grad, their_grad)
    np.testing.assert_array_equal(grad, -p)


def test_kl_div_an_underflowing_target_is_not_exactly_zero(backend):
    """exp(-800) = 0 in float64, but the probability is not 0: against log q
    = -inf the true value is +inf, so crossent keeps PyTorch's NaN (0·inf)
    rather than a silently wrong 0; against a finite log q it is 0."""
    loss = crossent.kl_div(np.array([-INF, -3.0]), np.array([-800.0, -800.0]),
                           log_target=True, reduction="none", backend=backend)
    assert np.isnan(loss[0]) and loss[1] == 0


# ================================================================ mpmath

try:
    import mpmath
except ImportError:
    mpmath = None
needs_mpmath = pytest.mark.skipif(mpmath is None, reason="mpmath is not installed")

EXTREME_LOGITS = [-1e4, -709.5, -88.7, -37.0, -33.3, -18.0, -2.0, -1e-30, 0.0, 1e-30, 0.5,
                  2.0, 15.0, 17.0, 33.3, 37.0, 88.7, 709.5, 1e4]


def focal_exact(z, y, alpha, gamma):
    """(loss, gradient, log q) at 60 digits, from the input's binary value."""
    with mpmath.workdps(60):
        z, y = mpmath.mpf(float(z)), mpmath.mpf(float(y))
        s, s_minus = 1 / (1 + mpmath.exp(-z)), 1 / (1 + mpmath.exp(z))
        ce = y * mpmath.log1p(mpmath.exp(-z)) + (1 - y) * mpmath.log1p(mpmath.exp(z))
        q = (1 - y) * s + y * s_minus
        alpha_t = alpha * y + (1 - alpha) * (1 - y) if alpha >= 0 else mpmath.mpf(1)
        power = q ** gamma
        loss = alpha_t * ce * power
        # σ(z) - y as (1 - y)σ(z) - yσ(-z): 60 digits do not hold 1 - σ(709.5)
        sigmoid_minus_y = (1 - y) * s - y * s_minus
        grad = alpha_t * power * (sigmoid_minus_y + gamma * (1 - 2 * y) * ce * s * s_minus / q)
        return loss, grad, mpmath.log(q)


def ulps_off(got, exact_value, dtype):
    """|got - exact| in ulps of dtype at |exact| (the ulp of an underflowing
    value is the smallest subnormal, so a value that rounds to 0 is 0 off)."""
    got = float(got)
    if np.isinf(got) or mpmath.isinf(exact_value):
        return 0.0 if got == exact_value else math.inf
    magnitude = abs(exact_value)
    largest = np.finfo(dtype).max
    ulp = np.spacing(dtype(float(magnitude)) if magnitude < largest else largest)
    return float(abs(mpmath.mpf(got) - exact_value) / mpmath.mpf(float(ulp)))


def focal_implementations():
    """(name, fn(z, y, alpha, gamma) -> (losses, grad)) for every backend of
    BACKENDS and every SIMD variant of the C block function."""
    impls = [(name, lambda z, y, a, g, name=name: crossent.focal_loss(
        z, y, alpha=a, gamma=g, reduction="none", return_grad=True, backend=name))
        for name in BACKENDS]
    try:
        from crossent import _primitives as P
    except ImportError:
        return impls
    impls += [(f"ce_focal_block/{v}", lambda z, y, a, g, v=v: P.focal_block(v, z, y, alpha=a,
                                                                              gamma=g))
              for v in P.available()]
    return impls


FOCAL_IMPLS = focal_implementations()
# ulps of the exact value allowed per unit of the condition 1 + γ|log q| of
# q^γ = exp(γ·log q) (docs/math.md): log q is accurate to an ulp of its own
# magnitude, and exp turns that absolute error into a relative one γ times as
# large.
MAX_ULPS = 8


@needs_mpmath
@pytest.mark.parametrize("impl", [name for name, _ in FOCAL_IMPLS])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label", [0.0, 1.0])
@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.25, 0.5), (-1.0, 0.0), (0.9, 4.0)])
def test_focal_ulps_at_extreme_logits(impl, dtype, label, alpha, gamma):
    run = dict(FOCAL_IMPLS)[impl]
    z = np.array(EXTREME_LOGITS, dtype)
    y = np.full_like(z, label)
    loss, grad = run(z, y, alpha, gamma)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    for zi, li, gi in zip(z, loss, grad):
        exact_loss, exact_grad, log_q = focal_exact(zi, label, alpha, gamma)
        bound = MAX_ULPS * (1 + gamma * float(abs(log_q)))
        assert ulps_off(li, exact_loss, dtype) <= bound, (zi, li, exact_loss)
        assert ulps_off(gi, exact_grad, dtype) <= bound, (zi, gi, exact_grad)


@pytest.mark.parametrize("impl", [name for name, _ in FOCAL_IMPLS])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_infinite_logits_give_the_limit(impl, dtype, gamma):
    """A right infinite logit: loss 0, gradient 0.  A wrong one: loss inf,
    gradient α_t with the sign of z.  A soft label y at z = ±inf: loss inf,
    gradient ±α_t·q^γ·q with q = 1 - y (+inf) or y (-inf).  NaN stays NaN."""
    run, alpha = dict(FOCAL_IMPLS)[impl], 0.25
    z = np.array([INF, -INF, INF, -INF, INF, -INF, NAN, NAN], dtype)
    y = np.array([1, 0, 0, 1, 0.3, 0.3, 1, 0.5], dtype)
    loss, grad = run(z, y, alpha, gamma)
    soft_alpha_t = dtype(alpha * 0.3 + 0.75 * 0.7)
    soft_grad_pos = soft_alpha_t * dtype(0.7) ** dtype(gamma) * dtype(0.7)
    soft_grad_neg = -soft_alpha_t * dtype(0.3) ** dtype(gamma) * dtype(0.3)
    np.testing.assert_array_equal(loss[:6], [0, 0, INF, INF, INF, INF])
    np.testing.assert_array_equal(grad[:4], [0, 0, 0.75, -0.25])
    np.testing.assert_allclose(grad[4:6], [soft_grad_pos, soft_grad_neg], rtol=8 * EPS[dtype])
    assert np.all(np.isnan(loss[6:])) and np.all(np.isnan(grad[6:]))


# ================================================================ gradients

@pytest.mark.parametrize("alpha, gamma", FOCAL_OPTIONS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_focal_gradient_matches_finite_differences(backend, alpha, gamma, reduction):
    rng = rng_for("focal-fd", alpha, gamma, reduction)
    z = rng.normal(scale=2.0, size=(3, 5))
    y = focal_targets(z.shape, rng)
    w, s = rng.uniform(0.5, 2.0, size=(1, 5)), rng.uniform(0.5, 2.0, size=(3, 1))
    kwargs = dict(alpha=alpha, gamma=gamma, weight=w, sample_weight=s, reduction=reduction,
                  backend=backend)
    _, grad = crossent.focal_loss(z, y, return_grad=True, **kwargs)
    numeric = central_difference(lambda v: float(crossent.focal_loss(v, y, **kwargs)), z)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", KL_REDUCTIONS[:3])
def test_kl_div_gradient_matches_finite_differences(backend, log_target, reduction):
    rng = rng_for("kl-fd", log_target, reduction)
    x, p = kl_inputs((4, 3, 5), rng, axis=1)
    with np.errstate(divide="ignore"):
        t = np.log(p) if log_target else p
    kwargs = dict(log_target=log_target, axis=1, sample_weight=rng.uniform(0.5, 2, (4, 5)),
                  reduction=reduction, backend=backend)
    _, grad = crossent.kl_div(x, t, return_grad=True, **kwargs)
    numeric = central_difference(lambda v: float(crossent.kl_div(v, t, **kwargs)), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-10)


def test_reduction_none_returns_the_gradient_of_the_sum(backend):
    rng = rng_for("none-grad")
    z = rng.normal(size=(4, 3))
    y = focal_targets(z.shape, rng)
    _, grad_none = crossent.focal_loss(z, y, reduction="none", return_grad=True, backend=backend)
    _, grad_sum = crossent.focal_loss(z, y, reduction="sum", return_grad=True, backend=backend)
    np.testing.assert_array_equal(grad_none, grad_sum)
    x, p = kl_inputs((4, 3), rng)
    _, grad_none = crossent.kl_div(x, p, reduction="none", return_grad=True, backend=backend)
    _, grad_sum = crossent.kl_div(x, p, reduction="sum", return_grad=True, backend=backend)
    np.testing.assert_array_equal(grad_none, grad_sum)


# ================================================================ layouts, dtypes, edges

def focal_call(backend, z, y, **kwargs):
    return crossent.focal_loss(z, y, reduction="none", return_grad=True, backend=backend,
                               **kwargs)


def kl_call(backend, x, p, **kwargs):
    return crossent.kl_div(x, p, reduction="none", return_grad=True, backend=backend, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_focal_layouts_give_the_contiguous_result(backend, dtype):
    """SPEC §1.1: strided, Fortran, negative-stride, broadcast, unaligned and
    read-only views of z, y and sample_weight."""
    rng = rng_for("focal-layouts", dtype)
    z = random_values((6, 5), dtype, "logits", rng)
    y = focal_targets(z.shape, rng, dtype)
    s = random_values((6, 5), dtype, "positive", rng)
    for which in ("z", "y", "sample_weight"):
        base = {"z": z, "y": y, "sample_weight": s}
        for description, view in layouts(base[which]):
            args = {**base, which: view}
            expected_args = {k: np.ascontiguousarray(v) for k, v in args.items()}
            got = focal_call(backend, args["z"], args["y"], sample_weight=args["sample_weight"])
            expected = focal_call(backend, expected_args["z"], expected_args["y"],
                                  sample_weight=expected_args["sample_weight"])
            for g, e, what in zip(got, expected, ("loss", "gradient")):
                assert_same_as_contiguous(backend, g, e, f"{which} {description} {what}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_kl_div_layouts_give_the_contiguous_result(backend, dtype, axis):
    rng = rng_for("kl-layouts", dtype, axis)
    x, p = kl_inputs((3, 4, 5), rng, dtype, axis=axis)
    s = random_values(np.delete(np.array(x.shape), axis), dtype, "positive", rng)
    for which in ("x", "p", "sample_weight"):
        base = {"x": x, "p": p, "sample_weight": s}
        for description, view in layouts(base[which]):
            args = {**base, which: view}
            expected_args = {k: np.ascontiguousarray(v) for k, v in args.items()}
            got = kl_call(backend, args["x"], args["p"], axis=axis,
                          sample_weight=args["sample_weight"])
            expected = kl_call(backend, expected_args["x"], expected_args["p"], axis=axis,
                               sample_weight=expected_args["sample_weight"])
            for g, e, what in zip(got, expected, ("loss", "gradient")):
                assert_same_as_contiguous(backend, g, e, f"{which} {description} {what}")


@pytest.mark.parametrize("in_dtype, out_dtype", [(np.float16, np.float32), (np.float32, np.float32),
                                                 (np.float64, np.float64), (np.int32, np.float64),
                                                 (np.bool_, np.float64)])
def test_dtypes(backend, in_dtype, out_dtype):
    """SPEC §1.2, and the result is that of the predictions upcast exactly."""
    rng = rng_for("dtypes", np.dtype(in_dtype).name)
    z = random_values((4, 3), in_dtype, "logits", rng)
    y = focal_targets(z.shape, rng)
    loss, grad = crossent.focal_loss(z, y, return_grad=True, backend=backend)
    up_loss, up_grad = crossent.focal_loss(z.astype(out_dtype), y, return_grad=True,
                                           backend=backend)
    assert np.asarray(loss).dtype == out_dtype and grad.dtype == out_dtype
    assert loss == up_loss
    np.testing.assert_array_equal(grad, up_grad)
    p = random_values((4, 3), np.float64, "simplex", rng)
    loss, grad = crossent.kl_div(z, p, return_grad=True, backend=backend)
    assert np.asarray(loss).dtype == out_dtype and grad.dtype == out_dtype


@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0)])
def test_empty_input(backend, shape):
    """SPEC §1.8: "sum" 0, any mean NaN, "none" an empty array; no warning."""
    z = np.zeros(shape)
    for reduction, check in (("sum", lambda v: v == 0), ("mean", np.isnan)):
        assert check(crossent.focal_loss(z, z, reduction=reduction, backend=backend))
    assert crossent.focal_loss(z, z, reduction="none", backend=backend).shape == shape
    if len(shape) == 1:
        return
    for reduction, check in (("sum", lambda v: v == 0), ("mean", np.isnan),
                             ("batchmean", np.isnan)):
        assert check(crossent.kl_div(z, z, reduction=reduction, backend=backend))
    assert crossent.kl_div(z, z, reduction="none", backend=backend).shape == shape


def test_results_do_not_depend_on_n_threads(backend):
    """Large enough to run on several threads in the compiled backends."""
    rng = rng_for("threads")
    z = rng.normal(scale=3.0, size=(300, 200))
    y = focal_targets(z.shape, rng)
    x, p = kl_inputs(z.shape, rng)
    for call, args in ((crossent.focal_loss, (z, y)), (crossent.kl_div, (x, p))):
        one = call(*args, return_grad=True, n_threads=1, backend=backend)
        two = call(*args, return_grad=True, n_threads=2, backend=backend)
        assert one[0] == two[0]
        np.testing.assert_array_equal(one[1], two[1])


def test_grad_out_is_filled_and_inputs_are_not_modified(backend):
    rng = rng_for("grad-out")
    z = rng.normal(size=(5, 4))
    y = focal_targets(z.shape, rng)
    x, p = kl_inputs(z.shape, rng)
    copies = [a.copy() for a in (z, y, x, p)]
    for call, args in ((crossent.focal_loss, (z, y)), (crossent.kl_div, (x, p))):
        out = np.full(z.shape, np.nan)
        loss, grad = call(*args, return_grad=True, grad_out=out, backend=backend)
        assert grad is out
        np.testing.assert_array_equal(out, call(*args, return_grad=True, backend=backend)[1])
    for a, b in zip((z, y, x, p), copies):
        np.testing.assert_array_equal(a, b)


def test_focal_gamma_zero_is_alpha_weighted_bce(backend):
    rng = rng_for("gamma-zero")
    z = rng.normal(scale=3.0, size=20)
    y = focal_targets(z.shape, rng)
    alpha_t = 0.3 * y + 0.7 * (1 - y)
    ours = crossent.focal_loss(z, y, alpha=0.3, gamma=0.0, reduction="none", backend=backend)
    bce = crossent.binary_cross_entropy_with_logits(z, y, weight=alpha_t, reduction="none",
                                                    backend=backend)
    np.testing.assert_allclose(ours, bce, rtol=1e-14, atol=1e-300)


# ================================================================ the C block functions

P = None
try:
    from crossent import _primitives as P
except ImportError:
    pass
VARIANTS = P.available() if P is not None else []
needs_primitives = pytest.mark.skipif(P is None, reason="crossent._primitives is not built")


def _softplus(v):
    with np.errstate(over="ignore"):
        return np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v)))


def focal_scales(z, y, w, s, alpha, gamma, grad_scale):
    """Per-element magnitudes against which two implementations of the focal
    loss are compared: each term's size times the condition 1 + γ|log q| of
    q^γ = exp(γ·log q), in float64 (docs/math.md §8)."""
    z, y = z.astype(np.float64), y.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sig, sig_minus = 1 / (1 + np.exp(-z)), 1 / (1 + np.exp(z))
        ce = (np.where(y == 0, 0, y * _softplus(-z)) + np.where(y == 1, 0, (1 - y) * _softplus(z)))
        q = (1 - y) * sig + y * sig_minus
        log_q = np.where(y == 1, -_softplus(z), np.where(y == 0, -_softplus(-z), np.log(q)))
        ratio = np.where(y == 1, sig, np.where(y == 0, sig_minus, sig * sig_minus / q))
        power = np.exp(gamma * log_q) if gamma else np.ones_like(z)
        # log q = -inf (z = ±inf): q^γ is exactly 0 (or 1 for γ = 0) in both
        condition = np.where(np.isinf(log_q), 1, 1 + gamma * np.abs(log_q))
        alpha_t = np.abs(alpha * y + (1 - alpha) * (1 - y)) if alpha >= 0 else 1.0
        weights = np.abs(w * s)
        modulator_term = np.where(ratio == 0, 0, gamma * np.abs(1 - 2 * y) * ce * ratio)
        loss = alpha_t * ce * power * condition * weights
        grad = alpha_t * power * (q + modulator_term) * condition * weights * abs(grad_scale)
    return loss, grad


def assert_within(got, expected, scale, dtype, what, ulps=16):
    """Equal where the reference is not finite; within ulps x eps x scale
    elsewhere (and ulps of the subnormal spacing, where results underflow)."""
    special = ~np.isfinite(expected)
    np.testing.assert_array_equal(got[special], expected[special], err_msg=what)
    error = np.abs(got[~special].astype(np.float64) - expected[~special])
    allowed = ulps * (EPS[dtype] * scale[~special] + float(np.finfo(dtype).smallest_subnormal))
    bad = np.flatnonzero(~(error <= allowed))
    assert bad.size == 0, f"{what}: {bad.size} entries off, e.g. got {got[~special][bad[:3]]}, " \
                          f"want {expected[~special][bad[:3]]}"


def block_inputs(dtype, rng, n=1037):
    """Logits at several scales with the specials in, mixed 0/1 and soft labels."""
    z = rng.normal(scale=rng.choice([1.0, 6.0, 40.0], size=n))
    z[:10] = [INF, -INF, NAN, 0.0, 1e4, -1e4, 88.7, -88.7, 30.0, -30.0]
    y = focal_targets(n, rng)
    y[:10] = [1, 1, 1, 0, 1, 1, 0, 0, 0.5, 0.5]
    return z.astype(dtype), y.astype(dtype)


def reference_block(kernel, *args, dtype):
    """Run a reference kernel on 1-D operands as a (1, n) block; (loss, grad)."""
    first = np.asarray(args[0])
    loss = np.empty((1, first.size), dtype)
    grad = np.empty((1, first.size), dtype)
    rows = [None if a is None else np.asarray(a, dtype).reshape(1, -1) if isinstance(a, np.ndarray)
            else a for a in args]
    getattr(reference, kernel)(*rows[:-1], loss, grad, rows[-1], 1, 0.0)
    return loss[0], grad[0]


@needs_primitives
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha, gamma", FOCAL_OPTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_block_matches_the_reference(dtype, alpha, gamma, weighted):
    rng = rng_for("focal-block", dtype, alpha, gamma, weighted)
    z, y = block_inputs(dtype, rng)
    w = s = None
    if weighted:
        w, s = (rng.uniform(0.5, 2.0, z.size).astype(dtype) for _ in range(2))
    expected = reference_block("focal", z, y, w, s, alpha, gamma, 0.3, dtype=dtype)
    scales = focal_scales(z, y, 1 if w is None else w, 1 if s is None else s, alpha, gamma, 0.3)
    baseline = None
    for variant in VARIANTS:
        loss, grad = P.focal_block(variant, z, y, w=w, s=s, alpha=alpha, gamma=gamma,
                                   grad_scale=0.3)
        assert_within(loss, expected[0], scales[0], dtype, f"{variant} loss")
        assert_within(grad, expected[1], scales[1], dtype, f"{variant} gradient")
        no_grad_loss, none = P.focal_block(variant, z, y, w=w, s=s, alpha=alpha, gamma=gamma,
                                           with_grad=False)
        assert none is None
        np.testing.assert_array_equal(no_grad_loss, loss)
        if baseline is None:
            baseline = (loss, grad)
        assert loss.tobytes() == baseline[0].tobytes(), f"{variant} loss bits"
        assert grad.tobytes() == baseline[1].tobytes(), f"{variant} gradient bits"


@needs_primitives
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_kl_div_block_matches_the_reference(dtype, log_target, weighted):
    rng = rng_for("kl-block", dtype, log_target, weighted)
    n = 1037
    x, p = kl_inputs(n, rng)
    x[:6] = [-INF, INF, NAN, -INF, 0.0, -2.0]
    p[:6] = [0.0, 0.0, 0.0, 0.5, -0.5, NAN]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.log(p) if log_target else p
    x, t = x.astype(dtype), t.astype(dtype)
    w = s = None
    if weighted:
        w, s = (rng.uniform(0.5, 2.0, n).astype(dtype) for _ in range(2))
    expected = reference_block("kl_div", x, t, w, s, log_target, 0.3, dtype=dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p64 = np.exp(t.astype(np.float64)) if log_target else t.astype(np.float64)
        log_p = t.astype(np.float64) if log_target else np.log(p64)
        weights = np.abs((1 if w is None else w) * (1 if s is None else s))
        # a zero probability gives exactly 0 in both
        loss_scale = np.where(p64 == 0, 0, np.abs(p64) * (np.abs(log_p) + np.abs(x)) * weights)
    grad_scale = np.abs(p64) * weights * 0.3
    baseline = None
    for variant in VARIANTS:
        loss, grad = P.kl_div_block(variant, x, t, w=w, s=s, log_target=log_target,
                                    grad_scale=0.3)
        assert_within(loss, expected[0], loss_scale, dtype, f"{variant} loss", ulps=8)
        assert_within(grad, expected[1], grad_scale, dtype, f"{variant} gradient", ulps=8)
        if baseline is None:
            baseline = (loss, grad)
        assert loss.tobytes() == baseline[0].tobytes(), f"{variant} loss bits"
        assert grad.tobytes() == baseline[1].tobytes(), f"{variant} gradient bits"


# ================================================================ errors

GOOD_Z = np.zeros((2, 3))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(y=np.zeros((2, 2))), ValueError, r"target: expected shape \(2, 3\)"),
    (dict(y=np.full((2, 3), 1.5)), ValueError, r"y: expected probabilities in \[0, 1\], got 1.5"),
    (dict(alpha="0.25"), TypeError, "alpha: expected a finite float, got str"),
    (dict(alpha=None), TypeError, "alpha: expected a finite float, got NoneType"),
    (dict(alpha=True), TypeError, "alpha: expected a finite float, got bool"),
    (dict(alpha=1j), TypeError, "alpha: expected a finite float, got complex"),
    (dict(alpha=math.nan), ValueError, "alpha: expected a finite float, got nan"),
    (dict(gamma=-0.5), ValueError, "gamma: expected a finite float >= 0, got -0.5"),
    (dict(gamma=math.inf), ValueError, "gamma: expected a finite float >= 0, got inf"),
    (dict(gamma="2"), TypeError, "gamma: expected a finite float >= 0, got str"),
    (dict(gamma=np.array([2.0])), TypeError, "gamma: expected a finite float >= 0, got ndarray"),
    (dict(reduction="batchmean"), ValueError, "reduction: expected one of 'mean', 'sum', 'none'"),
    (dict(weight=np.ones(4)), ValueError, r"weight: expected a shape broadcastable to \(2, 3\)"),
    (dict(sample_weight=np.ones((3, 1))), ValueError,
     "sample_weight: expected a shape broadcastable"),
    (dict(z=np.zeros((2, 3), complex)), TypeError, "z: expected a real floating"),
])
def test_focal_bad_arguments(backend, kwargs, error, message):
    args = {"z": GOOD_Z, "y": np.zeros((2, 3)), **kwargs}
    with pytest.raises(error, match=message):
        crossent.focal_loss(args.pop("z"), args.pop("y"), backend=backend, **args)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(p=np.zeros((2, 2))), ValueError, r"p: expected shape \(2, 3\)"),
    (dict(reduction="average"), ValueError,
     "reduction: expected one of 'batchmean', 'mean', 'sum', 'none', got 'average'"),
    (dict(reduction=None), ValueError, "reduction: expected one of"),
    (dict(log_target=1), TypeError, "log_target: expected a bool, got int"),
    (dict(log_target="yes"), TypeError, "log_target: expected a bool, got str"),
    (dict(axis=2), ValueError, r"axis: expected an int in \[-2, 1\]"),
    (dict(axis=1.0), TypeError, "axis: expected an int, got float"),
    (dict(log_q=np.float64(0.0), p=np.float64(0.0)), ValueError,
     "log_q: expected an array with a class axis"),
    (dict(sample_weight=np.ones((2, 3))), ValueError,
     r"sample_weight: expected a shape broadcastable to \(2,\)"),
    (dict(log_q=np.zeros((2, 3), complex)), TypeError, "log_q: expected a real floating"),
    (dict(p=np.array([["a"] * 3] * 2)), TypeError, "p: expected a real floating"),
])
def test_kl_div_bad_arguments(backend, kwargs, error, message):
    args = {"log_q": GOOD_Z, "p": np.zeros((2, 3)), **kwargs}
    with pytest.raises(error, match=message):
        crossent.kl_div(args.pop("log_q"), args.pop("p"), backend=backend, **args)


def test_both_are_public(backend):
    assert "focal_loss" in crossent.__all__ and "kl_div" in crossent.__all__
    from crossent import _api
    assert {"focal_loss", "kl_div"} <= set(_api.LOSSES)
