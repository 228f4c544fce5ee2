"""The facade's fast path for plain calls gives the general path's bits and
hands everything unusual (errors included) to the general path."""
import numpy as np
import pytest

import crossent

DTYPES = [np.float32, np.float64]


COMPILED = [b for b in ("cython", "c") if b in crossent.backends()]


@pytest.fixture(params=COMPILED)
def default_backend(request):
    """Each compiled backend as the default: the Cython one answers a plain
    cross_entropy call in one compiled function, the C one through the
    facade's Python fast path."""
    with crossent.use_backend(request.param):
        yield request.param


def general(function, *args, **kwargs):
    """The call through the general path: the fast paths turned off."""
    from crossent import _api
    fast_module = _api._fast_module
    _api._fast_module = lambda backend, n_threads: (None, 0)
    try:
        return function(*args, **kwargs)
    finally:
        _api._fast_module = fast_module


def spy_on_cython(monkeypatch, names):
    """The list that each call of the Cython backend's functions ``names``
    appends its name to (the calls still run)."""
    from crossent import _backends
    module = _backends.module("cython")
    calls = []
    for name in names:
        def spy(*args, _name=name, _fast=getattr(module, name)):
            # the one-call entries taking a kernel's name are told apart by it
            calls.append(f"{_name}({args[0]})" if isinstance(args[0], str) else _name)
            return _fast(*args)
        monkeypatch.setattr(module, name, spy)
    return calls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 10), (300, 7), (5, 1000)])
@pytest.mark.parametrize("options", [{}, {"reduction": "sum"}, {"label_smoothing": 0.2},
                                     {"ignore_index": 1}])
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32])
def test_cross_entropy_fast_path_equals_general_path(default_backend, dtype, shape, options,
                                                     label_dtype):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(shape) * 4).astype(dtype)
    t = rng.integers(0, shape[1], shape[0]).astype(label_dtype)
    assert_fast_path_gives_the_general_bits(crossent.cross_entropy, z, t, options)


def assert_fast_path_gives_the_general_bits(function, pred, t, options):
    """Loss and gradient, and the loss alone: the plain call's bits and types
    are the general path's."""
    dtype = pred.dtype.type
    fast = function(pred, t, return_grad=True, **options)
    slow = general(function, pred, t, return_grad=True, **options)
    assert type(fast[0]) is type(slow[0]) is dtype
    assert fast[0].tobytes() == slow[0].tobytes()
    assert fast[1].dtype == dtype and fast[1].tobytes() == slow[1].tobytes()
    loss_only = function(pred, t, **options)
    assert type(loss_only) is dtype and loss_only.tobytes() == fast[0].tobytes()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_fast_path_with_every_label_ignored(default_backend, reduction):
    z = np.ones((4, 3), np.float32)
    t = np.full(4, -100)
    loss, grad = crossent.cross_entropy(z, t, reduction=reduction, return_grad=True)
    slow_loss, _ = general(crossent.cross_entropy, z, t, reduction=reduction, return_grad=True)
    assert np.isnan(loss) if reduction == "mean" else loss == 0
    assert loss.tobytes() == slow_loss.tobytes()
    np.testing.assert_array_equal(grad, np.zeros_like(z))


# Predictions the fast paths must hand to the general path.
UNUSUAL_LAYOUTS = {
    "fortran": np.asfortranarray,
    "strided": lambda z: np.repeat(z, 2, axis=1)[:, ::2],
    "float16": lambda z: z.astype(np.float16),
    "big-endian": lambda z: z.astype(">f8"),
    "list": lambda z: z.tolist(),
    "empty": lambda z: z[:0],
}


@pytest.mark.parametrize("case", ["fortran", "strided", "3-D", "float16", "uint8 labels",
                                  "big-endian", "list", "empty", "reduction none"])
def test_unusual_calls_leave_the_fast_path_with_the_same_answer(default_backend, case):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((6, 5))
    t = rng.integers(0, 5, 6)
    kwargs = {}
    if case in UNUSUAL_LAYOUTS:
        z = UNUSUAL_LAYOUTS[case](z)
        t = t[:0] if case == "empty" else t
    elif case == "3-D":
        z, t = z.reshape(2, 3, 5), t.reshape(2, 3)
    elif case == "uint8 labels":
        t = t.astype(np.uint8)
    elif case == "reduction none":
        kwargs["reduction"] = "none"
    got = crossent.cross_entropy(z, t, return_grad=True, **kwargs)
    want = crossent.cross_entropy(z, t, return_grad=True, backend="numpy", **kwargs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (10,), (1000, 3), (2, 3, 70000)])
@pytest.mark.parametrize("options", [{}, {"reduction": "sum"}, {"label_smoothing": 0.1}])
def test_bce_with_logits_fast_path_equals_general_path(default_backend, dtype, shape, options):
    rng = np.random.default_rng(1)
    z = (rng.standard_normal(shape) * 5).astype(dtype)
    y = rng.random(shape).astype(dtype)
    if z.size > 3:   # the limits and NaN, on both paths
        z.flat[:3] = [np.inf, -np.inf, np.nan]
    assert_fast_path_gives_the_general_bits(crossent.binary_cross_entropy_with_logits, z, y,
                                            options)


@pytest.mark.parametrize("case", list(UNUSUAL_LAYOUTS) + [
    "targets of another dtype", "targets of another shape", "integer targets", "reduction none",
    "weight", "bad label_smoothing"])
def test_unusual_bce_with_logits_calls_leave_the_fast_path_with_the_same_answer(
        default_backend, case):
    rng = np.random.default_rng(6)
    z = rng.standard_normal((6, 5)) * 3
    y = rng.random((6, 5))
    kwargs = {}
    if case in UNUSUAL_LAYOUTS:
        z = UNUSUAL_LAYOUTS[case](z)
        y = y[:0] if case == "empty" else y
    elif case == "targets of another dtype":
        y = y.astype(np.float32)
    elif case == "targets of another shape":
        with pytest.raises(ValueError, match=r"target: expected shape \(6, 5\)"):
            crossent.binary_cross_entropy_with_logits(z, y[:1])
        return
    elif case == "integer targets":
        y = (y < 0.5).astype(np.int64)
    elif case == "reduction none":
        kwargs["reduction"] = "none"
    elif case == "weight":
        kwargs["weight"] = np.arange(1.0, 6.0)
    elif case == "bad label_smoothing":
        with pytest.raises(ValueError, match="label_smoothing"):
            crossent.binary_cross_entropy_with_logits(z, y, label_smoothing=1.5)
        return
    got = crossent.binary_cross_entropy_with_logits(z, y, return_grad=True, **kwargs)
    want = crossent.binary_cross_entropy_with_logits(z, y, return_grad=True, backend="numpy",
                                                     **kwargs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-7)


def test_bad_labels_on_the_fast_path_still_raise_the_documented_error(default_backend):
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"target: class index 7 at position \(1,\)"):
        crossent.cross_entropy(z, np.array([0, 7, 1]))
    with pytest.raises(ValueError, match="label_smoothing"):
        crossent.cross_entropy(z, np.array([0, 1, 1]), label_smoothing=1.5)


ACTIVATIONS = ["sigmoid", "log_sigmoid", "softmax", "log_softmax", "logsumexp"]


def _activation_input(shape, dtype, rng):
    z = (rng.standard_normal(shape) * 30).astype(dtype)
    if z.size > 3:
        flat = z.reshape(-1)
        flat[:3] = [np.nan, np.inf, -np.inf]
    return z


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (10,), (1, 10), (300, 7), (4, 5, 30), (3, 40_000)])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_fast_path_equals_general_path(default_backend, name, dtype, shape):
    function = getattr(crossent, name)
    z = _activation_input(shape, dtype, np.random.default_rng(2))
    if shape == () and name not in ("sigmoid", "log_sigmoid"):
        with pytest.raises(ValueError) as fast_error:
            function(z)
        with pytest.raises(ValueError) as general_error:
            general(function, z)
        assert str(fast_error.value) == str(general_error.value)
        return
    with np.errstate(invalid="ignore"):
        fast, slow = function(z), general(function, z)
    assert type(fast) is type(slow)
    assert np.shape(fast) == np.shape(slow) and np.asarray(fast).dtype == dtype
    assert np.asarray(fast).tobytes() == np.asarray(slow).tobytes()
    if shape == (3, 40_000) and name != "logsumexp":
        # the reference's answer, so that both paths are not wrong alike
        with np.errstate(over="ignore", invalid="ignore"):
            want = getattr(crossent, name)(z, backend="numpy")
        tolerance = (dict(rtol=1e-5, atol=1e-6) if dtype == np.float32
                     else dict(rtol=1e-12, atol=1e-15))   # atol: log_softmax near 0
        np.testing.assert_allclose(fast, want, **tolerance)


UNUSUAL_ACTIVATION_CASES = ["fortran", "strided", "float16", "int", "big-endian", "list", "empty",
                            "axis 0", "out", "subclass"]


def _activation_takes(name, case):
    """Whether activation ``name`` has the keyword case ``case`` is about:
    sigmoid and log_sigmoid take no axis, logsumexp no out."""
    return not (case == "axis 0" and name in ("sigmoid", "log_sigmoid")
                or case == "out" and name == "logsumexp")


@pytest.mark.parametrize("name, case", [
    pytest.param(name, case, id=f"{name}-{case}") for name in ACTIVATIONS
    for case in UNUSUAL_ACTIVATION_CASES if _activation_takes(name, case)])
def test_unusual_activation_calls_leave_the_fast_path_with_the_same_answer(default_backend,
                                                                          name, case):
    function = getattr(crossent, name)
    z = np.random.default_rng(3).standard_normal((6, 5))
    kwargs = {}
    if case in UNUSUAL_LAYOUTS:
        z = UNUSUAL_LAYOUTS[case](z)
    elif case == "int":
        z = (z * 3).astype(np.int64)
    elif case == "axis 0":
        kwargs["axis"] = 0
    elif case == "out":
        kwargs["out"] = np.full((6, 5), np.nan)
    elif case == "subclass":
        z = z.view(np.recarray)
    got = function(z, **kwargs)
    if case == "out":
        assert got is kwargs["out"]
        kwargs["out"] = np.full((6, 5), np.nan)
    want = function(np.asarray(z), backend="numpy", **kwargs)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-3 if case == "float16" else 1e-6)


@pytest.mark.skipif("cython" not in crossent.backends(), reason="the Cython backend is not built")
def test_plain_activation_calls_take_the_compiled_fast_path(monkeypatch):
    from crossent import _backends
    module = _backends.module("cython")
    calls = []

    def spy(name, z, n_threads):
        calls.append(name)
        return fast_activation(name, z, n_threads)
    fast_activation = module.fast_activation
    monkeypatch.setattr(module, "fast_activation", spy)
    with crossent.use_backend("cython"):
        for name in ACTIVATIONS:
            getattr(crossent, name)(np.ones((2, 3), np.float32))
        crossent.softmax(np.ones((2, 3)), axis=0)   # not the last axis: the general path
    assert calls == ACTIVATIONS


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 10), (300, 7), (5, 1000)])
@pytest.mark.parametrize("options", [{}, {"reduction": "sum"}, {"ignore_index": 1}])
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32])
def test_nll_fast_path_equals_general_path(default_backend, dtype, shape, options, label_dtype):
    rng = np.random.default_rng(4)
    x = crossent.log_softmax((rng.standard_normal(shape) * 4).astype(dtype))
    x[0, 0] = np.nan if shape[0] > 1 else x[0, 0]   # the NaN rule, on both paths
    t = rng.integers(0, shape[1], shape[0]).astype(label_dtype)
    assert_fast_path_gives_the_general_bits(crossent.nll_loss, x, t, options)


@pytest.mark.parametrize("case", list(UNUSUAL_LAYOUTS) + ["bad label", "axis 0", "weight"])
def test_unusual_nll_calls_leave_the_fast_path_with_the_same_answer(default_backend, case):
    rng = np.random.default_rng(5)
    x = np.log(rng.dirichlet(np.ones(5), 6))
    t = rng.integers(0, 5, 6)
    kwargs = {}
    if case in UNUSUAL_LAYOUTS:
        x = UNUSUAL_LAYOUTS[case](x)
        t = t[:0] if case == "empty" else t
    elif case == "bad label":
        t[2] = 5
        with pytest.raises(ValueError, match=r"target: class index 5 at position \(2,\)"):
            crossent.nll_loss(x, t)
        return
    elif case == "axis 0":
        x, kwargs["axis"] = x[:5].T, 0
        t = t[:5]
    elif case == "weight":
        kwargs["weight"] = np.arange(1.0, 6.0)
    got = crossent.nll_loss(x, t, return_grad=True, **kwargs)
    want = crossent.nll_loss(x, t, return_grad=True, backend="numpy", **kwargs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-7)


@pytest.mark.skipif("cython" not in crossent.backends(), reason="the Cython backend is not built")
def test_plain_loss_calls_take_the_compiled_fast_path(monkeypatch):
    calls = spy_on_cython(monkeypatch, ("fast_index_loss", "fast_elementwise"))
    z, t = np.zeros((2, 3), np.float32), np.array([0, 2])
    with crossent.use_backend("cython"):
        crossent.cross_entropy(z, t)
        crossent.nll_loss(z, t, return_grad=True)
        crossent.nll_loss(z, t, weight=np.ones(3), sample_weight=np.ones(2, np.float32))
        crossent.cross_entropy(z, t, n_threads=1)
        crossent.binary_cross_entropy_with_logits(z, z, return_grad=True)
        crossent.binary_cross_entropy_with_logits(z, z, sample_weight=np.ones(3))   # general
    with crossent.use_backend("c"):
        crossent.cross_entropy(z, t, backend="cython")
    ce, nll = "fast_index_loss(softmax_xent_index)", "fast_index_loss(nll_index)"
    assert calls == [ce, nll, nll, ce, "fast_elementwise(bce_with_logits)",
                     "fast_elementwise(bce_with_logits)", ce]


@pytest.mark.parametrize("weight, sample_weight", [
    (np.linspace(0.5, 2.0, 7), None),
    (None, np.linspace(0.0, 3.0, 300)),
    (np.linspace(0.5, 2.0, 7), np.linspace(0.0, 3.0, 300)),
    (np.zeros(7), None),                       # a zero weight sum: the mean's 0/0 rule
])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", [crossent.cross_entropy, crossent.nll_loss])
@pytest.mark.parametrize("options", [{}, {"ignore_index": 2}, {"reduction": "sum"}])
def test_weighted_index_losses_give_the_general_bits(default_backend, function, dtype, weight,
                                                     sample_weight, options):
    rng = np.random.default_rng(7)
    z = (rng.standard_normal((300, 7)) * 3).astype(dtype)
    t = rng.integers(0, 7, 300)
    kwargs = dict(options, weight=weight, return_grad=True)
    if sample_weight is not None:
        kwargs["sample_weight"] = sample_weight.astype(dtype)
    got, want = function(z, t, **kwargs), general(function, z, t, **kwargs)
    for g, w in zip(got, want):
        assert np.asarray(g).tobytes() == np.asarray(w).tobytes()


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_backend_and_threads_keywords_give_the_general_bits(backend, n_threads):
    rng = np.random.default_rng(8)
    z = rng.standard_normal((3000, 12)).astype(np.float32)
    t = rng.integers(0, 12, 3000)
    for function, args in ((crossent.cross_entropy, (z, t)), (crossent.nll_loss, (z, t)),
                           (crossent.binary_cross_entropy_with_logits, (z, z > 0)),
                           (crossent.softmax, (z,)), (crossent.sigmoid, (z,))):
        args = tuple(np.asarray(a, dtype=np.float32) if a.dtype == bool else a for a in args)
        got = function(*args, backend=backend, n_threads=n_threads)
        want = general(function, *args, backend=backend, n_threads=n_threads)
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes(), function.__name__


@pytest.mark.parametrize("layout", ["C", "fortran"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_axis_none_takes_every_entry_as_one_row(default_backend, name, layout):
    """As scipy.special's axis=None, on the plain call and the general path,
    with out= too."""
    z = np.random.default_rng(6).standard_normal((3, 4, 5))
    z = np.asfortranarray(z) if layout == "fortran" else z
    function = getattr(crossent, name)
    whole = function(z.reshape(-1))
    want = whole if name == "logsumexp" else whole.reshape(z.shape)
    for got in (function(z, axis=None), general(function, z, axis=None)):
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)
    if name != "logsumexp":
        out = np.empty_like(z)
        assert function(z, axis=None, out=out) is out
        np.testing.assert_array_equal(out, want)
    reference = {"softmax": lambda: np.exp(z - z.max()) / np.exp(z - z.max()).sum(),
                 "log_softmax": lambda: z - z.max() - np.log(np.exp(z - z.max()).sum()),
                 "logsumexp": lambda: z.max() + np.log(np.exp(z - z.max()).sum())}[name]()
    np.testing.assert_allclose(want, reference, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("axes", [(1, 2), (0, 3), (3, 0, 1), (-1,), (), (0, 1, 2, 3)])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_a_tuple_of_axes_takes_their_entries_as_one_row(backend, name, axes):
    """As scipy.special's tuple axis: the same values, the row function's
    bits over the entries gathered, out= too."""
    special = pytest.importorskip("scipy.special")
    z = np.random.default_rng(7).standard_normal((3, 4, 5, 2))
    function = getattr(crossent, name)
    got = function(z, axis=axes, backend=backend)
    want = getattr(special, name)(z, axis=axes)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    normal = tuple(a % z.ndim for a in axes)
    others = [a for a in range(z.ndim) if a not in normal]
    rows = z.transpose(others + list(normal)).reshape(
        tuple(z.shape[a] for a in others) + (-1,))
    by_rows = function(rows, backend=backend)
    if name == "logsumexp":
        assert np.asarray(got).tobytes() == np.asarray(by_rows).tobytes()
    else:
        out = np.empty_like(z)
        assert function(z, axis=axes, out=out, backend=backend) is out
        np.testing.assert_array_equal(out, got)
        back = by_rows.reshape(z.transpose(others + list(normal)).shape)
        np.testing.assert_array_equal(got, back.transpose(np.argsort(others + list(normal))))


@pytest.mark.parametrize("bad, error", [((1, 1), "expected distinct axes"),
                                        ((0, 4), r"expected an int in \[-4, 3\]"),
                                        ((0.5,), "expected an int")])
def test_a_bad_tuple_of_axes_says_what_is_wrong(bad, error):
    with pytest.raises((ValueError, TypeError), match=error):
        crossent.softmax(np.zeros((2, 3, 4, 5)), axis=bad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1, 10), (300, 7), (5000,)])
@pytest.mark.parametrize("case", ["plain", "weight", "pos_weight", "sum", "smoothing",
                                  "sample_weight", "weight+sample_weight", "zero sample_weight",
                                  "mean"])
@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits", "binary_cross_entropy",
                                  "mse_loss", "focal_loss", "kl_div"])
def test_elementwise_losses_fast_path_gives_the_general_bits(default_backend, name, case,
                                                             shape, dtype):
    if name == "kl_div" and (not shape or "weight" in case):
        pytest.skip("kl_div takes a class axis, and no element weights")
    rng = np.random.default_rng(9)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    if name == "binary_cross_entropy":
        x = (1 / (1 + np.exp(-x))).astype(dtype)
    y = (rng.random(shape) < 0.4).astype(dtype)
    kwargs = {}
    if "weight" in case and case != "pos_weight" and "sample" not in case.split("+")[0]:
        kwargs["weight"] = (rng.random(shape) + 0.5).astype(dtype)
    if "sample_weight" in case:
        kwargs["sample_weight"] = np.asarray(rng.random(shape) * 2, dtype)
        if case.startswith("zero"):   # the mean's 0/0 rule
            kwargs["sample_weight"] = np.zeros(shape, dtype)
    if case == "pos_weight" and name.endswith("logits") and shape:
        kwargs["pos_weight"] = (rng.random(shape[-1]) + 0.5).astype(dtype)
    elif case == "sum":
        kwargs["reduction"] = "sum"
    elif case == "mean" and name == "kl_div":
        kwargs["reduction"] = "mean"   # (its default is batchmean)
    elif case == "smoothing" and name.endswith("logits"):
        kwargs["label_smoothing"] = 0.2
    function = getattr(crossent, name)
    got = function(x, y, return_grad=True, **kwargs)
    want = general(function, x, y, return_grad=True, **kwargs)
    assert type(got[0]) is type(want[0]) is dtype
    assert got[0].tobytes() == want[0].tobytes() and got[1].tobytes() == want[1].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 10), (300, 7), (3, 20000)])
@pytest.mark.parametrize("options", [{}, {"reduction": "sum"}, {"label_smoothing": 0.2},
                                     {"weight": "class"}, {"sample_weight": "rows"},
                                     {"sample_weight": "zeros"}, {"ignore_index": 1}])
@pytest.mark.parametrize("target", ["index", "soft"])
@pytest.mark.parametrize("name", ["cross_entropy", "categorical_cross_entropy"])
def test_row_losses_fast_path_gives_the_general_bits(default_backend, name, target, options,
                                                     shape, dtype):
    if target == "soft" and "ignore_index" in options:
        pytest.skip("ignore_index applies to index targets")
    rng = np.random.default_rng(10)
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    if name == "categorical_cross_entropy":
        z = crossent.softmax(z)
    t = (rng.integers(0, shape[1], shape[0]) if target == "index"
         else crossent.softmax(rng.standard_normal(shape).astype(dtype)))
    kwargs = dict(options)
    if kwargs.get("weight") == "class":
        kwargs["weight"] = rng.random(shape[1]) + 0.5
    if "sample_weight" in kwargs:
        s = (rng.random(shape[0]) * 2).astype(dtype)
        kwargs["sample_weight"] = s * 0 if kwargs["sample_weight"] == "zeros" else s
    assert_fast_path_gives_the_general_bits(getattr(crossent, name), z, t, kwargs)


@pytest.mark.skipif("cython" not in crossent.backends(), reason="the Cython backend is not built")
def test_elementwise_calls_take_the_compiled_fast_path(monkeypatch):
    calls = spy_on_cython(monkeypatch, ("fast_elementwise",))
    z = np.linspace(0.1, 0.9, 6).reshape(2, 3)
    with crossent.use_backend("cython"):
        crossent.binary_cross_entropy_with_logits(z, z, weight=z, pos_weight=np.ones(3))
        crossent.binary_cross_entropy(z, z, weight=z, return_grad=True)
        crossent.mse_loss(z, z, backend="cython", sample_weight=z)
        crossent.focal_loss(z, z, weight=z)
        crossent.kl_div(z, z, reduction="sum")
    assert calls == [f"fast_elementwise({kernel})"
                     for kernel in ("bce_with_logits", "bce", "mse", "focal", "kl_div")]
    with pytest.raises(ValueError, match="probabilities"):
        crossent.binary_cross_entropy(z + 1, z)   # out of range: the general path's error
