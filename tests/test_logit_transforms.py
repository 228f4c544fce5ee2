"""cross_entropy's z_loss (PaLM: + z_loss·lse² per sample) and softcap
(Gemma 2: the logits replaced by softcap·tanh(z/softcap)), SPEC §7.

* values and gradients against the formulas written in torch, gradients by
  autograd, for index and soft targets, class and sample weights,
  ignore_index, label smoothing and every reduction;
* finite differences; every backend against the NumPy reference;
  float32/float64; thread counts; every SIMD variant gives the same bits;
* with both off, the plain kernels run (the same bits as without the keywords);
* bad values raise errors naming the argument.
"""
import numpy as np
import pytest

import crossent
from crossent import _reference as reference
from arrays import central_difference

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 3e-5, np.float64: 1e-11}
OPTIONS = [(1e-2, None), (0.0, 5.0), (3e-3, 2.0)]
REDUCTIONS = ["mean", "sum", "none"]


def _torch_formula(torch, z, target, *, weight, sample_weight, ignore_index, label_smoothing,
                   z_loss, softcap, reduction):
    """The loss and ∂loss/∂z from the formulas in torch (float64, autograd).

    Each sample's loss is the cross-entropy of the capped logits plus
    z_loss·w·lse², w the sample's weight in the mean (its class weight for
    an index target, 1 for soft targets), times its sample weight."""
    F = torch.nn.functional
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    v = softcap * torch.tanh(zt / softcap) if softcap else zt
    w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    soft = np.issubdtype(np.asarray(target).dtype, np.floating)
    tt = torch.tensor(target, dtype=torch.float64 if soft else torch.int64)
    ce = F.cross_entropy(v, tt, weight=w, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, reduction="none")
    lse = torch.logsumexp(v, dim=-1)
    if soft:
        w_sample = torch.ones(len(z), dtype=torch.float64)
    else:
        kept = tt != ignore_index
        safe = torch.where(kept, tt, torch.zeros_like(tt))
        w_sample = (torch.ones(z.shape[-1], dtype=torch.float64) if w is None else w)[safe]
        w_sample = w_sample * kept
    s = torch.ones(len(z), dtype=torch.float64) if sample_weight is None else torch.tensor(
        sample_weight, dtype=torch.float64)
    per_sample = (ce + z_loss * w_sample * lse ** 2) * s
    if reduction == "none":
        total = per_sample.sum()
        value = per_sample
    elif reduction == "sum":
        total = value = per_sample.sum()
    else:
        total = value = per_sample.sum() / (w_sample * s).sum()
    total.backward()
    return value.detach().numpy(), zt.grad.numpy()


def _case(rng, dtype, n=7, c=11, soft=False):
    z = (rng.standard_normal((n, c)) * 3).astype(dtype)
    if soft:
        y = rng.random((n, c))
        return z, (y / y.sum(axis=1, keepdims=True)).astype(dtype)
    t = rng.integers(0, c, n)
    t[1] = -100
    return z, t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("z_loss, softcap", OPTIONS)
@pytest.mark.parametrize("soft", [False, True], ids=["index", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_the_formula_in_torch(torch, backend, dtype, z_loss, softcap, soft, weighted,
                                      reduction):
    rng = np.random.default_rng(7)
    z, target = _case(rng, dtype, soft=soft)
    weight = rng.random(z.shape[1]) + 0.5 if weighted else None
    sample_weight = (rng.random(len(z)) + 0.5).astype(dtype) if weighted else None
    smoothing = 0.1 if weighted else 0.0
    loss, grad = crossent.cross_entropy(
        z, target, weight=weight, sample_weight=sample_weight, label_smoothing=smoothing,
        z_loss=z_loss, softcap=softcap, reduction=reduction, return_grad=True, backend=backend)
    expected, expected_grad = _torch_formula(
        torch, z, target, weight=weight, sample_weight=sample_weight, ignore_index=-100,
        label_smoothing=smoothing, z_loss=z_loss, softcap=softcap, reduction=reduction)
    assert np.asarray(loss).dtype == dtype and grad.dtype == dtype
    np.testing.assert_allclose(loss, expected, rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_allclose(grad, expected_grad, rtol=RTOL[dtype],
                               atol=RTOL[dtype] * np.abs(expected_grad).max())


@pytest.mark.parametrize("soft", [False, True], ids=["index", "soft"])
def test_gradient_matches_finite_differences(backend, soft):
    rng = np.random.default_rng(3)
    z, target = _case(rng, np.float64, n=4, c=6, soft=soft)
    kwargs = dict(z_loss=0.05, softcap=3.0, label_smoothing=0.2, weight=rng.random(6) + 0.5,
                  backend=backend)
    _, grad = crossent.cross_entropy(z, target, return_grad=True, **kwargs)
    numeric = central_difference(lambda x: float(crossent.cross_entropy(x, target, **kwargs)), z)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("soft", [False, True], ids=["index", "soft"])
def test_backends_agree_with_the_reference_and_threads_do_not_change_bits(compiled_backend,
                                                                          dtype, soft):
    rng = np.random.default_rng(11)
    z, target = _case(rng, dtype, n=300, c=37, soft=soft)
    kwargs = dict(z_loss=1e-3, softcap=4.0, reduction="sum", return_grad=True)
    ref_loss, ref_grad = crossent.cross_entropy(z, target, backend="numpy", **kwargs)
    one = crossent.cross_entropy(z, target, backend=compiled_backend, n_threads=1, **kwargs)
    two = crossent.cross_entropy(z, target, backend=compiled_backend, n_threads=2, **kwargs)
    np.testing.assert_allclose(one[0], ref_loss, rtol=RTOL[dtype])
    np.testing.assert_allclose(one[1], ref_grad, rtol=RTOL[dtype], atol=RTOL[dtype])
    assert one[0].tobytes() == two[0].tobytes() and one[1].tobytes() == two[1].tobytes()


@pytest.mark.parametrize("z, target, z_loss, want", [
    (np.array([[1e-3, -100.0, -100.0]], np.float32), [0], 1e-4, 2e-7),
    (np.array([[1e200, 0.0]]), [0], 1e-300, 2e-100),
    (np.array([[1e-3, -100.0, -100.0]], np.float32),
     np.array([[1.0, 0.0, 0.0]], np.float32), 1e-4, 2e-7),
], ids=["float32-index", "float64-index", "float32-soft"])
def test_a_small_z_loss_gradient_keeps_its_digits(backend, z, target, z_loss, want):
    """Where the plain part of the target's gradient cancels (p_t = 1), the
    z-loss's 2*z_loss*lse*p_t is what is left: added after the cancellation,
    not folded into p_t's coefficient, where (1 + 2e-7) rounds to 1 + 2.4e-7."""
    target = np.asarray(target)
    _, grad = crossent.cross_entropy(z, target, z_loss=z_loss, reduction="sum",
                                     return_grad=True, backend=backend)
    np.testing.assert_allclose(grad[0, 0], want, rtol=1e-6)


def test_every_simd_variant_gives_the_same_bits():
    cython = pytest.importorskip("crossent._cython_backend")
    rng = np.random.default_rng(5)
    z, target = _case(rng, np.float32, n=64, c=300)
    results = []
    before = cython.info()["simd"]
    try:
        for variant in ("baseline", "avx2", "avx512"):
            try:
                cython.set_simd(variant)
            except (ValueError, RuntimeError):
                continue
            loss, grad = crossent.cross_entropy(z, target, z_loss=1e-2, softcap=7.0,
                                                return_grad=True, backend="cython")
            results.append((loss.tobytes(), grad.tobytes()))
    finally:
        cython.set_simd(before)
    assert len(results) >= 1 and all(r == results[0] for r in results)


@pytest.mark.parametrize("soft", [False, True], ids=["index", "soft"])
def test_gradient_in_place_of_the_logits_gives_the_same_bits(compiled_backend, soft):
    """The kernel may write the gradient over its input (linear_cross_entropy
    does): every pass reads an entry before the gradient pass writes it."""
    module = crossent._backends.module(compiled_backend)
    rng = np.random.default_rng(2)
    for c in (10, 100, 3000):
        z, target = _case(rng, np.float32, n=70, c=c, soft=soft)
        for z_loss, softcap in [(0.0, 0.0), (1e-2, 0.0), (1e-2, 5.0)]:
            z3 = z[None]
            if soft:
                args = (target[None], None, None, 0.1, z_loss, softcap, None, None)
                kernel = module.softmax_xent_soft_ext
            else:
                args = (target[None], None, None, -100, 0.1, z_loss, softcap, None, None)
                kernel = module.softmax_xent_index_ext
            apart = np.empty_like(z3)
            total = kernel(z3, *args, apart, 0.5, 2, 0.0)
            inplace = z3.copy()
            total_in_place = kernel(inplace, *args, inplace, 0.5, 2, 0.0)
            assert total == total_in_place and apart.tobytes() == inplace.tobytes()
        if soft:
            plain, args = module.softmax_xent_soft, (target[None], None, None, 0.1, None)
        else:
            plain, args = module.softmax_xent_index, (target[None], None, None, -100, 0.1, None)
        apart = np.empty_like(z3)
        total = plain(z3, *args, apart, 0.5, 2, 0.0)
        inplace = z3.copy()
        total_in_place = plain(inplace, *args, inplace, 0.5, 2, 0.0)
        assert total == total_in_place and apart.tobytes() == inplace.tobytes()


def test_lse_output_of_the_kernels(backend):
    module = crossent._backends.module(backend)
    rng = np.random.default_rng(4)
    z, target = _case(rng, np.float64, n=9, c=13)
    lse = np.empty((1, 9))
    module.softmax_xent_index_ext(z[None], target[None], None, None, -100, 0.0, 0.0, 3.0, lse,
                                  None, None, 1.0, 1, 0.0)
    capped = 3.0 * np.tanh(z / 3.0)
    expected = np.log(np.exp(capped).sum(axis=1))
    expected[target == -100] = 0
    np.testing.assert_allclose(lse[0], expected, rtol=1e-13)


@pytest.mark.parametrize("soft", [False, True], ids=["index", "soft"])
def test_both_off_is_the_plain_loss_bit_for_bit(backend, soft):
    rng = np.random.default_rng(9)
    z, target = _case(rng, np.float32, n=50, c=20, soft=soft)
    plain = crossent.cross_entropy(z, target, return_grad=True, backend=backend)
    off = crossent.cross_entropy(z, target, z_loss=0, softcap=None, return_grad=True,
                                 backend=backend)
    assert plain[0].tobytes() == off[0].tobytes() and plain[1].tobytes() == off[1].tobytes()


def test_softcap_bounds_infinite_logits(backend):
    z = np.array([[np.inf, 0.0, -np.inf], [1.0, np.nan, 0.0]])
    loss = crossent.cross_entropy(z, np.array([0, 0]), softcap=2.0, reduction="none",
                                  backend=backend)
    capped = np.array([2.0, 0.0, -2.0])
    assert loss[0] == pytest.approx(np.log(np.exp(capped).sum()) - 2.0, rel=1e-12)
    assert np.isnan(loss[1])


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(z_loss=-1.0), ValueError, "z_loss"),
    (dict(z_loss=float("nan")), ValueError, "z_loss"),
    (dict(z_loss="big"), TypeError, "z_loss"),
    (dict(softcap=0.0), ValueError, "softcap"),
    (dict(softcap=-3.0), ValueError, "softcap"),
    (dict(softcap=float("inf")), ValueError, "softcap"),
    (dict(softcap=True), TypeError, "softcap"),
])
def test_bad_options_raise_naming_them(backend, kwargs, error, words):
    with pytest.raises(error, match=words):
        crossent.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), backend=backend, **kwargs)
