"""SPEC §1: every misuse raises the documented exception, with a message that
names the argument, and leaves every input (and grad_out) untouched."""
import re

import numpy as np
import pytest

import crossent

N, C = 4, 3
RNG = np.random.default_rng(40)
LOGITS = RNG.normal(size=(N, C))
PROBS = RNG.uniform(0.1, 0.9, size=(N, C))
LABELS = np.array([0, 2, 1, 2])
BINARY = RNG.integers(0, 2, size=(N, C)).astype(float)

# name -> (function, valid positional arguments, name of the first argument)
LOSSES = {
    "binary_cross_entropy": (crossent.binary_cross_entropy, (PROBS, BINARY), "p"),
    "binary_cross_entropy_with_logits": (crossent.binary_cross_entropy_with_logits,
                                         (LOGITS, BINARY), "z"),
    "mse_loss": (crossent.mse_loss, (LOGITS, PROBS), "pred"),
    "cross_entropy": (crossent.cross_entropy, (LOGITS, LABELS), "logits"),
    "categorical_cross_entropy": (crossent.categorical_cross_entropy, (PROBS, LABELS), "probs"),
    "nll_loss": (crossent.nll_loss, (np.log(PROBS), LABELS), "log_probs"),
}
ACTIVATIONS = {name: (getattr(crossent, name), (LOGITS,), "z")
               for name in ("sigmoid", "log_sigmoid", "softmax", "log_softmax", "logsumexp")}
ALL = {**ACTIVATIONS, **LOSSES}
MULTICLASS = ["cross_entropy", "categorical_cross_entropy", "nll_loss"]
BINARY_LOSSES = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss"]
# the second argument is called y (binary losses) or target (the others)
TARGET_NAME = r"\b(target|y)\b"


def _copies(values):
    return [np.array(v, copy=True) if isinstance(v, np.ndarray) else v for v in values]


def assert_raises_untouched(exception, match, function, *args, **kwargs):
    """``function(*args, **kwargs)`` raises ``exception`` matching ``match``
    and modifies none of its array arguments."""
    before_args, before_kwargs = _copies(args), dict(zip(kwargs, _copies(kwargs.values())))
    with pytest.raises(exception, match=match) as info:
        function(*args, **kwargs)
    for before, after in zip(before_args, args):
        if isinstance(after, np.ndarray):
            np.testing.assert_array_equal(after, before, err_msg="an input was modified")
    for key, after in kwargs.items():
        if isinstance(after, np.ndarray):
            np.testing.assert_array_equal(after, before_kwargs[key], err_msg=f"{key} was modified")
    return info


BAD_DTYPES = [
    pytest.param(lambda a: a.astype(np.complex128), id="complex"),
    pytest.param(lambda a: a.astype(object), id="object"),
    pytest.param(lambda a: a.astype(str), id="str"),
    pytest.param(lambda a: np.zeros(a.shape, dtype="datetime64[s]"), id="datetime"),
    pytest.param(lambda a: np.zeros(a.shape, dtype="timedelta64[s]"), id="timedelta"),
]


@pytest.mark.parametrize("convert", BAD_DTYPES)
@pytest.mark.parametrize("name", list(ALL))
def test_unsupported_prediction_dtype_is_type_error(backend, name, convert):
    function, args, first = ALL[name]
    bad = convert(args[0])
    assert_raises_untouched(TypeError, rf"\b{first}\b", function, bad, *args[1:], backend=backend)


@pytest.mark.parametrize("convert", BAD_DTYPES)
@pytest.mark.parametrize("name", list(LOSSES))
def test_unsupported_target_dtype_is_type_error(backend, name, convert):
    function, args, _ = LOSSES[name]
    assert_raises_untouched(TypeError, TARGET_NAME, function, args[0], convert(args[1]),
                            backend=backend)


@pytest.mark.parametrize("keyword", ["weight", "sample_weight"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_complex_weight_is_type_error(backend, name, keyword):
    function, args, _ = LOSSES[name]
    shape = (C,) if keyword == "weight" else (N,) if name in MULTICLASS else (N, C)
    assert_raises_untouched(TypeError, rf"\b{keyword}\b", function, *args,
                            **{keyword: np.ones(shape, dtype=complex)}, backend=backend)


# ---------------------------------------------------------------- shapes

BAD_TARGETS = {"labels-too-long": np.zeros(N + 1, dtype=np.int64),
               "labels-2d": np.zeros((N, 1), dtype=np.int64),
               "soft-wrong-classes": np.zeros((N, C + 1)), "float-labels": np.zeros(N)}


# (prediction shape, class axis, target shape): the target's length differs
# from the predictions' shape without the class axis, which is not the class
# count either, so that both shapes must be named in full
WRONG_TARGET_SHAPES = {"2d": ((7, 5), -1, (6,)), "3d-axis-1": ((4, 5, 3), 1, (4, 5)),
                       "3d-axis-1-too-short": ((4, 5, 3), 1, (4,))}


@pytest.mark.parametrize("target_dtype", [np.int64, np.int32, np.float64, np.bool_],
                         ids=["int64", "int32", "float64", "bool"])
@pytest.mark.parametrize("case", list(WRONG_TARGET_SHAPES))
@pytest.mark.parametrize("name", MULTICLASS)
def test_wrong_target_shape_names_both_shapes(backend_or_default, name, case, target_dtype):
    """SPEC §1.3: a target that is neither class indices nor soft targets of
    the right shape raises ValueError naming the predictions' whole shape and
    the target's."""
    function, args, _ = LOSSES[name]
    shape, axis, target_shape = WRONG_TARGET_SHAPES[case]
    x = np.resize(args[0], shape)
    target = np.zeros(target_shape, dtype=target_dtype)
    info = assert_raises_untouched(ValueError, TARGET_NAME, function, x, target, axis=axis,
                                   backend=backend_or_default)
    message = str(info.value)
    assert str(shape) in message, f"message does not name the predictions' shape: {message}"
    assert str(target_shape) in message, f"message does not name the target's shape: {message}"


@pytest.mark.parametrize("name, target", [
    pytest.param(name, target, id=f"{name}-{label}") for name in MULTICLASS
    for label, target in BAD_TARGETS.items()
    if not (name == "nll_loss" and target.dtype.kind == "f")])  # nll: next test
def test_multiclass_target_shape_mismatch_names_both_shapes(backend_or_default, name, target):
    function, args, _ = LOSSES[name]
    info = assert_raises_untouched(ValueError, TARGET_NAME, function, args[0], target,
                                   backend=backend_or_default)
    message = str(info.value)
    assert str(args[0].shape) in message, f"message does not name the predictions' shape: {message}"
    assert str(target.shape) in message, f"message does not name the target's shape: {message}"


@pytest.mark.parametrize("name", MULTICLASS)
def test_bool_targets_of_either_shape_name_both_shapes(backend_or_default, name):
    """SPEC §1.3: bool is neither class indices nor probabilities."""
    function, args, _ = LOSSES[name]
    x = args[0]
    for target in (np.zeros(x.shape[:-1], bool), np.zeros(x.shape, bool)):
        info = assert_raises_untouched(ValueError, TARGET_NAME, function, x, target,
                                       backend=backend_or_default)
        message = str(info.value)
        assert str(x.shape) in message and str(target.shape) in message, message


def test_nll_loss_refuses_floating_targets(backend):
    probs = np.full((N, C), 1 / C)
    assert_raises_untouched(ValueError, TARGET_NAME, crossent.nll_loss, np.log(probs), probs,
                            backend=backend)


@pytest.mark.parametrize("name", BINARY_LOSSES)
def test_binary_target_shape_mismatch(backend, name):
    function, args, _ = LOSSES[name]
    assert_raises_untouched(ValueError, TARGET_NAME, function, args[0], args[1][:, :2],
                            backend=backend)


@pytest.mark.parametrize("keyword, value", [
    ("weight", np.ones(C + 1)), ("weight", np.ones((C, 1))), ("sample_weight", np.ones(N + 1)),
    ("sample_weight", np.ones((N, C)))])
@pytest.mark.parametrize("name", MULTICLASS)
def test_multiclass_weight_shape_mismatch(backend, name, keyword, value):
    function, args, _ = LOSSES[name]
    assert_raises_untouched(ValueError, rf"\b{keyword}\b", function, *args, **{keyword: value},
                            backend=backend)


@pytest.mark.parametrize("name, keyword", [
    (name, keyword) for name in BINARY_LOSSES
    for keyword in ("weight", "sample_weight", "pos_weight")
    if keyword != "pos_weight" or name == "binary_cross_entropy_with_logits"])
def test_binary_weight_not_broadcastable(backend, name, keyword):
    function, args, _ = LOSSES[name]
    assert_raises_untouched(ValueError, rf"\b{keyword}\b", function, *args,
                            **{keyword: np.ones(C + 1)}, backend=backend)


@pytest.mark.parametrize("axis", [2, -3, 5])
@pytest.mark.parametrize("name", MULTICLASS + ["softmax", "log_softmax", "logsumexp"])
def test_axis_out_of_range(backend, name, axis):
    function, args, _ = ALL[name]
    assert_raises_untouched(ValueError, r"\baxis\b", function, *args, axis=axis, backend=backend)


# ---------------------------------------------------------------- labels

@pytest.mark.parametrize("name", MULTICLASS)
@pytest.mark.parametrize("bad_label", [C, 7, -1, -101])
def test_label_out_of_range_names_position_and_value(backend, name, bad_label):
    function, args, _ = LOSSES[name]
    labels = np.array([0, 1, 2, 1, bad_label, 0])
    x = np.resize(args[0], (6, C))
    info = assert_raises_untouched(ValueError, TARGET_NAME, function, x, labels, backend=backend)
    message = str(info.value)
    assert re.search(rf"(?<![\d.]){bad_label}(?![\d.])", message), f"value missing: {message}"
    assert re.search(r"(?<![\d-])4(?!\d)", message.replace(str(bad_label), "")), \
        f"position 4 missing: {message}"


@pytest.mark.parametrize("name", MULTICLASS)
def test_label_out_of_range_in_nd_target_names_its_position(backend, name):
    function, args, _ = LOSSES[name]
    x = np.resize(args[0], (2, 3, C))
    labels = np.zeros((2, 3), dtype=np.int32)
    labels[1, 2] = 9
    info = assert_raises_untouched(ValueError, r"\b9\b", function, x, labels, backend=backend)
    assert re.search(r"[(\[]1, 2[)\]]|\b5\b", str(info.value)), str(info.value)


@pytest.mark.parametrize("name", MULTICLASS)
def test_ignored_label_outside_range_is_accepted(backend, name):
    """ignore_index itself is never out of range (-100 by default, or any int)."""
    function, args, _ = LOSSES[name]
    for ignore_index, label in [(-100, -100), (-1, -1), (C + 5, C + 5)]:
        labels = np.array([0, label, 1, 2])
        assert np.isfinite(function(args[0], labels, ignore_index=ignore_index, backend=backend))


# ---------------------------------------------------------------- options

@pytest.mark.parametrize("reduction", ["avg", "MEAN", "", None, 1, "none "])
@pytest.mark.parametrize("name", list(LOSSES))
def test_bad_reduction(backend, name, reduction):
    function, args, _ = LOSSES[name]
    info = assert_raises_untouched(ValueError, r"\breduction\b", function, *args,
                                   reduction=reduction, backend=backend)
    assert repr(reduction) in str(info.value) or str(reduction) in str(info.value)


@pytest.mark.parametrize("name", ["cross_entropy", "categorical_cross_entropy"])
def test_soft_targets_with_non_default_ignore_index(backend, name):
    function, args, _ = LOSSES[name]
    soft = np.full((N, C), 1 / C)
    assert_raises_untouched(ValueError, r"\bignore_index\b", function, args[0], soft,
                            ignore_index=0, backend=backend)


@pytest.mark.parametrize("smoothing", [-0.1, 1.5, np.inf, np.nan])
@pytest.mark.parametrize("name", ["cross_entropy", "categorical_cross_entropy",
                                  "binary_cross_entropy_with_logits"])
def test_label_smoothing_outside_unit_interval(backend, name, smoothing):
    function, args, _ = LOSSES[name]
    assert_raises_untouched(ValueError, r"\blabel_smoothing\b", function, *args,
                            label_smoothing=smoothing, backend=backend)


@pytest.mark.parametrize("value", [-1e-9, 1.5, -np.inf, np.inf])
def test_binary_cross_entropy_probabilities_outside_unit_interval(backend, value):
    p = PROBS.copy()
    p[2, 1] = value
    assert_raises_untouched(ValueError, r"\bp\b", crossent.binary_cross_entropy, p, BINARY,
                            backend=backend)


def test_binary_cross_entropy_nan_probability_propagates(backend):
    p = PROBS.copy()
    p[2, 1] = np.nan
    losses = crossent.binary_cross_entropy(p, BINARY, reduction="none", backend=backend)
    assert np.isnan(losses[2, 1]) and np.isfinite(np.delete(losses.ravel(), 2 * C + 1)).all()
    assert np.isnan(crossent.binary_cross_entropy(p, BINARY, backend=backend))


# ---------------------------------------------------------------- grad_out and out

def _grad_out_cases(shape, dtype):
    readonly = np.zeros(shape, dtype)
    readonly.flags.writeable = False
    return [
        pytest.param(np.zeros(shape[:-1] + (shape[-1] + 1,), dtype), id="shape"),
        pytest.param(np.zeros(shape, np.float32), id="dtype"),
        pytest.param(np.zeros(shape, dtype, order="F"), id="fortran"),
        pytest.param(np.zeros((shape[0], 2 * shape[1]), dtype)[:, ::2], id="strided"),
        pytest.param(readonly, id="readonly"),
        pytest.param(np.zeros(shape, dtype).tolist(), id="list"),
    ]


@pytest.mark.parametrize("grad_out", _grad_out_cases((N, C), np.float64))
@pytest.mark.parametrize("name", list(LOSSES))
def test_bad_grad_out(backend, name, grad_out):
    function, args, _ = LOSSES[name]
    assert_raises_untouched(ValueError, r"\bgrad_out\b", function, *args, return_grad=True,
                            grad_out=grad_out, backend=backend)


@pytest.mark.parametrize("name", list(LOSSES))
def test_grad_out_overlapping_an_input(backend, name):
    function, args, _ = LOSSES[name]
    x = np.array(args[0], copy=True)
    assert_raises_untouched(ValueError, r"\bgrad_out\b", function, x, *args[1:],
                            return_grad=True, grad_out=x, backend=backend)


@pytest.mark.parametrize("out", [np.zeros((N, C + 1)), np.zeros((N, C), np.float32)],
                         ids=["shape", "dtype"])
@pytest.mark.parametrize("name", ["sigmoid", "log_sigmoid", "softmax", "log_softmax"])
def test_bad_out(backend, name, out):
    function, args, _ = ALL[name]
    assert_raises_untouched(ValueError, r"\bout\b", function, *args, out=out, backend=backend)


# ---------------------------------------------------------------- backend and threads

@pytest.mark.parametrize("name", list(ALL))
def test_unknown_backend(name):
    function, args, _ = ALL[name]
    info = assert_raises_untouched(ValueError, r"\bbackend\b", function, *args, backend="fortran")
    assert "fortran" in str(info.value)


def test_unknown_backend_in_set_backend_and_use_backend():
    before = crossent.get_backend()
    with pytest.raises(ValueError, match=r"\bbackend\b"):
        crossent.set_backend("fortran")
    with pytest.raises(ValueError, match=r"\bbackend\b"):
        with crossent.use_backend("fortran"):
            pass
    assert crossent.get_backend() == before


@pytest.mark.parametrize("n_threads", [0, -1])
@pytest.mark.parametrize("name", list(ALL))
def test_non_positive_n_threads(backend, name, n_threads):
    function, args, _ = ALL[name]
    assert_raises_untouched(ValueError, r"\bn_threads\b", function, *args, n_threads=n_threads,
                            backend=backend)


@pytest.mark.parametrize("n_threads", [0, -3])
def test_set_num_threads_non_positive(n_threads):
    before = crossent.get_num_threads()
    with pytest.raises(ValueError, match=r"\bn"):
        crossent.set_num_threads(n_threads)
    assert crossent.get_num_threads() == before
