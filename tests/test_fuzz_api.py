"""The public functions' arguments, fuzzed: every function of
``crossent._api.FUNCTIONS`` (so a new loss or activation is fuzzed as soon
as it is listed there) with every keyword its signature has.

tests/test_properties.py draws *valid* calls of the functions it names and
checks them against the reference and finite differences; this file draws
from the whole argument space, valid and not: dtypes (bad ones included),
shapes (0-sized axes included), memory layouts (strides, negative strides,
Fortran, unaligned, read-only, broadcast), ``axis``, weights of good and bad
shapes and values, ``ignore_index``, ``reduction``, ``label_smoothing``,
``pos_weight``, ``alpha`` / ``gamma``, ``log_target``, ``return_grad``, and
edge values (NaN, ±inf, huge) inside the arrays.

Allowed outcomes, on every compiled backend and through the plain call
(``backend=None``, which takes the fast paths):

* the NumPy reference's result, within the tolerance of
  tests/test_properties.py (a few ulps of the array's scale; NaN exactly
  where the reference has NaN, the same infinities);
* the reference's documented error: the same ``TypeError`` / ``ValueError``
  with the same message;

and no input is modified.  Anything else fails: another exception, a
different answer, a crash (``make sanitize`` runs this file under
AddressSanitizer and UndefinedBehaviorSanitizer, where a memory error is a
failure too).  ``pytest -m slow tests/test_fuzz_api.py`` runs the campaign.
"""
import inspect
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

import crossent
from crossent import _api
from arrays import computation_dtype, layouts, random_values
from test_properties import compare_with_reference

DEFAULT_EXAMPLES = 25
# examples per test of the slow campaign; CROSSENT_FUZZ_CAMPAIGN=N runs N
CAMPAIGN_EXAMPLES = int(os.environ.get("CROSSENT_FUZZ_CAMPAIGN", 600))
FUZZ = settings(max_examples=DEFAULT_EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CAMPAIGN = settings(FUZZ, max_examples=CAMPAIGN_EXAMPLES)

FUNCTION_NAMES = list(_api.FUNCTIONS)
COMPILED = [name for name in crossent.backends() if name != "numpy"]
# every compiled backend, then the plain call (backend=None)
CHECKED_BACKENDS = COMPILED + [None]

GOOD_DTYPES = [np.float64, np.float32, np.float16, np.int8, np.int32, np.int64, np.uint8,
               np.bool_]
BAD_DTYPES = [np.complex128, object, str, "datetime64[s]", np.longdouble]
# Keywords every public function takes that are not fuzzed here: outputs
# (test_errors.py, test_contract.py) and the backend and threads, which are
# the subject of the comparison.
NOT_FUZZED = {"out", "grad_out", "backend", "n_threads"}
# The values a (pred / target) kind takes (arrays.random_values kinds).
VALUE_KINDS = {"logits": "logits", "probs": "probs", "log_probs": "logits", "binary": "binary",
               "real": "logits"}
EDGE_VALUES = [np.nan, np.inf, -np.inf, 0.0, 1.0, -1.0, 1e30, -1e30, 1e-30]
# Targets take no infinity: SPEC §1.7 defines non-finite predictions only,
# and a soft target of +inf gives inf on the reference, NaN on the kernels
# (∞·lse − ∞·z), both defensible for a target that is no probability.
TARGET_EDGE_VALUES = [v for v in EDGE_VALUES if not np.isinf(v)]


# ================================================================ arrays

shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)


def draw_layout(data, array, label):
    """``array`` in a memory layout of tests/arrays.py."""
    if array.ndim == 0 or array.dtype.kind in "OUSM":
        return array
    options = list(layouts(array))
    name, view = options[data.draw(st.integers(0, len(options) - 1), label=f"{label} layout")]
    event(f"layout: {name}")
    return view


def draw_array(data, rng, shape, kind, label, dtypes=GOOD_DTYPES, edge_values=EDGE_VALUES):
    """An array of ``shape`` whose values are of ``kind``, in a drawn dtype
    (rarely a bad one) and layout, with edge values now and then."""
    if data.draw(st.integers(0, 19), label=f"{label} bad dtype?") == 0:
        dtype = data.draw(st.sampled_from(BAD_DTYPES), label=f"{label} bad dtype")
        event(f"{label}: bad dtype")
        return np.zeros(shape).astype(dtype)
    dtype = np.dtype(data.draw(st.sampled_from(dtypes), label=f"{label} dtype"))
    if kind == "log_probs":
        values = np.log(random_values(shape, np.float64, "probs", rng))
    else:
        values = random_values(shape, np.float64, VALUE_KINDS.get(kind, kind), rng)
    if values.size and data.draw(st.integers(0, 4), label=f"{label} edge?") == 0:
        flat = values.reshape(-1)
        flat[data.draw(st.integers(0, flat.size - 1), label="at")] = data.draw(
            st.sampled_from(edge_values), label=f"{label} edge value")
        event(f"{label}: edge value")
    with np.errstate(all="ignore"):
        array = values.astype(dtype)
    array = draw_layout(data, array, label)
    form = data.draw(st.sampled_from(["array"] * 8 + ["list", "scalar"]), label=f"{label} form")
    if form == "list" and array.size <= 50:
        return array.tolist()
    if form == "scalar":
        return array.reshape(-1)[0].item() if array.size else 0.5
    return array


# ================================================================ options

def positive(shape):
    return lambda rng: rng.uniform(0.25, 2.0, size=shape)


def draw_weight(data, rng, label, good_shapes, bad_shapes):
    """A weight array of a good shape (mostly), or a bad shape, or bad values."""
    choice = data.draw(st.sampled_from(["good"] * 6 + ["bad shape", "negative", "nan", "list",
                                                       "bad dtype", "none"]), label=label)
    event(f"{label}: {choice}")
    good = data.draw(st.sampled_from(good_shapes), label=f"{label} shape")
    if choice == "bad shape":
        return rng.uniform(0.25, 2.0, size=data.draw(st.sampled_from(bad_shapes),
                                                     label=f"{label} bad shape"))
    if choice == "negative":
        return -rng.uniform(0.25, 2.0, size=good)
    if choice == "nan":
        return np.full(good, np.nan)
    if choice == "list":
        return rng.uniform(0.25, 2.0, size=good).tolist()
    if choice == "bad dtype":
        return np.ones(good, dtype=np.complex128)
    if choice == "none":
        return None
    return draw_layout(data, rng.uniform(0.25, 2.0, size=good), label)


SCALAR_OPTIONS = {
    "ignore_index": [-100, -1, 0, 1, 2, 2**31, -2**63, 2**63 - 1, 2**63, -2**63 - 1, True,
                     1.0, "1", None, np.int16(1), np.uint64(2**64 - 1)],
    "label_smoothing": [0.0, 0.1, 0.5, 1.0, -0.1, 1.5, np.nan, np.inf, True, None, "x",
                        np.float32(0.2), 1e-300],
    "alpha": [0.25, -1.0, 0.0, 1.0, 0.75, 2.5, np.nan, np.inf, -np.inf, True, "a", None,
              np.float16(0.5)],
    "gamma": [2.0, 0.0, 0.5, 1.0, 3.5, -1.0, np.nan, np.inf, True, "2", None, 1e300],
    "log_target": [False, True, np.bool_(True), 0, 1, None, "yes"],
    "z_loss": [0.0, 1e-4, 0.1, 2.0, -0.1, np.nan, np.inf, True, None, "x"],
    "softcap": [None, 30.0, 5.0, 1.0, 0.0, -1.0, np.nan, np.inf, True, "x"],
    "return_grad": [False, True, np.bool_(True)],
}


def draw_reduction(data, function):
    default = inspect.signature(function).parameters["reduction"].default
    valid = ["mean", "sum", "none"] + (["batchmean"] if default == "batchmean" else [])
    return data.draw(st.sampled_from(valid * 3 + ["batchmean", "avg", "MEAN", None, 0]),
                     label="reduction")


def draw_axis(data, ndim):
    valid = list(range(-ndim, ndim)) or [-1]
    return data.draw(st.sampled_from(valid * 4 + [ndim, -ndim - 1, 1.0, True, None, "0",
                                                  np.int64(-1)]), label="axis")


# ================================================================ a call

def draw_call(data, name):
    """(function, positional arguments, keyword arguments, the prediction's
    dtype) of a random call of ``name``: every keyword of its signature."""
    function = getattr(crossent, name)
    spec = _api.FUNCTIONS[name]
    parameters = inspect.signature(function).parameters
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    shape = data.draw(shapes, label="shape")
    pred = draw_array(data, rng, shape, spec.pred, "pred")
    ndim = len(shape)
    kwargs = {}
    if "axis" in parameters and data.draw(st.booleans(), label="axis given"):
        kwargs["axis"] = draw_axis(data, ndim)
    axis = kwargs.get("axis", -1)
    class_axis = axis % ndim if isinstance(axis, (int, np.integer)) and not isinstance(
        axis, bool) and ndim and -ndim <= axis < ndim else None
    if spec.over == "rows" and class_axis is not None:
        rows = shape[:class_axis] + shape[class_axis + 1:]
        n_classes = shape[class_axis]
    else:
        rows, n_classes = shape, 1
    for keyword in parameters:
        if keyword in NOT_FUZZED or keyword in kwargs or keyword in ("axis",):
            continue
        parameter = parameters[keyword]
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue                          # the positional arrays, drawn above
        if not data.draw(st.booleans(), label=f"{keyword} given"):
            continue
        kwargs[keyword] = draw_keyword(data, rng, function, keyword, spec, shape, rows,
                                       n_classes)
    args = [pred]
    if spec.target is not None:
        args.append(draw_target(data, rng, spec, shape, rows, n_classes, kwargs))
    return function, args, kwargs, np.asarray(pred).dtype


def draw_target(data, rng, spec, shape, rows, n_classes, kwargs):
    if spec.target == "labels":
        if data.draw(st.integers(0, 3), label="soft target?") == 0:
            event("target: soft")
            return draw_array(data, rng, shape, "probs", "target", [np.float64, np.float32],
                              TARGET_EDGE_VALUES)
        labels = rng.integers(0, max(n_classes, 1), size=rows)
        if labels.size and data.draw(st.booleans(), label="some labels off"):
            labels.reshape(-1)[0] = data.draw(st.sampled_from([-100, -1, n_classes, 2**40]),
                                              label="label off")
        target_dtype = data.draw(st.sampled_from([np.int64, np.int32, np.uint8, np.int8,
                                                  np.int16, np.uint64, np.float64]),
                                 label="label dtype")
        with np.errstate(all="ignore"):
            return draw_layout(data, labels.astype(target_dtype), "target")
    target_shape = shape
    if data.draw(st.integers(0, 9), label="target shape off?") == 0:
        target_shape = data.draw(shapes, label="target shape")
    kind = "log_probs" if spec.target == "probs" and kwargs.get("log_target") is True \
        else spec.target
    return draw_array(data, rng, target_shape, kind, "target", edge_values=TARGET_EDGE_VALUES)


def draw_keyword(data, rng, function, keyword, spec, shape, rows, n_classes):
    if keyword == "reduction":
        return draw_reduction(data, function)
    if keyword in SCALAR_OPTIONS:
        return data.draw(st.sampled_from(SCALAR_OPTIONS[keyword]), label=keyword)
    if keyword == "weight" and spec.over == "rows":
        return draw_weight(data, rng, keyword, [(n_classes,)],
                           [(n_classes + 1,), (n_classes, 2), ()])
    if keyword in ("weight", "sample_weight", "pos_weight"):
        good = [rows, rows[-1:], ()] if keyword != "pos_weight" else [shape[-1:], ()]
        return draw_weight(data, rng, keyword, good,
                           [tuple(n + 1 for n in rows) or (2,), (7,) + tuple(rows)])
    pytest.fail(f"{function.__name__} takes {keyword!r}, which tests/test_fuzz_api.py does not "
                f"draw: add it to draw_keyword")


# ================================================================ the check

def snapshot(values):
    return [np.array(v, copy=True) if isinstance(v, np.ndarray) else None for v in values]


def check_call(data, name):
    function, args, kwargs, dtype = draw_call(data, name)
    arrays = list(args) + list(kwargs.values())
    before = snapshot(arrays)

    def call(backend):
        return function(*args, **kwargs, backend=backend)

    def loss_scale():
        try:
            options = dict(kwargs, reduction="none", return_grad=False)
            losses = function(*args, **options, backend="numpy")
            return float(np.nansum(np.abs(np.where(np.isinf(losses), 0, losses))))
        except (TypeError, ValueError):
            return 1.0

    for backend in CHECKED_BACKENDS:
        compare_with_reference(backend, call, computation_dtype_of(dtype), loss_scale)
    for original, after in zip(before, arrays):
        if original is not None:
            np.testing.assert_array_equal(after, original, err_msg="an input was modified")


def computation_dtype_of(dtype):
    try:
        return computation_dtype(dtype)
    except TypeError:
        return np.dtype(np.float64)


@pytest.mark.parametrize("name", FUNCTION_NAMES)
@FUZZ
@given(data=st.data())
def test_fuzzed_arguments(name, data):
    check_call(data, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", FUNCTION_NAMES)
@CAMPAIGN
@given(data=st.data())
def test_fuzzed_arguments_campaign(name, data):
    check_call(data, name)


def test_every_function_is_fuzzed():
    """The list comes from crossent._api.FUNCTIONS, and every public function
    is in it: a new loss cannot miss the fuzzer."""
    public = {name for name in crossent.__all__ if callable(getattr(crossent, name))
              and name in _api.__all__}
    assert public == set(FUNCTION_NAMES)


# ================================================================ bugs the fuzzer found

@pytest.mark.parametrize("name", ["cross_entropy", "categorical_cross_entropy", "nll_loss"])
@pytest.mark.parametrize("ignore_index", [2**63, -2**63 - 1, 2**64])
@pytest.mark.parametrize("backend", crossent.backends() + [None])
def test_ignore_index_beyond_int64_is_the_documented_value_error(name, ignore_index, backend):
    """The fast path handed it to the compiled call, whose int64 argument
    raised OverflowError; it is the general path's ValueError on every path."""
    logits, labels = np.full((4, 3), 1 / 3), np.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match=rf"ignore_index: expected an int64 value, "
                                         rf"got {ignore_index}"):
        getattr(crossent, name)(logits, labels, ignore_index=ignore_index, backend=backend)


@pytest.mark.parametrize("backend", crossent.backends() + [None])
def test_label_smoothing_none_is_the_documented_type_error(backend):
    """The fast path took label_smoothing=None for nll_loss's call and gave
    the compiled cross-entropy one argument too few (a TypeError about
    positional arguments); it is the general path's message on every path."""
    with pytest.raises(TypeError, match=r"^label_smoothing: expected a float in \[0, 1\], "
                                        r"got NoneType$"):
        crossent.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=None,
                               backend=backend)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", ["cross_entropy", "categorical_cross_entropy", "nll_loss"])
@pytest.mark.parametrize("bad_weight", [np.nan, np.inf])
@pytest.mark.parametrize("backend", crossent.backends())
def test_an_ignored_sample_weighs_nothing_whatever_its_weight(name, bad_weight, backend):
    """SPEC §1.5: an ignored sample's weight is 0, not 0 times its
    sample_weight.  The reference multiplied (0·NaN = NaN in the
    denominator, the per-sample loss and the gradient); the kernels skip."""
    probs = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    pred = probs if name == "categorical_cross_entropy" else np.log(probs)
    target = np.array([-100, 1, 2])
    weights = np.array([bad_weight, 0.5, 2.0])
    function = getattr(crossent, name)
    loss, grad = function(pred, target, sample_weight=weights, return_grad=True, backend=backend)
    kept_loss, kept_grad = function(pred[1:], target[1:], sample_weight=weights[1:],
                                    return_grad=True, backend=backend)
    assert loss == kept_loss
    np.testing.assert_array_equal(grad[0], np.zeros(3))
    np.testing.assert_array_equal(grad[1:], kept_grad)
    losses = function(pred, target, sample_weight=weights, reduction="none", backend=backend)
    assert losses[0] == 0.0
    all_ignored = function(pred, np.full(3, -100), sample_weight=weights, return_grad=True,
                           backend=backend)
    assert np.isnan(all_ignored[0])
    np.testing.assert_array_equal(all_ignored[1], np.zeros_like(pred))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", crossent.backends())
def test_nll_gradient_is_zero_off_the_target_class_even_with_nan_weights(backend):
    """nll_loss's loss depends only on the target class's entry, so the other
    entries of its gradient are 0 (as the kernels and PyTorch give) even when
    a NaN class weight makes the mean's denominator NaN; the reference gave
    0·NaN = NaN there."""
    log_probs = np.log(np.array([[0.3, 0.7], [0.5, 0.5]]))
    loss, grad = crossent.nll_loss(log_probs, np.array([0, 1]), weight=np.array([np.nan, 1.0]),
                                   return_grad=True, backend=backend)
    assert np.isnan(loss)
    assert np.isnan(grad[0, 0]) and np.isnan(grad[1, 1])
    assert grad[0, 1] == 0.0 and grad[1, 0] == 0.0
