"""The facade's fast path for plain calls gives the general path's bits and
hands everything unusual (errors included) to the general path."""
import numpy as np
import pytest

import crossent

DTYPES = [np.float32, np.float64]


def general(function, *args, **kwargs):
    # n_threads given explicitly (same value as the default) forces the general path
    return function(*args, n_threads=crossent.get_num_threads(), **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 10), (300, 7), (5, 1000)])
@pytest.mark.parametrize("options", [{}, {"reduction": "sum"}, {"label_smoothing": 0.2},
                                     {"ignore_index": 1}])
def test_cross_entropy_fast_path_equals_general_path(dtype, shape, options):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(shape) * 4).astype(dtype)
    t = rng.integers(0, shape[1], shape[0])
    fast = crossent.cross_entropy(z, t, return_grad=True, **options)
    slow = general(crossent.cross_entropy, z, t, return_grad=True, **options)
    assert fast[0].dtype == slow[0].dtype == dtype
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


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


def test_bad_labels_on_the_fast_path_still_raise_the_documented_error():
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"target: class index 7 at position \(1,\)"):
        crossent.cross_entropy(z, np.array([0, 7, 1]))
    with pytest.raises(ValueError, match="label_smoothing"):
        crossent.cross_entropy(z, np.array([0, 1, 1]), label_smoothing=1.5)
