"""Value and gradient parity with PyTorch (``torch.nn.functional``) for every
option combination SPEC §3 names.  The class axis is last in crossent and
moved to 1 for PyTorch; gradients come from ``backward`` (of the sum of the
per-sample losses for ``reduction="none"``).  ``sample_weight`` has no PyTorch
counterpart, so its torch side is built from PyTorch's per-sample losses with
the weighted mean of SPEC §1.5."""
import itertools

import numpy as np
import pytest

import crossent

pytestmark = pytest.mark.peers

REDUCTIONS = ["mean", "sum", "none"]
RTOL = {np.float64: 1e-12, np.float32: 2e-6}
# Absolute slack for gradient entries near 0, as a fraction of RTOL x the
# largest entry: float32 gradients like lw·σ(z) − pw·y' cancel terms of the
# size of the largest entry, and PyTorch orders the operations differently.
ATOL_SCALE = {np.float64: 1e-2, np.float32: 1.0}


def combos(**choices):
    names = list(choices)
    for values in itertools.product(*(choices[name] for name in names)):
        combo = dict(zip(names, values))
        yield pytest.param(combo, id="-".join(f"{k}={v}" for k, v in combo.items()))


def assert_parity(ours, theirs, dtype, what):
    ours_loss, ours_grad = ours
    their_loss, their_grad = theirs
    rtol = RTOL[dtype]
    assert np.asarray(ours_loss).dtype == dtype and ours_grad.dtype == dtype, what
    np.testing.assert_allclose(ours_loss, their_loss, rtol=rtol, atol=rtol * 1e-2,
                               err_msg=f"{what}: loss")
    scale = max(float(np.max(np.abs(their_grad), initial=0.0)), 1e-300)
    atol = rtol * ATOL_SCALE[dtype] * scale
    np.testing.assert_allclose(ours_grad, their_grad, rtol=rtol, atol=atol,
                               err_msg=f"{what}: gradient")


def torch_loss_and_grad(torch, loss_fn, x, class_axis=None):
    """PyTorch's loss and d(loss or Σ losses)/dx, with the class axis of x at
    ``class_axis`` moved to 1 for torch and the gradient's moved back."""
    xt = torch.tensor(x if class_axis is None else np.moveaxis(x, class_axis, 1),
                      requires_grad=True)
    loss = loss_fn(xt)
    loss.sum().backward()
    grad = xt.grad.numpy()
    if class_axis is not None:
        grad = np.moveaxis(grad, 1, class_axis)
    return loss.detach().numpy(), grad


def reduce_like_spec(torch, per_sample, sample_weight, denominator_weights, reduction):
    """SPEC §1.5 applied to PyTorch's weighted per-sample losses."""
    weighted = per_sample * sample_weight
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    return weighted.sum() / (denominator_weights * sample_weight).sum()


# ---------------------------------------------------------------- cross_entropy

SHAPE = (5, 2, 4)  # (N, d, C): class axis last for crossent, 1 for torch
N_CLASSES = SHAPE[-1]


def multiclass_inputs(combo, dtype, rng, probabilities=False):
    if probabilities:
        raw = rng.uniform(0.05, 1.0, size=SHAPE)
        x = raw / raw.sum(axis=-1, keepdims=True)
    else:
        x = rng.normal(scale=2.0, size=SHAPE)
    if combo.get("soft"):
        raw = rng.uniform(0.0, 1.0, size=SHAPE)
        target = raw / raw.sum(axis=-1, keepdims=True)
    else:
        target = rng.integers(0, N_CLASSES, size=SHAPE[:-1])
        if combo.get("ignore"):
            target[0, 1] = target[3, 0] = 2  # ignore_index=2 ignores these and others
    weight = rng.uniform(0.3, 2.0, size=N_CLASSES) if combo.get("weight") else None
    sample_weight = rng.uniform(0.3, 2.0, size=SHAPE[:-1]) if combo.get("sample_weight") else None
    return x.astype(dtype), target, weight, sample_weight


def torch_multiclass(torch, function, x, target, weight, sample_weight, reduction, **kwargs):
    """PyTorch's ``function`` (cross_entropy / nll_loss) with SPEC's
    sample_weight reduction built on top of its per-sample losses."""
    dtype = getattr(torch, np.dtype(x.dtype).name)
    wt = None if weight is None else torch.tensor(weight, dtype=dtype)
    if np.issubdtype(target.dtype, np.floating):
        tt = torch.tensor(np.moveaxis(target, -1, 1), dtype=dtype)
    else:
        tt = torch.tensor(target)

    def loss_fn(xt):
        if sample_weight is None:
            return function(xt, tt, weight=wt, reduction=reduction, **kwargs)
        per_sample = function(xt, tt, weight=wt, reduction="none", **kwargs)
        s = torch.tensor(sample_weight, dtype=dtype)
        if tt.dtype.is_floating_point:
            denominator = torch.ones_like(s)
        else:
            ignore = kwargs.get("ignore_index", -100)
            class_w = wt if wt is not None else torch.ones(N_CLASSES, dtype=dtype)
            safe = torch.where(tt == ignore, torch.zeros_like(tt), tt)
            denominator = torch.where(tt == ignore, torch.zeros_like(s), class_w[safe])
        return reduce_like_spec(torch, per_sample, s, denominator, reduction)

    return torch_loss_and_grad(torch, loss_fn, x, class_axis=-1)


CE_COMBOS = [c for c in combos(weight=[False, True], sample_weight=[False, True],
                               ignore=[False, True], smoothing=[False, True], soft=[False, True])
             if not (c.values[0]["soft"] and c.values[0]["ignore"])]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("combo", CE_COMBOS)
def test_cross_entropy_matches_torch(backend, torch, combo, reduction):
    import torch.nn.functional as F
    x, target, weight, sample_weight = multiclass_inputs(combo, np.float64,
                                                         np.random.default_rng(10))
    kwargs = {"label_smoothing": 0.15 if combo["smoothing"] else 0.0}
    if combo["ignore"]:
        kwargs["ignore_index"] = 2
    ours = crossent.cross_entropy(x, target, weight=weight, sample_weight=sample_weight,
                                  reduction=reduction, return_grad=True, backend=backend, **kwargs)
    theirs = torch_multiclass(torch, F.cross_entropy, x, target, weight, sample_weight,
                              reduction, **kwargs)
    assert_parity(ours, theirs, np.float64, f"cross_entropy {combo} {reduction}")


@pytest.mark.parametrize("soft", [False, True])
def test_cross_entropy_matches_torch_float32(backend, torch, soft):
    import torch.nn.functional as F
    combo = dict(weight=True, ignore=not soft, soft=soft)
    x, target, weight, _ = multiclass_inputs(combo, np.float32, np.random.default_rng(11))
    kwargs = {"label_smoothing": 0.1}
    if not soft:
        kwargs["ignore_index"] = 2
    for reduction in REDUCTIONS:
        ours = crossent.cross_entropy(x, target.astype(np.float32) if soft else target,
                                      weight=weight, reduction=reduction, return_grad=True,
                                      backend=backend, **kwargs)
        # PyTorch in float64 on the same float32 values: its float32 kernels
        # lose more than ours in places (see the binary test below)
        theirs = torch_multiclass(torch, F.cross_entropy, x.astype(np.float64),
                                  target.astype(np.float32).astype(np.float64) if soft else target,
                                  weight, None, reduction, **kwargs)
        assert_parity(ours, theirs, np.float32, f"cross_entropy float32 soft={soft} {reduction}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("soft", [False, True])
def test_one_class_cross_entropy_is_torch_exact_zero(backend_or_default, torch, soft, dtype,
                                                     reduction):
    """With one class PyTorch's loss and gradient are exactly 0 with class
    weights and label smoothing; so are ours (tests/test_contract.py covers
    the other options)."""
    import torch.nn.functional as F
    rng = np.random.default_rng(14)
    x = rng.normal(scale=30.0, size=(70, 1)).astype(dtype)
    target = rng.uniform(0.0, 1.0, size=(70, 1)).astype(dtype) if soft else np.zeros(70, np.int64)
    kwargs = {"weight": np.array([1.7]), "label_smoothing": 0.2}
    ours = crossent.cross_entropy(x, target, reduction=reduction, return_grad=True,
                                  backend=backend_or_default, **kwargs)
    torch_dtype = getattr(torch, np.dtype(dtype).name)
    tt = torch.tensor(target) if not soft else torch.tensor(target, dtype=torch_dtype)
    wt = torch.tensor(kwargs["weight"], dtype=torch_dtype)
    theirs = torch_loss_and_grad(torch, lambda xt: F.cross_entropy(
        xt, tt, weight=wt, label_smoothing=0.2, reduction=reduction), x, class_axis=-1)
    np.testing.assert_array_equal(theirs[1], np.zeros_like(x))
    np.testing.assert_array_equal(ours[1], theirs[1])
    np.testing.assert_array_equal(ours[0], theirs[0])


def test_cross_entropy_class_axis_1_matches_torch(backend, torch):
    """With ``axis=1`` the array is already in PyTorch's layout."""
    import torch.nn.functional as F
    rng = np.random.default_rng(12)
    x = rng.normal(size=(3, 4, 5))
    target = rng.integers(0, 4, size=(3, 5))
    loss, grad = crossent.cross_entropy(x, target, axis=1, return_grad=True, backend=backend)
    xt = torch.tensor(x, requires_grad=True)
    their = F.cross_entropy(xt, torch.tensor(target))
    their.backward()
    np.testing.assert_allclose(loss, their.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("combo", list(combos(weight=[False, True], sample_weight=[False, True],
                                              ignore=[False, True])))
def test_nll_loss_matches_torch(backend, torch, combo, reduction):
    import torch.nn.functional as F
    x, target, weight, sample_weight = multiclass_inputs(combo, np.float64,
                                                         np.random.default_rng(13))
    kwargs = {"ignore_index": 2} if combo["ignore"] else {}
    log_probs = x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
    ours = crossent.nll_loss(log_probs, target, weight=weight, sample_weight=sample_weight,
                             reduction=reduction, return_grad=True, backend=backend, **kwargs)
    theirs = torch_multiclass(torch, F.nll_loss, log_probs, target, weight, sample_weight,
                              reduction, **kwargs)
    assert_parity(ours, theirs, np.float64, f"nll_loss {combo} {reduction}")


# ---------------------------------------------------------------- binary losses and MSE

BIN_SHAPE = (4, 6)


def elementwise_torch(torch, function, x, target, reduction, sample_weight=None,
                      weights_in_denominator=False, **tensors):
    """PyTorch's elementwise ``function`` with SPEC's sample_weight reduction
    (the denominator is Σ s, or Σ s·w for mse_loss)."""
    dtype = getattr(torch, np.dtype(x.dtype).name)
    yt = torch.tensor(target, dtype=dtype)
    kw = {k: None if v is None else torch.tensor(v, dtype=dtype) for k, v in tensors.items()}

    def loss_fn(xt):
        if sample_weight is None:
            return function(xt, yt, reduction=reduction, **kw)
        per_sample = function(xt, yt, reduction="none", **kw)
        s = torch.tensor(np.broadcast_to(sample_weight, x.shape), dtype=dtype)
        w = kw.get("weight")
        denominator = w.expand_as(s) if weights_in_denominator and w is not None \
            else torch.ones_like(s)
        return reduce_like_spec(torch, per_sample, s, denominator, reduction)

    return torch_loss_and_grad(torch, loss_fn, x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("combo", list(combos(weight=[False, True], sample_weight=[False, True],
                                              soft_labels=[False, True])))
def test_binary_cross_entropy_matches_torch(backend, torch, combo, reduction):
    """Including p exactly 0 and 1 (the −100 clamp and the 1e-12 gradient floor)."""
    import torch.nn.functional as F
    rng = np.random.default_rng(14)
    p = rng.uniform(0.01, 0.99, size=BIN_SHAPE)
    p[0, :3] = 0.0
    p[1, :3] = 1.0
    y = rng.uniform(0, 1, size=BIN_SHAPE) if combo["soft_labels"] \
        else rng.integers(0, 2, size=BIN_SHAPE).astype(float)
    y[0, :2] = [0.0, 1.0]
    y[1, :2] = [0.0, 1.0]
    weight = rng.uniform(0.3, 2.0, size=BIN_SHAPE[-1:]) if combo["weight"] else None
    sample_weight = rng.uniform(0.3, 2.0, size=BIN_SHAPE) if combo["sample_weight"] else None
    ours = crossent.binary_cross_entropy(p, y, weight=weight, sample_weight=sample_weight,
                                         reduction=reduction, return_grad=True, backend=backend)
    theirs = elementwise_torch(torch, F.binary_cross_entropy, p, y, reduction, sample_weight,
                               weight=weight)
    assert_parity(ours, theirs, np.float64, f"binary_cross_entropy {combo} {reduction}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("combo", list(combos(weight=[False, True], pos_weight=[False, True],
                                              sample_weight=[False, True],
                                              smoothing=[False, True])))
def test_bce_with_logits_matches_torch(backend, torch, combo, reduction):
    """PyTorch has no label smoothing here: its side gets the smoothed
    targets ``y(1 − ε) + ε/2`` (SPEC §3)."""
    import torch.nn.functional as F
    rng = np.random.default_rng(15)
    z = rng.normal(scale=4.0, size=BIN_SHAPE)
    z[0, :2] = [-40.0, 40.0]
    y = rng.integers(0, 2, size=BIN_SHAPE).astype(float)
    weight = rng.uniform(0.3, 2.0, size=BIN_SHAPE[-1:]) if combo["weight"] else None
    pos_weight = rng.uniform(0.3, 3.0, size=BIN_SHAPE[-1:]) if combo["pos_weight"] else None
    sample_weight = (rng.uniform(0.3, 2.0, size=(BIN_SHAPE[0], 1))  # broadcast along columns
                     if combo["sample_weight"] else None)
    smoothing = 0.2 if combo["smoothing"] else 0.0
    ours = crossent.binary_cross_entropy_with_logits(
        z, y, weight=weight, pos_weight=pos_weight, sample_weight=sample_weight,
        label_smoothing=smoothing, reduction=reduction, return_grad=True, backend=backend)
    theirs = elementwise_torch(torch, F.binary_cross_entropy_with_logits, z,
                               y * (1 - smoothing) + smoothing / 2, reduction, sample_weight,
                               weight=weight, pos_weight=pos_weight)
    assert_parity(ours, theirs, np.float64, f"bce_with_logits {combo} {reduction}")


def test_bce_with_logits_matches_torch_float32(backend, torch):
    import torch.nn.functional as F
    rng = np.random.default_rng(16)
    z = rng.normal(scale=4.0, size=BIN_SHAPE).astype(np.float32)
    y = rng.integers(0, 2, size=BIN_SHAPE).astype(np.float32)
    pos_weight = rng.uniform(0.3, 3.0, size=BIN_SHAPE[-1:]).astype(np.float32)
    for reduction in REDUCTIONS:
        ours = crossent.binary_cross_entropy_with_logits(z, y, pos_weight=pos_weight,
                                                         reduction=reduction, return_grad=True,
                                                         backend=backend)
        # PyTorch in float64 on the same float32 values: in float32 it computes
        # z + softplus(-z) for y = 0, which cancels (2e-4 relative error at z = -7.5)
        theirs = elementwise_torch(torch, F.binary_cross_entropy_with_logits,
                                   z.astype(np.float64), y.astype(np.float64), reduction,
                                   pos_weight=pos_weight.astype(np.float64))
        assert_parity(ours, theirs, np.float32, f"bce_with_logits float32 {reduction}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("combo", list(combos(weight=[False, True], sample_weight=[False, True])))
def test_mse_loss_matches_torch(backend, torch, combo, reduction):
    """PyTorch 2.13's weighted mean divides by Σ weight (checked here against
    torch itself, SPEC §1.5); its weight must have the input's shape."""
    import torch.nn.functional as F
    rng = np.random.default_rng(17)
    x = rng.normal(size=BIN_SHAPE)
    t = rng.normal(size=BIN_SHAPE)
    weight = rng.uniform(0.3, 2.0, size=BIN_SHAPE) if combo["weight"] else None
    sample_weight = rng.uniform(0.3, 2.0, size=BIN_SHAPE) if combo["sample_weight"] else None
    ours = crossent.mse_loss(x, t, weight=weight, sample_weight=sample_weight,
                             reduction=reduction, return_grad=True, backend=backend)
    theirs = elementwise_torch(torch, F.mse_loss, x, t, reduction, sample_weight,
                               weights_in_denominator=True, weight=weight)
    assert_parity(ours, theirs, np.float64, f"mse_loss {combo} {reduction}")


def test_torch_weighted_mse_mean_divides_by_weight_sum(torch):
    """The fact SPEC §1.5 relies on, pinned to the installed PyTorch."""
    import torch.nn.functional as F
    x = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    t = torch.zeros(3, dtype=torch.float64)
    w = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
    weighted = (w * (x - t) ** 2).sum()
    assert F.mse_loss(x, t, weight=w).item() == pytest.approx((weighted / w.sum()).item())
    assert F.mse_loss(x, t, weight=w).item() != pytest.approx((weighted / 3).item())
