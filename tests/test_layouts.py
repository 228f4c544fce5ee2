"""SPEC §1.1: Fortran-ordered, strided, negative-stride, zero-stride
(broadcast), permuted, unaligned and read-only views of any operand give the
same result as their contiguous copies -- bit for bit on the compiled
backends, within a few ulps on the NumPy reference (``assert_same_as_contiguous``).
Each case swaps ONE operand for each of its layouts (arrays.layouts) and keeps
the others contiguous, for every dtype, shape and class axis of the generator."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import crossent
from arrays import (FLOAT_DTYPES, SHAPES, array_generator, assert_same_as_contiguous,
                    class_axes, layouts, random_values)

PREDICTION_DTYPES = FLOAT_DTYPES + (np.int32, np.uint8, np.bool_)


@pytest.mark.parametrize("function", [crossent.sigmoid, crossent.log_sigmoid],
                         ids=lambda f: f.__name__)
def test_elementwise_activation_layouts(backend, function):
    for description, z in array_generator(dtypes=PREDICTION_DTYPES):
        expected = function(np.ascontiguousarray(z), backend=backend)
        assert_same_as_contiguous(backend, function(z, backend=backend), expected, description)


@pytest.mark.parametrize("function", [crossent.softmax, crossent.log_softmax,
                                      crossent.logsumexp], ids=lambda f: f.__name__)
def test_row_activation_layouts(backend, function):
    for description, z in array_generator(dtypes=PREDICTION_DTYPES, min_ndim=1):
        for axis in class_axes(z.ndim):
            expected = function(np.ascontiguousarray(z), axis=axis, backend=backend)
            got = function(z, axis=axis, backend=backend)
            assert_same_as_contiguous(backend, got, expected, f"{description} axis={axis}")


def _losses(function, operands, kwargs, backend):
    """Per-sample losses, the sum and the gradients, for comparison."""
    results = []
    for reduction in ("none", "sum"):
        loss, grad = function(*operands["args"], **operands["kwargs"], **kwargs,
                              reduction=reduction, return_grad=True, backend=backend)
        results += [loss, grad]
    return results


def _check_each_operand_layout(backend, function, operands, kwargs, description,
                               prediction_only=False):
    """Swap each operand in turn (or only the prediction) for each of its layouts."""
    expected = _losses(function, operands, kwargs, backend)
    names = [(("args", i), value) for i, value in enumerate(operands["args"])]
    names += [(("kwargs", key), value) for key, value in operands["kwargs"].items()]
    if prediction_only:
        names = names[:1]
    for (group, key), value in names:
        for layout, view in layouts(value):
            swapped = {"args": list(operands["args"]), "kwargs": dict(operands["kwargs"])}
            swapped[group][key] = view
            reference = _losses(function, _contiguous(swapped), kwargs, backend)
            got = _losses(function, swapped, kwargs, backend)
            label = f"{description}; operand {key} {layout}"
            for got_part, reference_part in zip(got, reference):
                assert_same_as_contiguous(backend, got_part, reference_part, label)
            if "broadcast" not in layout:  # same values as the contiguous operand
                for got_part, expected_part in zip(got, expected):
                    assert_same_as_contiguous(backend, got_part, expected_part, label)


def _contiguous(operands):
    return {"args": [np.ascontiguousarray(a) for a in operands["args"]],
            "kwargs": {k: np.ascontiguousarray(v) for k, v in operands["kwargs"].items()}}


MULTICLASS = [
    pytest.param(crossent.cross_entropy, "logits", False, id="cross_entropy-index"),
    pytest.param(crossent.cross_entropy, "logits", True, id="cross_entropy-soft"),
    pytest.param(crossent.categorical_cross_entropy, "probs", False, id="categorical-index"),
    pytest.param(crossent.categorical_cross_entropy, "probs", True, id="categorical-soft"),
    pytest.param(crossent.nll_loss, "logits", False, id="nll_loss"),
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + (np.int32,), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("function, kind, soft", MULTICLASS)
def test_multiclass_loss_layouts(backend, function, kind, soft, dtype):
    rng = np.random.default_rng(30)
    for shape in [s for s in SHAPES if len(s) >= 2]:
        for axis in class_axes(len(shape)):
            n_classes = shape[axis]
            lead = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
            if n_classes == 0 and np.prod(lead) > 0:
                continue  # no valid label exists
            x = random_values(shape, dtype, kind, rng)
            if soft:
                target = np.moveaxis(random_values(np.moveaxis(np.empty(shape), axis, -1).shape,
                                                   np.float64, "simplex", rng), -1, axis)
                target = target.astype(x.dtype if x.dtype.kind == "f" else np.float64)
            else:
                target = rng.integers(0, max(n_classes, 1), size=lead)
            weights = {"sample_weight": random_values(lead, np.float64, "positive", rng),
                       "weight": random_values((n_classes,), np.float64, "positive", rng)}
            operands = {"args": [x, target], "kwargs": weights}
            kwargs = {"axis": axis}
            if function is not crossent.nll_loss:
                kwargs["label_smoothing"] = 0.1
            # targets and weights are cast to the computation dtype the same
            # way for every prediction dtype: their layouts are tried once
            _check_each_operand_layout(backend, function, operands, kwargs,
                                       f"{np.dtype(dtype).name}{list(shape)} axis={axis}",
                                       prediction_only=dtype != np.float64)


ELEMENTWISE = [
    pytest.param(crossent.binary_cross_entropy, "probs", ("weight", "sample_weight"), id="bce"),
    pytest.param(crossent.binary_cross_entropy_with_logits, "logits",
                 ("weight", "pos_weight", "sample_weight"), id="bce_with_logits"),
    pytest.param(crossent.mse_loss, "logits", ("weight", "sample_weight"), id="mse_loss"),
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + (np.int32,), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("function, kind, weights", ELEMENTWISE)
def test_elementwise_loss_layouts(backend, function, kind, weights, dtype):
    rng = np.random.default_rng(31)
    for shape in [s for s in SHAPES if len(s) >= 1]:
        x = random_values(shape, dtype, kind, rng)
        target_kind = "logits" if function is crossent.mse_loss else "probs"
        target = random_values(shape, np.float64, target_kind, rng)
        weight_shapes = {"weight": shape[-1:], "pos_weight": shape[-1:], "sample_weight": shape}
        operands = {"args": [x, target],
                    "kwargs": {name: random_values(weight_shapes[name], np.float64, "positive", rng)
                               for name in weights}}
        _check_each_operand_layout(backend, function, operands, {},
                                   f"{np.dtype(dtype).name}{list(shape)}",
                                   prediction_only=dtype != np.float64)


@pytest.mark.parametrize("function", [crossent.sigmoid, crossent.log_sigmoid, crossent.softmax,
                                      crossent.log_softmax], ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4)])
def test_out_in_any_layout(backend, function, shape):
    """``out=`` may be any writable array of the right shape and dtype (a 3-D
    Fortran-ordered one folds into no two axes: computed aside, then copied)."""
    z = random_values(shape, np.float64, "logits")
    expected = function(z, backend=backend)
    for description, out in layouts(np.zeros_like(z), broadcast=False):
        if not out.flags.writeable:
            continue
        result = function(z, out=out, backend=backend)
        assert result is out, description
        assert_same_as_contiguous(backend, out, expected, f"out {description}")


# ---------------------------------------------------------------- random views (hypothesis)

@st.composite
def strided_views(draw, min_dims=1, max_dims=4):
    """A view with a random shape and a random step (negative too) per axis."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=5))
    steps = [draw(st.sampled_from([-3, -2, -1, 1, 2, 3])) for _ in shape]
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    base = random_values(tuple(n * abs(k) for n, k in zip(shape, steps)), dtype, "logits",
                         np.random.default_rng(seed))
    view = base[tuple(slice(None, None, k) for k in steps)]
    if draw(st.booleans()):  # also permute the axes
        view = view.transpose(draw(st.permutations(range(view.ndim))))
    return view


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_views_of_cross_entropy(backend, data):
    logits = data.draw(strided_views(min_dims=1))
    axis = data.draw(st.integers(-logits.ndim, logits.ndim - 1))
    lead = np.delete(np.array(logits.shape), axis % logits.ndim)
    target = np.random.default_rng(0).integers(0, logits.shape[axis], size=tuple(lead))
    results = [crossent.cross_entropy(x, target, axis=axis, reduction=reduction, return_grad=True,
                                      label_smoothing=0.05, backend=backend)
               for x in (logits, np.ascontiguousarray(logits)) for reduction in ("none", "sum")]
    description = f"shape {logits.shape} strides {logits.strides} axis {axis}"
    for got, expected in zip(results[:2], results[2:]):
        for got_part, expected_part in zip(got, expected):
            assert_same_as_contiguous(backend, got_part, expected_part, description)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_views_of_bce_with_logits(backend, data):
    z = data.draw(strided_views())
    y = (np.random.default_rng(1).uniform(size=z.shape) > 0.5).astype(z.dtype)
    got = crossent.binary_cross_entropy_with_logits(z, y, reduction="none", return_grad=True,
                                                    backend=backend)
    expected = crossent.binary_cross_entropy_with_logits(np.ascontiguousarray(z), y,
                                                         reduction="none", return_grad=True,
                                                         backend=backend)
    for got_part, expected_part in zip(got, expected):
        assert_same_as_contiguous(backend, got_part, expected_part,
                                  f"shape {z.shape} strides {z.strides}")
