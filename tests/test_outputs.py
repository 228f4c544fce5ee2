"""Large outputs on recycled buffers (crossent._outputs): a buffer is taken
again only when no view of it is alive, every output still holds its own
results, and the general path and the compiled fast paths both use it."""
import threading

import numpy as np
import pytest

import crossent
from crossent import _outputs

SMALL = 1 << 20  # the recycling threshold the facade tests lower to


def pooled(array):
    """The id of the kept buffer that array is a view of (an id stays unique
    while the pool holds the buffer), or None."""
    kept = [id(b) for b in _outputs._buffers if array.base is b]
    return kept[0] if kept else None


@pytest.fixture(autouse=True)
def empty_pool():
    crossent.release_memory()
    yield
    crossent.release_memory()


@pytest.fixture
def small_threshold(monkeypatch):
    """Recycle from 1 MiB on, for every output (the compiled fast paths read
    the threshold at each call)."""
    monkeypatch.setattr(_outputs, "RECYCLE_MIN_BYTES", SMALL)


def test_small_outputs_are_plain_new_arrays():
    out = _outputs.empty((3, 4), np.float32)
    assert out.flags.owndata and out.shape == (3, 4) and out.dtype == np.float32
    assert not _outputs._buffers


def test_an_idle_buffer_is_taken_again_and_a_live_one_never():
    n = _outputs.RECYCLE_MIN_BYTES // 8
    first = _outputs.empty((n // 4, 4), np.float64)
    assert not first.flags.owndata and first.flags.c_contiguous and first.flags.writeable
    second = _outputs.empty((n,), np.float64)
    assert not np.shares_memory(first, second)
    address = pooled(second)
    assert address is not None and address != pooled(first)
    del second
    fourth = _outputs.empty((n,), np.float64)
    assert pooled(fourth) == address
    assert not np.shares_memory(first, fourth)


def test_a_view_of_an_output_keeps_its_buffer_busy():
    n = _outputs.RECYCLE_MIN_BYTES // 4
    out = _outputs.empty((n,), np.float32)
    view = out[::2]
    del out
    assert not np.shares_memory(view, _outputs.empty((n,), np.float32))


def test_at_most_slots_buffers_are_kept_and_release_frees_the_idle_ones():
    n = _outputs.RECYCLE_MIN_BYTES
    live = [_outputs.empty((n,), np.uint8) for _ in range(_outputs.SLOTS + 2)]
    assert len(_outputs._buffers) == _outputs.SLOTS
    assert crossent.release_memory() == 0  # every kept buffer is in use
    del live
    assert crossent.release_memory() == _outputs.SLOTS * n
    assert not _outputs._buffers


def test_an_output_more_than_twice_smaller_gets_its_own_buffer():
    n = _outputs.RECYCLE_MIN_BYTES
    big = _outputs.empty((4 * n,), np.uint8)
    big_address = pooled(big)
    del big
    small = _outputs.empty((n,), np.uint8)
    assert big_address is not None and pooled(small) != big_address


@pytest.mark.parametrize("backend", crossent.backends())
def test_facade_outputs_are_recycled_and_keep_their_own_results(backend, small_threshold):
    rng = np.random.default_rng(7)
    z = rng.normal(scale=3, size=(4096, 100)).astype(np.float32)  # 1.6 MB
    t = rng.integers(0, 100, size=4096)
    weight = rng.uniform(0.5, 2, size=100)
    expected = crossent.cross_entropy(z, t, weight=weight, return_grad=True, backend="numpy")
    loss, grad = crossent.cross_entropy(z, t, weight=weight, return_grad=True, backend=backend)
    kept = grad.copy()
    address = pooled(grad)
    assert address is not None
    _, other = crossent.cross_entropy(-z, t, weight=weight, return_grad=True, backend=backend)
    assert not np.shares_memory(grad, other)
    np.testing.assert_array_equal(grad, kept)  # not overwritten by the second call
    del grad, other
    loss, grad = crossent.cross_entropy(z, t, weight=weight, return_grad=True, backend=backend)
    assert pooled(grad) == address
    np.testing.assert_allclose(grad, expected[1], rtol=1e-4, atol=1e-8)
    np.testing.assert_array_equal(grad, kept)
    softmax = crossent.softmax(z, backend=backend)
    assert not softmax.flags.owndata
    np.testing.assert_allclose(softmax, crossent.softmax(z, backend="numpy"), rtol=2e-6)


@pytest.mark.skipif("cython" not in crossent.backends(), reason="the Cython backend is not built")
def test_the_fast_paths_recycle_their_large_results():
    # 2^23 float32 = 32 MiB: the first size recycled
    n = _outputs.RECYCLE_MIN_BYTES // 4
    rng = np.random.default_rng(8)
    z = rng.normal(scale=3, size=n).astype(np.float32)
    y = rng.integers(0, 2, size=n).astype(np.float32)
    results = []
    for _ in range(3):
        loss, grad = crossent.binary_cross_entropy_with_logits(z, y, return_grad=True)
        assert not grad.flags.owndata
        results.append((loss, grad.copy(), pooled(grad)))
        del grad
    assert results[0][2] is not None and results[0][2] == results[1][2] == results[2][2]
    for loss, grad, _ in results[1:]:
        assert loss == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1])
    sig = crossent.sigmoid(z)
    assert pooled(sig) == results[0][2]
    np.testing.assert_array_equal(sig, crossent.sigmoid(z.copy(), backend="cython"))
    rows = crossent.softmax(z.reshape(-1, 1024))
    assert not rows.flags.owndata and not np.shares_memory(rows, sig)
    del sig, rows
    t = rng.integers(0, 1024, size=n // 1024)
    loss, grad = crossent.cross_entropy(z.reshape(-1, 1024), t, return_grad=True)
    assert pooled(grad) == results[0][2]
    expected = crossent.cross_entropy(z.reshape(-1, 1024), t, return_grad=True,
                                      backend="cython", n_threads=1)
    assert loss == expected[0]
    np.testing.assert_array_equal(grad, expected[1])


def test_threads_never_share_a_live_buffer(small_threshold):
    rng = np.random.default_rng(9)
    inputs = [rng.normal(size=(600, 500)).astype(np.float32) for _ in range(6)]  # 1.2 MB
    expected = [crossent.softmax(x, backend="numpy") for x in inputs]
    errors = []

    def work(i):
        for _ in range(20):
            out = crossent.softmax(inputs[i], backend="c")
            if not np.allclose(out, expected[i], rtol=2e-6, atol=0):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
