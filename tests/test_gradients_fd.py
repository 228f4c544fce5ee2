"""Every gradient against 4th-order central finite differences (float64).

For each loss and every combination of its options (class weight, sample
weight, ignore_index, label smoothing, soft targets, pos_weight, reduction),
``return_grad=True`` must return ∂loss/∂(first argument), where for
``reduction="none"`` the loss differentiated is the sum of the per-sample
losses (SPEC §1.6).
"""
import itertools

import numpy as np
import pytest

import crossent
from arrays import central_difference

REDUCTIONS = ["mean", "sum", "none"]


@pytest.fixture
def backend(backend_or_default):
    """Each gradient on every backend and through the plain call."""
    return backend_or_default


def scalar_loss(values, reduction):
    """The quantity whose gradient ``return_grad`` returns."""
    return float(np.sum(values)) if reduction == "none" else float(values)


def check_gradient(function, x, kwargs, reduction, backend):
    kwargs = dict(kwargs, reduction=reduction, backend=backend)
    loss, grad = function(x, return_grad=True, **kwargs)
    assert grad.shape == x.shape and grad.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(loss), np.asarray(function(x, **kwargs)),
                                  err_msg="loss with and without return_grad differ")
    numeric = central_difference(lambda moved: scalar_loss(function(moved, **kwargs), reduction), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def options(**choices):
    """Every combination of the given option values, as (id, dict) params."""
    names = list(choices)
    for values in itertools.product(*(choices[name] for name in names)):
        combo = dict(zip(names, values))
        label = "-".join(f"{name}={value}" for name, value in combo.items())
        yield pytest.param(combo, id=label)


# ---------------------------------------------------------------- multiclass

N_ROWS, N_CLASSES = 4, 3
INT_TARGET = np.array([0, 1, 2, 1])


def multiclass_kwargs(combo, rng, inner_shape=(N_ROWS,)):
    """Keyword arguments of a multiclass loss for one option combination."""
    kwargs = {}
    if combo["weight"]:
        kwargs["weight"] = rng.uniform(0.3, 2.0, size=N_CLASSES)
    if combo["sample_weight"]:
        kwargs["sample_weight"] = rng.uniform(0.3, 2.0, size=inner_shape)
    if combo.get("smoothing"):
        kwargs["label_smoothing"] = 0.2
    if combo.get("soft"):
        raw = rng.uniform(0.05, 1.0, size=inner_shape + (N_CLASSES,))
        kwargs["target"] = raw / raw.sum(axis=-1, keepdims=True)
    else:
        kwargs["target"] = INT_TARGET.reshape(inner_shape) if inner_shape == (N_ROWS,) \
            else rng.integers(0, N_CLASSES, size=inner_shape)
        if combo.get("ignore"):
            kwargs["ignore_index"] = 1  # rows with label 1 are ignored
    return kwargs


def with_target(function):
    """``function(x, target=..., ...)`` called as ``function(x, target, ...)``
    (the public functions name their second argument differently)."""
    return lambda x, target, **kwargs: function(x, target, **kwargs)


INDEX_COMBOS = list(options(weight=[False, True], sample_weight=[False, True],
                            ignore=[False, True], smoothing=[False, True], soft=[False]))
SOFT_COMBOS = list(options(weight=[False, True], sample_weight=[False, True],
                           smoothing=[False, True], soft=[True]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("combo", INDEX_COMBOS + SOFT_COMBOS)
def test_cross_entropy_gradient(backend, combo, reduction):
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=2.0, size=(N_ROWS, N_CLASSES))
    check_gradient(with_target(crossent.cross_entropy), logits,
                   multiclass_kwargs(combo, rng), reduction, backend)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("combo", INDEX_COMBOS + SOFT_COMBOS)
def test_categorical_cross_entropy_gradient(backend, combo, reduction):
    rng = np.random.default_rng(2)
    # unnormalised probabilities, well inside (0, 1) so no clamp is crossed
    probs = rng.uniform(0.05, 0.9, size=(N_ROWS, N_CLASSES))
    check_gradient(with_target(crossent.categorical_cross_entropy), probs,
                   multiclass_kwargs(combo, rng), reduction, backend)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("combo", list(options(weight=[False, True], sample_weight=[False, True],
                                               ignore=[False, True])))
def test_nll_loss_gradient(backend, combo, reduction):
    rng = np.random.default_rng(3)
    log_probs = rng.normal(size=(N_ROWS, N_CLASSES))
    check_gradient(with_target(crossent.nll_loss), log_probs,
                   multiclass_kwargs(combo, rng), reduction, backend)


@pytest.mark.parametrize("function, soft", [
    (crossent.cross_entropy, False), (crossent.cross_entropy, True),
    (crossent.categorical_cross_entropy, False), (crossent.categorical_cross_entropy, True),
    (crossent.nll_loss, False)], ids=lambda v: getattr(v, "__name__", f"soft={v}"))
@pytest.mark.parametrize("axis", [0, 1])
def test_multiclass_gradient_class_axis_not_last(backend, function, soft, axis):
    """The class axis in the middle or first of a 3-D input, all options on."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0.05, 0.9, size=(2, 2, 2))
    x = np.moveaxis(np.concatenate([x, x[..., :1] * 0.5], axis=-1), -1, axis)  # C = 3 on `axis`
    inner = tuple(n for i, n in enumerate(x.shape) if i != axis)
    combo = dict(weight=True, sample_weight=True, ignore=not soft, soft=soft,
                 smoothing=function is not crossent.nll_loss)
    kwargs = multiclass_kwargs(combo, rng, inner_shape=inner)
    if soft:
        kwargs["target"] = np.moveaxis(kwargs["target"], -1, axis)
    for reduction in REDUCTIONS:
        check_gradient(with_target(function), x, dict(kwargs, axis=axis), reduction, backend)


# ---------------------------------------------------------------- binary and MSE

SHAPE = (3, 4)


def elementwise_kwargs(combo, rng):
    kwargs = {}
    if combo.get("weight"):
        kwargs["weight"] = rng.uniform(0.3, 2.0, size=SHAPE[-1:])  # broadcast along rows
    if combo.get("pos_weight"):
        kwargs["pos_weight"] = rng.uniform(0.3, 3.0, size=SHAPE[-1:])
    if combo.get("sample_weight"):
        kwargs["sample_weight"] = rng.uniform(0.3, 2.0, size=SHAPE)
    if combo.get("smoothing"):
        kwargs["label_smoothing"] = 0.1
    return kwargs


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("combo", list(options(weight=[False, True], sample_weight=[False, True])))
def test_binary_cross_entropy_gradient(backend, combo, reduction):
    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.95, size=SHAPE)
    y = rng.uniform(0, 1, size=SHAPE)  # soft labels exercise both log terms
    kwargs = dict(elementwise_kwargs(combo, rng), target=y)
    check_gradient(with_target(crossent.binary_cross_entropy), p, kwargs, reduction, backend)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("combo", list(options(weight=[False, True], pos_weight=[False, True],
                                               sample_weight=[False, True],
                                               smoothing=[False, True])))
def test_bce_with_logits_gradient(backend, combo, reduction):
    rng = np.random.default_rng(6)
    z = rng.normal(scale=3.0, size=SHAPE)
    y = rng.integers(0, 2, size=SHAPE).astype(float)
    kwargs = dict(elementwise_kwargs(combo, rng), target=y)
    check_gradient(with_target(crossent.binary_cross_entropy_with_logits), z, kwargs,
                   reduction, backend)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("combo", list(options(weight=[False, True], sample_weight=[False, True])))
def test_mse_loss_gradient(backend, combo, reduction):
    rng = np.random.default_rng(7)
    x = rng.normal(size=SHAPE)
    kwargs = dict(elementwise_kwargs(combo, rng), target=rng.normal(size=SHAPE))
    check_gradient(with_target(crossent.mse_loss), x, kwargs, reduction, backend)
