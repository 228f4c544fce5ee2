"""Property tests (hypothesis): random valid calls of every public function,
over shapes (0- and 1-sized axes included), prediction dtypes, memory layouts
(tests/arrays.py), class axes, class and sample weights, pos_weight,
ignore_index, label smoothing, reductions and return_grad.

Properties, on every compiled backend and through the plain call (no
``backend=``):

* the result agrees with the "numpy" reference within the tolerance of
  tests/test_compiled_loops.py (rtol 1e-5 float32 / 1e-12 float64, relative to
  the array's scale; scalars 10x that, relative to Σ|per-sample loss|);
* the only exceptions are the documented ones (TypeError / ValueError from
  validation), raised alike -- same type, same message -- by every backend;
* on small float64 cases the gradient matches 4th-order central finite
  differences (the tolerance of tests/test_gradients_fd.py).

Run with ``--hypothesis-show-statistics`` to see how many examples were tried
and the ``event`` labels (loss, dtype, layout, outcome) of the inputs.
"""
import numpy as np
import pytest
from hypothesis import event, given, strategies as st

import crossent
from arrays import FLOAT_DTYPES, central_difference, computation_dtype, layouts, random_values

COMPILED = [name for name in crossent.backends() if name != "numpy"]
# Each compiled backend, and None: the plain call (backend=None is the
# keyword's default), which takes the facade's fast paths where it can
COMPILED_AND_DEFAULT = [pytest.param(name, id=name) for name in COMPILED] + [
    pytest.param(None, id="default")]
ALL_AND_DEFAULT = [pytest.param(name, id=name) for name in crossent.backends()] + [
    pytest.param(None, id="default")]
PREDICTION_DTYPES = FLOAT_DTYPES + (np.int8, np.int32, np.uint8, np.bool_)
MULTICLASS = ("cross_entropy", "categorical_cross_entropy", "nll_loss")
ELEMENTWISE_LOSSES = ("binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss")
ROW_ACTIVATIONS = ("softmax", "log_softmax", "logsumexp")
ACTIVATIONS = ("sigmoid", "log_sigmoid") + ROW_ACTIVATIONS
# the kind of values each function's first argument takes (arrays.random_values)
PREDICTION_KIND = {"binary_cross_entropy": "probs", "categorical_cross_entropy": "probs",
                   "binary_cross_entropy_with_logits": "logits", "mse_loss": "logits",
                   "cross_entropy": "logits", "nll_loss": "logits"}
DOCUMENTED_ERRORS = (TypeError, ValueError)

shapes = st.lists(st.integers(0, 5), min_size=1, max_size=3).map(tuple)


def in_layout(data, array, label):
    """``array`` in one memory layout of tests/arrays.py, drawn by hypothesis."""
    if array.ndim == 0:  # a 0-d array's layouts are only contiguous and read-only: drawn as it is
        return array
    options = list(layouts(array))
    index = data.draw(st.integers(0, len(options) - 1), label=f"{label} layout")
    name, view = options[index]
    event(f"{label} layout: {name}")
    return view


def optional_weights(data, rng, name, shape, class_axis):
    """weight=, sample_weight= (and pos_weight=) of valid shapes, each maybe absent."""
    kwargs = {}
    if name in MULTICLASS:
        per_row = tuple(n for i, n in enumerate(shape) if i != class_axis)
        candidates = {"weight": (shape[class_axis],), "sample_weight": per_row}
    else:
        # broadcastable to the input: the full shape, the last axis, or a scalar
        def broadcast_shape():
            return data.draw(st.sampled_from([shape, shape[-1:], ()]), label="weight shape")
        candidates = {"weight": broadcast_shape(), "sample_weight": broadcast_shape()}
        if name == "binary_cross_entropy_with_logits":
            candidates["pos_weight"] = shape[-1:]
    for keyword, weight_shape in candidates.items():
        if data.draw(st.booleans(), label=keyword):
            kwargs[keyword] = rng.uniform(0.25, 2.0, size=weight_shape)
    return kwargs


def draw_plain(data, plain_calls):
    """Whether to draw a plain call: a C-contiguous float32/float64 array, the
    class axis last, no axis=, out= or weights -- the call most users make,
    which the facade answers on its fast paths.  Half the calls when
    ``plain_calls`` (the "default" runs, without backend=), else none: other
    draws seldom meet every condition of a fast path at once."""
    plain = plain_calls and data.draw(st.booleans(), label="plain call")
    if plain:
        event("plain call")
    return plain


def draw_loss_call(data, name, plain_calls=False):
    """(function, prediction, target, keyword arguments) of a random valid
    call; see draw_plain for ``plain_calls``."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    plain = draw_plain(data, plain_calls)
    if plain:
        shape = data.draw(st.tuples(st.integers(1, 5), st.integers(1, 5)), label="shape")
        class_axis = -1
        dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    else:
        shape = data.draw(shapes, label="shape")
        class_axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
        if name in MULTICLASS and shape[class_axis] == 0 and data.draw(st.booleans(),
                                                                        label="C>0"):
            # no class at all is a documented ValueError; keep it, but not in half the cases
            shape = shape[:class_axis % len(shape)] + (3,) + shape[class_axis % len(shape) + 1:]
        dtype = data.draw(st.sampled_from(PREDICTION_DTYPES), label="dtype")
    event(f"{name} dtype {np.dtype(dtype).name}")
    x = random_values(shape, dtype, PREDICTION_KIND[name], rng)
    if PREDICTION_KIND[name] == "logits" and dtype in FLOAT_DTYPES:
        x = (x * data.draw(st.sampled_from([0.1, 1.0, 10.0]), label="scale")).astype(dtype)
    kwargs = {"reduction": data.draw(st.sampled_from(["mean", "sum", "none"]), label="reduction"),
              "return_grad": data.draw(st.booleans(), label="return_grad")}
    if not plain:
        kwargs.update(optional_weights(data, rng, name, shape, class_axis % len(shape)))
    if name in MULTICLASS:
        if not plain:
            kwargs["axis"] = class_axis
        target = multiclass_target(data, rng, name, shape, class_axis % len(shape), kwargs)
    elif name == "mse_loss":
        target = rng.normal(size=shape)
    else:
        target = rng.uniform(0.0, 1.0, size=shape) if data.draw(st.booleans(), label="soft y") \
            else random_values(shape, np.float64, "binary", rng)
    if name in ("cross_entropy", "categorical_cross_entropy",
                "binary_cross_entropy_with_logits") and data.draw(st.booleans(), label="smooth"):
        kwargs["label_smoothing"] = data.draw(st.sampled_from([0.1, 0.5, 1.0]), label="eps")
    if plain:
        if name not in MULTICLASS:   # binary targets in the predictions' dtype, as users pass them
            target = target.astype(dtype)
        return getattr(crossent, name), x, target, kwargs
    x = in_layout(data, x, "prediction")
    target = in_layout(data, np.asarray(target), "target")
    return getattr(crossent, name), x, target, kwargs


def multiclass_target(data, rng, name, shape, class_axis, kwargs):
    n_classes = shape[class_axis]
    per_row = tuple(n for i, n in enumerate(shape) if i != class_axis)
    if name != "nll_loss" and n_classes > 0 and data.draw(st.booleans(), label="soft target"):
        raw = rng.uniform(0.05, 1.0, size=shape)
        event(f"{name} soft target")
        return raw / raw.sum(axis=class_axis, keepdims=True)
    labels = rng.integers(0, max(n_classes, 1), size=per_row)
    ignore_index = data.draw(st.sampled_from([-100, -1, 0, 1]), label="ignore_index")
    if ignore_index != -100:
        kwargs["ignore_index"] = ignore_index
    if n_classes == 0 or data.draw(st.booleans(), label="some ignored"):
        labels[rng.random(per_row) < (1.0 if n_classes == 0 else 0.3)] = ignore_index
    target_dtype = data.draw(st.sampled_from([np.int64, np.int32, np.uint8, np.int8]),
                             label="target dtype")
    if np.dtype(target_dtype).kind == "u" and (labels < 0).any():
        target_dtype = np.int64
    return labels.astype(target_dtype)


def outcome(call):
    """("ok", result) or ("error", type, message); anything undocumented propagates."""
    try:
        return ("ok", call())
    except DOCUMENTED_ERRORS as error:
        return ("error", type(error), str(error))


def _tolerance(dtype):
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def assert_agree(got, expected, dtype, loss_scale=1.0):
    """Compiled vs reference: arrays within rtol relative to their scale, scalars
    within 10x that relative to ``loss_scale`` (Σ|per-sample loss|)."""
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_agree(g, e, dtype, loss_scale)
        return
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape, \
        (got.dtype, expected.dtype, got.shape, expected.shape)
    tol = _tolerance(dtype)
    if expected.ndim == 0:
        atol = 10 * tol * max(1.0, loss_scale)
        np.testing.assert_allclose(got, expected, rtol=10 * tol, atol=atol, equal_nan=True)
        return
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * scale, equal_nan=True)


def compare_with_reference(backend, call, dtype, loss_scale=lambda: 1.0):
    expected = outcome(lambda: call("numpy"))
    got = outcome(lambda: call(backend))
    event(f"outcome: {expected[0]}")
    if expected[0] == "error":
        event(f"error: {expected[1].__name__}")
        assert got == expected, f"{backend} gave {got[:2]} where the reference gave {expected}"
        return
    assert got[0] == "ok", f"{backend} raised {got[1:]} where the reference succeeded"
    assert_agree(got[1], expected[1], computation_dtype(dtype), loss_scale())


@pytest.mark.parametrize("name", MULTICLASS + ELEMENTWISE_LOSSES)
@pytest.mark.parametrize("backend", COMPILED_AND_DEFAULT)
@given(data=st.data())
def test_loss_agrees_with_reference(backend, name, data):
    function, x, target, kwargs = draw_loss_call(data, name, plain_calls=backend is None)

    def call(which):
        return function(x, target, **kwargs, backend=which)

    def loss_scale():
        options = dict(kwargs, reduction="none", return_grad=False)
        return float(np.nansum(np.abs(function(x, target, **options, backend="numpy"))))

    compare_with_reference(backend, call, x.dtype, loss_scale)


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("backend", COMPILED_AND_DEFAULT)
@given(data=st.data())
def test_activation_agrees_with_reference(backend, name, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    shape = data.draw(shapes, label="shape")
    plain = draw_plain(data, plain_calls=backend is None)
    dtype = data.draw(st.sampled_from([np.float32, np.float64] if plain else PREDICTION_DTYPES),
                      label="dtype")
    event(f"{name} dtype {np.dtype(dtype).name}")
    scale = data.draw(st.sampled_from([0.1, 1.0, 30.0]), label="scale")
    kwargs = {}
    if plain:
        z = (random_values(shape, np.float64, "logits", rng) * scale).astype(dtype)
        in_place = False
    else:
        z = in_layout(data, random_values(shape, np.float64, "logits", rng) * scale, "z").astype(
            dtype, copy=False)
        if name in ROW_ACTIVATIONS:
            kwargs["axis"] = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
        in_place = name != "logsumexp" and data.draw(st.booleans(), label="out=input")

    def call(which):
        if not in_place:
            return getattr(crossent, name)(z, **kwargs, backend=which)
        buffer = np.array(z, dtype=computation_dtype(dtype))  # a fresh copy per backend
        result = getattr(crossent, name)(buffer, **kwargs, out=buffer, backend=which)
        assert result is buffer
        return result

    compare_with_reference(backend, call, dtype)


# ---------------------------------------------------------------- gradients

small_shapes = st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple)


@pytest.mark.parametrize("name", MULTICLASS + ELEMENTWISE_LOSSES)
@pytest.mark.parametrize("backend", ALL_AND_DEFAULT)
@given(data=st.data())
def test_gradient_matches_finite_differences(backend, name, data):
    function, x, target, kwargs = draw_loss_call(data, name, plain_calls=backend is None)
    if x.size > 12 or computation_dtype(x.dtype) != np.float64 or x.dtype.kind != "f":
        # the finite differences need float64 and few coordinates: redraw a small case
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="fd seed"))
        shape = data.draw(small_shapes, label="fd shape")
        return check_small_gradient(data, rng, name, shape, backend)
    event("gradient: drawn case")
    check_gradient(function, np.ascontiguousarray(x, dtype=np.float64), target, kwargs, backend)


def check_small_gradient(data, rng, name, shape, backend):
    x = random_values(shape, np.float64, PREDICTION_KIND[name], rng)
    class_axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="fd axis")
    kwargs = {"reduction": data.draw(st.sampled_from(["mean", "sum", "none"]), label="fd red")}
    kwargs.update(optional_weights(data, rng, name, shape, class_axis % len(shape)))
    if name in MULTICLASS:
        kwargs["axis"] = class_axis
        target = multiclass_target(data, rng, name, shape, class_axis % len(shape), kwargs)
    else:
        target = rng.normal(size=shape) if name == "mse_loss" else rng.uniform(0, 1, size=shape)
    if name != "nll_loss" and name != "mse_loss" and name != "binary_cross_entropy":
        kwargs["label_smoothing"] = data.draw(st.sampled_from([0.0, 0.2]), label="fd eps")
    event("gradient: small float64 case")
    check_gradient(getattr(crossent, name), x, target, kwargs, backend)


def check_gradient(function, x, target, kwargs, backend):
    kwargs = dict(kwargs, return_grad=False, backend=backend)
    result = outcome(lambda: function(x, target, **dict(kwargs, return_grad=True)))
    if result[0] == "error":
        event(f"gradient: {result[1].__name__}")
        return
    loss, grad = result[1]
    assert grad.shape == x.shape and grad.dtype == np.float64

    def scalar(moved):
        value = function(moved, target, **kwargs)
        return float(np.sum(value)) if kwargs["reduction"] == "none" else float(value)

    if not np.isfinite(scalar(x)):  # a mean over no weight: nan loss, zero gradient (§1.5)
        np.testing.assert_array_equal(grad, np.zeros_like(grad))
        return
    np.testing.assert_allclose(grad, central_difference(scalar, x), rtol=1e-6, atol=1e-8)
