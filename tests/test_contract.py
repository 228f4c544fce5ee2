"""The rules of SPEC §1 that every function obeys: dtypes, reductions and the
weighted mean, empty input, NaN and infinities, inputs never modified,
grad_out and out reuse, thread-count independence."""
import inspect
import tracemalloc
import warnings

import numpy as np
import pytest

import crossent
from crossent import _api
from arrays import computation_dtype, random_values

N, C = 6, 4
RNG = np.random.default_rng(50)


def make_case(name, dtype=np.float64, n=N, rng=None, classes=C):
    """(function, prediction, target) of a valid call on ``n`` rows of ``classes``."""
    rng = np.random.default_rng(51) if rng is None else rng
    shape = (n, classes)
    multiclass_target = rng.integers(0, classes, size=n)
    cases = {
        "binary_cross_entropy": (crossent.binary_cross_entropy, "probs",
                                 random_values(shape, np.float64, "binary", rng)),
        "binary_cross_entropy_with_logits": (crossent.binary_cross_entropy_with_logits, "logits",
                                             random_values(shape, np.float64, "binary", rng)),
        "mse_loss": (crossent.mse_loss, "logits", rng.normal(size=shape)),
        "cross_entropy": (crossent.cross_entropy, "logits", multiclass_target),
        "cross_entropy_soft": (crossent.cross_entropy, "logits",
                               random_values(shape, np.float64, "simplex", rng)),
        "categorical_cross_entropy": (crossent.categorical_cross_entropy, "probs",
                                      multiclass_target),
        "categorical_cross_entropy_soft": (crossent.categorical_cross_entropy, "probs",
                                           random_values(shape, np.float64, "simplex", rng)),
        "nll_loss": (crossent.nll_loss, "logits", multiclass_target),
    }
    function, kind, target = cases[name]
    return function, random_values(shape, dtype, kind, rng), target


LOSS_NAMES = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss",
              "cross_entropy", "cross_entropy_soft", "categorical_cross_entropy",
              "categorical_cross_entropy_soft", "nll_loss"]
MULTICLASS_INDEX = ["cross_entropy", "categorical_cross_entropy", "nll_loss"]
ELEMENTWISE_ACTIVATIONS = [crossent.sigmoid, crossent.log_sigmoid]
ROW_ACTIVATIONS = [crossent.softmax, crossent.log_softmax, crossent.logsumexp]
PREDICTION_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8,
                     np.bool_]


def is_multiclass(name):
    return name not in ("binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss")


def weight_options(name, rng, n=N, classes=C):
    """weight= and sample_weight= of the right shapes for loss ``name``."""
    sample_shape = (n,) if is_multiclass(name) else (n, 1)  # binary: broadcast along columns
    return {"weight": rng.uniform(0.3, 2.0, size=classes),
            "sample_weight": rng.uniform(0.3, 2.0, size=sample_shape)}


@pytest.fixture
def backend(backend_or_default):
    """Every rule here holds on each backend and through the plain call."""
    return backend_or_default


PUBLIC_FUNCTIONS = [getattr(crossent, name) for name in _api.__all__]


@pytest.mark.parametrize("function", PUBLIC_FUNCTIONS, ids=lambda f: f.__name__)
def test_backend_none_is_the_plain_call(function):
    """``backend=None`` is the keyword's default, and there is no **kwargs to
    tell it from an omitted keyword: the "default" runs of these tests are the
    plain call."""
    parameters = inspect.signature(function).parameters
    assert parameters["backend"].default is None
    assert parameters["n_threads"].default is None
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters.values())


# ---------------------------------------------------------------- dtypes

@pytest.mark.parametrize("dtype", PREDICTION_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_dtype_follows_prediction(backend, name, dtype):
    function, x, target = make_case(name, dtype)
    expected = computation_dtype(dtype)
    for reduction in ("mean", "sum"):
        loss, grad = function(x, target, reduction=reduction, return_grad=True, backend=backend)
        assert isinstance(loss, np.floating) and loss.dtype == expected, (reduction, type(loss))
        assert isinstance(float(loss), float)
        assert grad.dtype == expected and grad.shape == x.shape
    losses = function(x, target, reduction="none", backend=backend)
    assert losses.dtype == expected
    assert losses.shape == ((N,) if is_multiclass(name) else (N, C))


@pytest.mark.parametrize("target_dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_target_dtype_does_not_change_computation_dtype(backend, dtype, target_dtype):
    function, x, target = make_case("binary_cross_entropy_with_logits", dtype)
    loss = function(x, target.astype(target_dtype), backend=backend)
    assert loss.dtype == dtype
    soft = make_case("cross_entropy_soft", dtype)[2].astype(target_dtype)
    assert crossent.cross_entropy(x, soft, backend=backend).dtype == dtype


@pytest.mark.parametrize("target_dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8,
                                          np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("name", MULTICLASS_INDEX)
def test_every_integer_target_dtype_holds_indices(backend, name, target_dtype):
    function, x, target = make_case(name)
    expected = function(x, target, reduction="none", backend=backend)
    got = function(x, target.astype(target_dtype), reduction="none", backend=backend)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", PREDICTION_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("function", ELEMENTWISE_ACTIVATIONS + ROW_ACTIVATIONS,
                         ids=lambda f: f.__name__)
def test_activation_dtype_follows_input(backend, function, dtype):
    z = random_values((3, 5), dtype, "logits")
    result = function(z, backend=backend)
    assert result.dtype == computation_dtype(dtype)
    expected = function(z.astype(computation_dtype(dtype)), backend=backend)
    np.testing.assert_array_equal(result, expected)


def test_float32_sums_are_accumulated_in_float64(backend):
    """2^20 equal float32 losses: a float32 running sum would drift by
    thousands of ulps; float64 accumulation rounds once."""
    n = 1 << 20
    z = np.full(n, 0.3, dtype=np.float32)
    y = np.ones(n, dtype=np.float32)
    per_sample = crossent.binary_cross_entropy_with_logits(z[:1], y[:1], reduction="none",
                                                           backend=backend)[0]
    total = crossent.binary_cross_entropy_with_logits(z, y, reduction="sum", backend=backend)
    mean = crossent.binary_cross_entropy_with_logits(z, y, backend=backend)
    assert total == np.float32(np.float64(per_sample) * n)
    assert mean == per_sample


# ---------------------------------------------------------------- weighted mean (SPEC §1.5)

@pytest.mark.parametrize("name", MULTICLASS_INDEX)
def test_index_target_weighted_mean(backend, name):
    """mean = Σ s·w_t·l / Σ s·w_t over the samples not ignored, and "none"
    returns s·w_t·l (0 for ignored samples)."""
    rng = np.random.default_rng(52)
    function, x, target = make_case(name)
    target[[1, 4]] = 2
    options = weight_options(name, rng)
    s, w = options["sample_weight"], options["weight"]
    plain = function(x, target, reduction="none", backend=backend)
    weighted = function(x, target, **options, ignore_index=2, reduction="none", backend=backend)
    kept = target != 2
    factor = np.where(kept, s * w[target], 0.0)
    np.testing.assert_allclose(weighted, factor * plain, rtol=1e-14)
    mean = function(x, target, **options, ignore_index=2, backend=backend)
    assert mean == pytest.approx(np.sum(factor * plain) / np.sum(factor), rel=1e-14)
    unweighted = function(x, target, ignore_index=2, backend=backend)
    assert unweighted == pytest.approx(np.mean(plain[kept]), rel=1e-14)
    total = function(x, target, **options, ignore_index=2, reduction="sum", backend=backend)
    assert total == pytest.approx(np.sum(weighted), rel=1e-14)


@pytest.mark.parametrize("name", ["cross_entropy", "categorical_cross_entropy"])
def test_index_target_smoothed_weighted_mean_divides_by_target_weights(backend, name):
    rng = np.random.default_rng(53)
    function, x, target = make_case(name)
    options = weight_options(name, rng)
    kwargs = dict(options, label_smoothing=0.3, backend=backend)
    losses = function(x, target, reduction="none", **kwargs)
    denominator = np.sum(options["sample_weight"] * options["weight"][target])
    assert function(x, target, **kwargs) == pytest.approx(np.sum(losses) / denominator, rel=1e-14)


@pytest.mark.parametrize("name", ["cross_entropy_soft", "categorical_cross_entropy_soft"])
def test_soft_target_weighted_mean(backend, name):
    """Class weights act inside each sample's loss; the mean divides by Σ s
    (by N without sample_weight)."""
    rng = np.random.default_rng(54)
    function, x, target = make_case(name)
    options = weight_options(name, rng)
    s, w = options["sample_weight"], options["weight"]
    inside = function(x, target, weight=w, reduction="none", backend=backend)
    # the class weight inside: the loss of target y with weights w is the loss of y·w unweighted
    # (label_smoothing 0, and the loss is linear in y)
    np.testing.assert_allclose(inside, function(x, target * w, reduction="none", backend=backend),
                               rtol=1e-14)
    weighted = function(x, target, **options, reduction="none", backend=backend)
    np.testing.assert_allclose(weighted, s * inside, rtol=1e-14)
    assert function(x, target, **options, backend=backend) == pytest.approx(
        np.sum(weighted) / np.sum(s), rel=1e-14)
    assert function(x, target, weight=w, backend=backend) == pytest.approx(
        np.sum(inside) / N, rel=1e-14)


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_cross_entropy_with_logits",
                                  "mse_loss"])
def test_elementwise_weighted_mean(backend, name):
    """Binary losses: Σ s·w·l / Σ s (element count without s); mse_loss
    (PyTorch 2.13): Σ s·w·l / Σ s·w."""
    rng = np.random.default_rng(55)
    function, x, target = make_case(name)
    options = weight_options(name, rng)
    s = np.broadcast_to(options["sample_weight"], x.shape)
    w = np.broadcast_to(options["weight"], x.shape)
    plain = function(x, target, reduction="none", backend=backend)
    weighted = function(x, target, **options, reduction="none", backend=backend)
    np.testing.assert_allclose(weighted, s * w * plain, rtol=1e-14)
    denominator = np.sum(s * w) if name == "mse_loss" else np.sum(s)
    assert function(x, target, **options, backend=backend) == pytest.approx(
        np.sum(weighted) / denominator, rel=1e-14)
    only_w = function(x, target, weight=options["weight"], backend=backend)
    expected_only_w = np.sum(w * plain) / (np.sum(w) if name == "mse_loss" else x.size)
    assert only_w == pytest.approx(expected_only_w, rel=1e-14)


def _zero_denominator_calls(name, x, target):
    """Calls whose mean has a zero denominator: all samples ignored (integer
    targets), all sample weights 0 (every loss), or weights that cancel over a
    nonzero total (nan all the same, SPEC §1.5)."""
    zero_s = np.zeros(N) if is_multiclass(name) else np.zeros_like(x)
    cancelling = zero_s.copy()
    cancelling.flat[:2] = [1.0, -1.0]
    calls = [{"sample_weight": zero_s}, {"sample_weight": cancelling}]
    if name in MULTICLASS_INDEX:
        target[:] = 1
        calls.append({"ignore_index": 1})
    return calls


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_zero_denominator_gives_nan_and_zero_gradient(backend, name):
    function, x, target = make_case(name)
    for options in _zero_denominator_calls(name, x, target):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loss, grad = function(x, target, **options, return_grad=True, backend=backend)
            total = function(x, target, **options, reduction="sum", backend=backend)
        assert np.isnan(loss), options
        np.testing.assert_array_equal(grad, np.zeros_like(grad), err_msg=str(options))
        if not np.any(options.get("sample_weight", 0)):
            assert total == 0, options


# ---------------------------------------------------------------- one class

# Every option that reaches the one-class row: class weight and label
# smoothing, sample weights, and ignored rows.  The weight and smoothing pairs
# are ones where (1 − ε)·w + ε·w, the row's scale, rounds away from
# w·(1 − ε + ε), the target's term, in float64.
ONE_CLASS_OPTIONS = {
    "plain": {}, "weight": {"weight": [1.7]}, "smoothing": {"label_smoothing": 0.1},
    "weight-smoothing": {"weight": [1.7], "label_smoothing": 0.2},
    "weight-full-smoothing": {"weight": [0.3], "label_smoothing": 1.0},
    "all": {"weight": [1.3], "label_smoothing": 0.1, "sample_weight": "rows"},
}
# 67 rows: a block of 64 (in groups of 16 rows where there is no smoothing)
# and 3 rows one at a time; 40 000 rows: enough work for several threads
ONE_CLASS_ROWS = [67, 40_000]


@pytest.mark.parametrize("n", ONE_CLASS_ROWS)
@pytest.mark.parametrize("option", list(ONE_CLASS_OPTIONS))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target_kind", ["index", "soft"])
def test_one_class_cross_entropy_is_exactly_zero(backend, target_kind, dtype, reduction, option,
                                                 n):
    """With one class the softmax is 1 whatever the logit: the loss and its
    gradient are exactly 0 (as PyTorch gives), with every option."""
    rng = np.random.default_rng(59)
    z = rng.normal(scale=30.0, size=(n, 1)).astype(dtype)
    if target_kind == "index":
        target = np.zeros(n, dtype=np.int64)
        target[::7] = -100
    else:   # any probability: the gradient p·Σ w·y' − w·y' is 0 for p = 1
        target = rng.uniform(0.0, 1.0, size=(n, 1)).astype(dtype)
    options = dict(ONE_CLASS_OPTIONS[option])
    if options.get("sample_weight") == "rows":
        options["sample_weight"] = rng.uniform(0.3, 2.0, size=n)
    loss, grad = crossent.cross_entropy(z, target, **options, reduction=reduction,
                                        return_grad=True, backend=backend)
    np.testing.assert_array_equal(loss, np.zeros_like(loss))
    np.testing.assert_array_equal(grad, np.zeros_like(grad))


# ---------------------------------------------------------------- reductions

@pytest.mark.parametrize("name", LOSS_NAMES)
def test_reductions_agree(backend, name):
    function, x, target = make_case(name)
    losses, grad_none = function(x, target, reduction="none", return_grad=True, backend=backend)
    total, grad_sum = function(x, target, reduction="sum", return_grad=True, backend=backend)
    mean, grad_mean = function(x, target, return_grad=True, backend=backend)
    assert total == pytest.approx(np.sum(losses), rel=1e-14)
    assert mean == pytest.approx(np.sum(losses) / losses.size, rel=1e-14)
    np.testing.assert_array_equal(grad_none, grad_sum)
    np.testing.assert_allclose(grad_mean, grad_sum / losses.size, rtol=1e-14)


# ---------------------------------------------------------------- empty input

@pytest.mark.parametrize("name", LOSS_NAMES)
def test_empty_input(backend, name):
    function, x, target = make_case(name, n=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        total, grad = function(x, target, reduction="sum", return_grad=True, backend=backend)
        mean = function(x, target, backend=backend)
        losses = function(x, target, reduction="none", backend=backend)
    assert total == 0 and total.dtype == np.float64
    assert np.isnan(mean)
    assert losses.shape == ((0,) if is_multiclass(name) else (0, C)) and losses.dtype == np.float64
    assert grad.shape == x.shape


@pytest.mark.parametrize("function", ELEMENTWISE_ACTIVATIONS + ROW_ACTIVATIONS,
                         ids=lambda f: f.__name__)
def test_empty_activation(backend, function):
    z = np.empty((0, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = function(z, backend=backend)
    assert result.shape == ((0,) if function is crossent.logsumexp else (0, 3))


def test_logsumexp_of_an_empty_row_is_a_scalar_minus_inf(backend):
    """As scipy.special.logsumexp: a 1-D input gives a scalar, empty or not."""
    for z in (np.zeros(0), np.zeros(0, np.float32), np.zeros(3)):
        result = crossent.logsumexp(z, backend=backend)
        assert isinstance(result, np.generic) and result.dtype == z.dtype
    assert crossent.logsumexp(np.zeros(0), backend=backend) == -np.inf
    assert crossent.logsumexp(np.zeros((2, 0)), backend=backend).tolist() == [-np.inf, -np.inf]


# ---------------------------------------------------------------- non-finite values

@pytest.mark.parametrize("name", LOSS_NAMES)
def test_nan_prediction_gives_nan_for_its_sample_only(backend, name):
    function, x, target = make_case(name)
    x[2, 1] = np.nan
    losses = function(x, target, reduction="none", backend=backend)
    bad = np.isnan(losses)
    if is_multiclass(name):
        np.testing.assert_array_equal(bad, np.arange(N) == 2)
    else:
        expected = np.zeros_like(bad)
        expected[2, 1] = True
        np.testing.assert_array_equal(bad, expected)
    assert np.isnan(function(x, target, backend=backend))
    assert np.isnan(function(x, target, reduction="sum", backend=backend))


@pytest.mark.parametrize("return_grad", [False, True])
def test_nll_nan_found_in_any_row_of_a_long_batch(backend, return_grad):
    # The NLL kernel scans runs of consecutive rows for a NaN at once: a NaN
    # anywhere in a run still poisons its own row only, and not the gradient.
    rows, classes = 3000, 10
    x = RNG.normal(size=(rows, classes)).astype(np.float32)
    target = RNG.integers(0, classes, rows)
    poisoned = [0, 1, 1023, 1024, 2047, rows - 1]
    for r in poisoned:
        x[r, (target[r] + 1) % classes] = np.nan
    result = crossent.nll_loss(x, target, reduction="none", return_grad=return_grad,
                               backend=backend)
    losses = result[0] if return_grad else result
    np.testing.assert_array_equal(np.flatnonzero(np.isnan(losses)), poisoned)
    if return_grad:
        expected = np.zeros_like(x)
        expected[np.arange(rows), target] = -1.0
        np.testing.assert_array_equal(result[1], expected)


@pytest.mark.parametrize("function", [crossent.softmax, crossent.log_softmax])
def test_nan_logit_poisons_its_row_only(backend, function):
    z = RNG.normal(size=(3, 4))
    z[1, 2] = np.nan
    result = function(z, backend=backend)
    assert np.isnan(result[1]).all() and np.isfinite(result[[0, 2]]).all()
    assert np.isnan(crossent.logsumexp(z, backend=backend)[1])


def test_non_finite_and_overflowing_inputs_warn_on_no_backend(backend):
    """The compiled kernels compute inf and NaN silently, as C does; the
    NumPy reference does the same."""
    inf = np.inf
    big = np.array([3e38, -3e38], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crossent.softmax(np.array([[inf, inf], [-inf, -inf]]), backend=backend)
        crossent.log_softmax(np.array([[inf, 0.0], [np.nan, 1.0]]), backend=backend)
        crossent.mse_loss(big, -big, return_grad=True, backend=backend)
        crossent.cross_entropy(np.array([[inf, -inf, 0.0]]), np.array([[0.0, 1.0, 0.0]]),
                               return_grad=True, backend=backend)
        crossent.binary_cross_entropy_with_logits(np.array([inf, -inf, np.nan]),
                                                  np.array([0.0, 1.0, 1.0]), return_grad=True,
                                                  backend=backend)
        crossent.kl_div(np.array([[-inf, 0.0]]), np.array([[0.0, 1.0]]), return_grad=True,
                        backend=backend)


def test_infinite_logits_give_the_limit(backend):
    inf = np.inf
    z = np.array([inf, -inf, inf, -inf])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    losses, grad = crossent.binary_cross_entropy_with_logits(z, y, reduction="none",
                                                             return_grad=True, backend=backend)
    np.testing.assert_array_equal(losses, [0.0, 0.0, inf, inf])
    np.testing.assert_array_equal(grad, [0.0, 0.0, 1.0, -1.0])
    np.testing.assert_array_equal(crossent.sigmoid(np.array([inf, -inf]), backend=backend), [1, 0])
    np.testing.assert_array_equal(crossent.log_sigmoid(np.array([inf, -inf]), backend=backend),
                                  [0, -inf])


def test_minus_infinite_logit_is_an_impossible_class(backend):
    inf = np.inf
    z = np.array([[-inf, 0.0, 1.0]])
    np.testing.assert_array_equal(crossent.softmax(z, backend=backend)[0, 0], 0.0)
    assert crossent.log_softmax(z, backend=backend)[0, 0] == -inf
    assert crossent.logsumexp(z, backend=backend)[0] == np.logaddexp(0.0, 1.0)
    loss, grad = crossent.cross_entropy(z, [2], return_grad=True, backend=backend)
    assert np.isfinite(loss) and np.isfinite(grad).all() and grad[0, 0] == 0
    assert crossent.cross_entropy(z, [0], backend=backend) == inf
    assert crossent.logsumexp(np.array([-inf, -inf]), backend=backend) == -inf


def test_plus_infinite_logit_takes_all_probability(backend):
    """SPEC §1.7: softmax has a limit when one logit is +inf ([1, 0, ...]);
    two +inf logits have none (NaN)."""
    inf = np.inf
    z = np.array([[inf, 0.0, -inf], [inf, inf, 0.0]])
    np.testing.assert_array_equal(crossent.softmax(z, backend=backend)[0], [1.0, 0.0, 0.0])
    assert np.isnan(crossent.softmax(z, backend=backend)[1, :2]).all()
    assert crossent.logsumexp(z, backend=backend)[0] == inf
    assert crossent.cross_entropy(z[:1], [0], backend=backend) == 0.0
    assert crossent.cross_entropy(z[:1], [1], backend=backend) == inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_soft_targets_of_an_impossible_class_give_the_limit(backend, dtype):
    """SPEC §1.7: y_c = 0 where p_c = 0 (z_c = -inf, or another logit +inf)
    adds 0 * log 0 = 0, as class indices do; a class the target wants with
    p_c = 0 costs inf, and a NaN still gives NaN."""
    inf = np.inf
    z = np.array([[0.0, -inf, 1.0], [inf, 0.0, -inf], [2.0, -inf, -inf], [0.0, -inf, 1.0],
                  [np.nan, -inf, 1.0]], dtype)
    y = np.array([[0.25, 0.0, 0.75], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0],
                  [0.5, 0.0, 0.5]], dtype)
    expected = [-(0.25 * np.log(1 / (1 + np.e)) + 0.75 * np.log(np.e / (1 + np.e))), 0.0, 0.0,
                inf, np.nan]
    for weight in (None, np.array([1.5, 2.0, 0.5])):
        scale = [1.0] * 5 if weight is None else [None, 1.5, 1.5, None, None]
        losses, grad = crossent.cross_entropy(z, y, weight=weight, reduction="none",
                                              return_grad=True, backend=backend)
        assert losses.dtype == dtype
        np.testing.assert_allclose(losses[1:3], np.multiply(expected[1:3], scale[1:3]))
        assert losses[3] == inf and np.isnan(losses[4])
        if weight is None:
            np.testing.assert_allclose(losses[0], expected[0], rtol=1e-6)
        assert np.isfinite(losses[:3]).all() and np.isfinite(grad[:3]).all()
        assert grad[0, 1] == 0 and (grad[1:3] == 0).all()
        with_options = crossent.cross_entropy(z[[0, 2]], y[[0, 2]], weight=weight, z_loss=1e-4,
                                              reduction="none", backend=backend)
        assert np.isfinite(with_options).all()   # (z_loss * lse^2 is inf where lse is)
    smoothed = crossent.cross_entropy(z[:1], y[:1], label_smoothing=0.1, backend=backend)
    assert smoothed == inf   # smoothing gives the impossible class a share of the target


def test_finite_inputs_give_finite_results(backend):
    assert crossent.log_sigmoid(np.array([-1000.0]), backend=backend)[0] == -1000.0
    assert crossent.log_sigmoid(np.array([-1000.0], np.float32), backend=backend)[0] == -1000.0
    for dtype in (np.float32, np.float64):
        z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=dtype)
        for target in ([0, 0], [1, 2], [2, 1]):
            loss, grad = crossent.cross_entropy(z, target, reduction="none", return_grad=True,
                                                backend=backend)
            assert np.isfinite(loss).all() and np.isfinite(grad).all(), (dtype, target)
        loss, grad = crossent.binary_cross_entropy_with_logits(
            z, np.ones_like(z) / 2, reduction="none", return_grad=True, backend=backend)
        assert np.isfinite(loss).all() and np.isfinite(grad).all()
        assert np.isfinite(crossent.log_softmax(z, backend=backend)).all()
    p = np.array([0.0, 1.0, 0.0, 1.0])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    losses, grad = crossent.binary_cross_entropy(p, y, reduction="none", return_grad=True,
                                                 backend=backend)
    np.testing.assert_array_equal(losses, [100.0, 100.0, 0.0, 0.0])
    assert np.isfinite(grad).all()
    probs = np.array([[0.0, 1.0]])
    assert crossent.categorical_cross_entropy(probs, [0], backend=backend) == 100.0


# ---------------------------------------------------------------- inputs never modified

@pytest.mark.parametrize("name", LOSS_NAMES)
def test_inputs_are_never_modified(backend, name):
    rng = np.random.default_rng(56)
    function, x, target = make_case(name)
    options = weight_options(name, rng)
    if name == "binary_cross_entropy_with_logits":
        options["pos_weight"] = rng.uniform(0.5, 2.0, size=C)
    arrays = [x, target, *options.values()]
    before = [a.copy() for a in arrays]
    for reduction in ("mean", "sum", "none"):
        function(x, target, **options, reduction=reduction, return_grad=True, backend=backend)
        function(x, target, **options, reduction=reduction, backend=backend)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("function", ELEMENTWISE_ACTIVATIONS + ROW_ACTIVATIONS,
                         ids=lambda f: f.__name__)
def test_activation_input_not_modified_without_out(backend, function):
    z = RNG.normal(size=(5, 3))
    before = z.copy()
    function(z, backend=backend)
    np.testing.assert_array_equal(z, before)


# ---------------------------------------------------------------- grad_out and out

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_grad_out_is_filled_and_returned(backend, name, dtype):
    """grad_out is the returned gradient, every element overwritten (stale
    values, e.g. in ignored rows, never leak), and reusable across calls."""
    function, x, target = make_case(name, dtype)
    options = {"ignore_index": int(target[0])} if name in MULTICLASS_INDEX else {}
    for reduction in ("mean", "none"):
        expected_loss, expected = function(x, target, **options, reduction=reduction,
                                           return_grad=True, backend=backend)
        buffer = np.full(x.shape, np.nan, dtype=dtype)
        for _ in range(2):
            loss, grad = function(x, target, **options, reduction=reduction, return_grad=True,
                                  grad_out=buffer, backend=backend)
            assert grad is buffer
            np.testing.assert_array_equal(grad, expected)
            np.testing.assert_array_equal(loss, expected_loss)
            buffer[...] = 7.0


@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("function", ELEMENTWISE_ACTIVATIONS + [crossent.softmax,
                                                                crossent.log_softmax],
                         ids=lambda f: f.__name__)
def test_out_and_in_place(backend, function, axis):
    kwargs = {} if function in ELEMENTWISE_ACTIVATIONS else {"axis": axis}
    z = RNG.normal(size=(4, 5))
    expected = function(z, **kwargs, backend=backend)
    out = np.full_like(z, np.nan)
    assert function(z, **kwargs, out=out, backend=backend) is out
    np.testing.assert_array_equal(out, expected)
    in_place = z.copy()
    assert function(in_place, **kwargs, out=in_place, backend=backend) is in_place
    np.testing.assert_array_equal(in_place, expected)


# ---------------------------------------------------------------- shapes of a single sample

@pytest.mark.parametrize("name", MULTICLASS_INDEX)
def test_one_dimensional_logits_take_a_scalar_target(backend, name):
    function, x, target = make_case(name)
    single = function(x[3], target[3], reduction="none", backend=backend)
    assert np.shape(single) == ()
    batch = function(x[3:4], target[3:4], reduction="none", backend=backend)
    np.testing.assert_allclose(single, batch[0], rtol=1e-15)


# ---------------------------------------------------------------- threads

# Sizes that run on several threads: the kernels go parallel from 32 768
# elements of work (rows x classes) and at least two blocks (4096 elements, or
# 64 rows); 20 000 x 4 is 20 elementwise blocks and 313 row blocks; 3 x 40 000
# is one row block, whose few wide rows the threads share.
THREADED_SHAPES = {"many-rows": (20_000, 4), "wide-rows": (3, 40_000)}
# None: the default thread count (all cores), through the plain call when no
# other option is given
N_THREADS = (1, 2, 3, 8, None)


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", list(THREADED_SHAPES))
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_results_do_not_depend_on_n_threads(backend, name, shape, dtype, weighted):
    """Bitwise identical for every n_threads, on inputs spanning many blocks
    (float64 too: a float32 loss would hide a change in the float64 sum's
    order behind its rounding)."""
    n, classes = THREADED_SHAPES[shape]
    rng = np.random.default_rng(57)
    function, x, target = make_case(name, dtype, n=n, rng=rng, classes=classes)
    options = weight_options(name, rng, n=n, classes=classes) if weighted else {}
    if weighted and name.startswith(("cross_entropy", "categorical_cross_entropy")):
        options["label_smoothing"] = 0.1
    for reduction in ("mean", "none"):
        one_thread = function(x, target, **options, reduction=reduction, return_grad=True,
                              n_threads=1, backend=backend)
        for n_threads in N_THREADS[1:]:
            loss, grad = function(x, target, **options, reduction=reduction, return_grad=True,
                                  n_threads=n_threads, backend=backend)
            message = f"n_threads={n_threads}, reduction={reduction}"
            np.testing.assert_array_equal(loss, one_thread[0], err_msg=message)
            np.testing.assert_array_equal(grad, one_thread[1], err_msg=message)


@pytest.mark.parametrize("shape", list(THREADED_SHAPES))
@pytest.mark.parametrize("function", ELEMENTWISE_ACTIVATIONS + ROW_ACTIVATIONS,
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_do_not_depend_on_n_threads(backend, function, shape, dtype):
    z = random_values(THREADED_SHAPES[shape], dtype, "logits", np.random.default_rng(58))
    one_thread = function(z, n_threads=1, backend=backend)
    for n_threads in N_THREADS[1:]:
        np.testing.assert_array_equal(function(z, n_threads=n_threads, backend=backend),
                                      one_thread, err_msg=f"n_threads={n_threads}")


# ---------------------------------------------------------------- no copies (compiled backends)

def _peak_bytes(call):
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("name", ["cross_entropy", "binary_cross_entropy_with_logits", "mse_loss"])
def test_compiled_backends_read_inputs_in_place(compiled_backend, name, layout):
    """SPEC §1.1: a supported ndarray is never copied just to be read, whatever
    its layout -- the kernels stage it a block at a time (NumPy's allocations
    are visible to tracemalloc)."""
    function, x, target = make_case(name, n=40000)
    x = {"C": x, "F": np.asfortranarray(x),
         "strided": np.repeat(x, 2, axis=1)[:, ::2]}[layout]
    target = target if layout == "C" or x.ndim != target.ndim else np.asfortranarray(target)
    function(x, target, reduction="sum", backend=compiled_backend)  # warm up (lazy imports)
    peak = _peak_bytes(lambda: function(x, target, reduction="sum", backend=compiled_backend))
    assert peak < x.nbytes / 10, f"peak {peak} bytes for a {x.nbytes}-byte {layout} input"
