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
    # n_threads given explicitly (same value as the default) forces the general path
    return function(*args, n_threads=crossent.get_num_threads(), **kwargs)


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
    fast = crossent.cross_entropy(z, t, return_grad=True, **options)
    slow = general(crossent.cross_entropy, z, t, return_grad=True, **options)
    assert type(fast[0]) is type(slow[0]) is dtype
    assert fast[0].tobytes() == slow[0].tobytes()
    assert fast[1].dtype == dtype and fast[1].tobytes() == slow[1].tobytes()
    loss_only = crossent.cross_entropy(z, t, **options)
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


@pytest.mark.parametrize("case", ["fortran", "strided", "3-D", "float16", "uint8 labels",
                                  "big-endian", "list", "empty", "reduction none"])
def test_unusual_calls_leave_the_fast_path_with_the_same_answer(default_backend, case):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((6, 5))
    t = rng.integers(0, 5, 6)
    kwargs = {}
    if case == "fortran":
        z = np.asfortranarray(z)
    elif case == "strided":
        z = np.repeat(z, 2, axis=1)[:, ::2]
    elif case == "3-D":
        z, t = z.reshape(2, 3, 5), t.reshape(2, 3)
    elif case == "float16":
        z = z.astype(np.float16)
    elif case == "uint8 labels":
        t = t.astype(np.uint8)
    elif case == "big-endian":
        z = z.astype(">f8")
    elif case == "list":
        z = z.tolist()
    elif case == "empty":
        z, t = z[:0], t[:0]
    elif case == "reduction none":
        kwargs["reduction"] = "none"
    got = crossent.cross_entropy(z, t, return_grad=True, **kwargs)
    want = crossent.cross_entropy(z, t, return_grad=True, backend="numpy", **kwargs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(10,), (1000, 3)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_with_logits_fast_path_equals_general_path(dtype, shape, reduction):
    rng = np.random.default_rng(1)
    z = (rng.standard_normal(shape) * 5).astype(dtype)
    y = (rng.random(shape) < 0.5).astype(dtype)
    fast = crossent.binary_cross_entropy_with_logits(z, y, reduction=reduction, return_grad=True)
    slow = general(crossent.binary_cross_entropy_with_logits, z, y, reduction=reduction,
                   return_grad=True)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


def test_bad_labels_on_the_fast_path_still_raise_the_documented_error(default_backend):
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"target: class index 7 at position \(1,\)"):
        crossent.cross_entropy(z, np.array([0, 7, 1]))
    with pytest.raises(ValueError, match="label_smoothing"):
        crossent.cross_entropy(z, np.array([0, 1, 1]), label_smoothing=1.5)
