"""Arrays from other libraries (SPEC §7, inputs beyond NumPy): any CPU array
with ``__dlpack__`` -- torch tensors, JAX arrays -- is read where it lies,
without a copy, and gives the bits of the same call on its NumPy view;
results are NumPy.  A tensor on another device is refused with a message
that says so; a tensor that requires grad is read (detached)."""
import tracemalloc

import numpy as np
import pytest

import crossent
from crossent._validate import as_array


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def jnp():
    pytest.importorskip("jax")
    import jax
    jax.config.update("jax_platforms", "cpu")
    import jax.numpy
    return jax.numpy


def logits_and_labels(n=64, c=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, c)).astype(np.float32), rng.integers(0, c, n)


# ------------------------------------------------------------------ no copy

def test_torch_tensor_is_viewed_not_copied(torch):
    tensor = torch.randn(50, 9)
    array = as_array(tensor, "logits")
    assert array.ctypes.data == tensor.data_ptr()
    assert array.shape == (50, 9) and array.dtype == np.float32


def test_strided_torch_tensor_keeps_its_strides(torch):
    tensor = torch.randn(9, 50).T
    array = as_array(tensor, "logits")
    assert array.ctypes.data == tensor.data_ptr()
    assert array.strides == tuple(s * 4 for s in tensor.stride())


def test_tensor_that_requires_grad_is_read_detached(torch):
    tensor = torch.randn(20, 5, requires_grad=True)
    array = as_array(tensor, "logits")
    assert array.ctypes.data == tensor.data_ptr()


def test_jax_array_is_viewed_not_copied(jnp):
    x = jnp.arange(60, dtype=jnp.float32).reshape(12, 5)
    array = as_array(x, "logits")
    assert array.ctypes.data == x.unsafe_buffer_pointer()


@pytest.mark.parametrize("backend", crossent.backends())
def test_large_tensor_input_allocates_nothing_of_its_size(torch, backend):
    """tracemalloc sees NumPy's allocations (a copy of the input would be
    one) and not torch's (the input itself)."""
    n, c = 200_000, 20                      # 16 MB of float32 logits
    logits = torch.randn(n, c)
    labels = torch.randint(0, c, (n,))
    crossent.cross_entropy(logits[:10], labels[:10], backend=backend)   # warm imports
    tracemalloc.start()
    try:
        crossent.cross_entropy(logits, labels, backend=backend, n_threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    input_bytes = logits.numel() * 4
    if backend == "numpy":   # the reference computes whole arrays: bounded, not zero
        assert peak < 8 * input_bytes
    else:
        assert peak < input_bytes // 20, f"peak {peak} bytes for {input_bytes} bytes of input"


# ------------------------------------------------------------ same results

@pytest.mark.parametrize("backend", crossent.backends())
def test_torch_inputs_give_the_bits_of_their_numpy_views(torch, backend):
    z, t = logits_and_labels()
    w = np.linspace(0.5, 1.5, z.shape[1])
    ours = crossent.cross_entropy(torch.from_numpy(z), torch.from_numpy(t),
                                  weight=torch.from_numpy(w), return_grad=True, backend=backend)
    plain = crossent.cross_entropy(z, t, weight=w, return_grad=True, backend=backend)
    assert isinstance(ours[1], np.ndarray) and isinstance(ours[0], np.float32)
    assert ours[0] == plain[0]
    np.testing.assert_array_equal(ours[1], plain[1])


@pytest.mark.parametrize("function", ["binary_cross_entropy_with_logits", "focal_loss", "mse_loss"])
def test_torch_inputs_of_elementwise_losses(torch, function, backend):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(30, 4)).astype(np.float32)
    y = (rng.random((30, 4)) < 0.5).astype(np.float32)
    loss = getattr(crossent, function)
    ours = loss(torch.from_numpy(z), torch.from_numpy(y), reduction="none", backend=backend)
    np.testing.assert_array_equal(ours, loss(z, y, reduction="none", backend=backend))


def test_tensor_that_requires_grad_gives_the_plain_result(torch):
    z, t = logits_and_labels()
    tensor = torch.from_numpy(z).requires_grad_()
    assert crossent.cross_entropy(tensor, t) == crossent.cross_entropy(z, t)
    assert tensor.grad is None


def test_activations_of_tensors_are_numpy(torch):
    z, _ = logits_and_labels()
    out = crossent.softmax(torch.from_numpy(z))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, crossent.softmax(z))
    np.testing.assert_array_equal(crossent.sigmoid(torch.from_numpy(z).T), crossent.sigmoid(z.T))


@pytest.mark.parametrize("backend", crossent.backends())
def test_tensors_take_the_outputs_in_place(torch, backend):
    """out= and grad_out= take a writable CPU tensor as they take an ndarray:
    the kernels write its memory, and the result is the NumPy view of it."""
    z, t = logits_and_labels()
    grad = torch.full(z.shape, 7.0)
    loss, got = crossent.cross_entropy(z, t, return_grad=True, grad_out=grad, backend=backend)
    want_loss, want = crossent.cross_entropy(z, t, return_grad=True, backend=backend)
    assert isinstance(got, np.ndarray) and np.shares_memory(got, grad.numpy())
    assert loss == want_loss and grad.numpy().tobytes() == want.tobytes()
    out = torch.empty(z.shape)
    assert np.shares_memory(crossent.log_softmax(z, out=out, backend=backend), out.numpy())
    np.testing.assert_array_equal(out.numpy(), crossent.log_softmax(z, backend=backend))
    in_place = torch.from_numpy(z.copy())
    crossent.softmax(in_place, out=in_place, backend=backend)
    np.testing.assert_array_equal(in_place.numpy(), crossent.softmax(z, backend=backend))
    pair = (torch.empty(z.shape[0]), torch.empty(z.shape[0]))
    grad_hess = crossent.objectives.binary_logistic(z[:, 0], (t % 2).astype(z.dtype), out=pair)
    assert all(np.shares_memory(a, b.numpy()) for a, b in zip(grad_hess, pair))


@pytest.mark.parametrize("make, message", [
    (lambda torch, shape: torch.empty(shape, requires_grad=True), "that requires grad"),
    (lambda torch, shape: torch.empty(shape, dtype=torch.float64), "expected dtype float32"),
    (lambda torch, shape: torch.empty(shape[::-1]).T, "expected a C-contiguous array"),
])
def test_tensors_that_cannot_take_an_output_are_refused(torch, make, message):
    z, t = logits_and_labels()
    bad = make(torch, z.shape)
    with pytest.raises(ValueError, match=message):
        crossent.cross_entropy(z, t, return_grad=True, grad_out=bad)


def test_a_read_only_jax_array_cannot_take_an_output(jnp):
    z, _ = logits_and_labels()
    with pytest.raises(ValueError, match="out: expected a writable array"):
        crossent.softmax(z, out=jnp.zeros(z.shape, z.dtype))


def test_jax_inputs_give_the_bits_of_their_numpy_views(jnp):
    z, t = logits_and_labels()
    ours = crossent.cross_entropy(jnp.asarray(z), jnp.asarray(t), return_grad=True)
    plain = crossent.cross_entropy(z, t, return_grad=True)
    assert ours[0] == plain[0]
    np.testing.assert_array_equal(ours[1], plain[1])


def test_linear_models_take_tensors(torch):
    rng = np.random.default_rng(2)
    X, y, w = rng.normal(size=(40, 3)), (rng.random(40) < 0.5) * 1.0, rng.normal(size=3)
    ours = crossent.linear.logistic(torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(w))
    plain = crossent.linear.logistic(X, y, w)
    assert ours[0] == plain[0]
    np.testing.assert_array_equal(ours[1], plain[1])


@pytest.mark.parametrize("kind", ["requires-grad", "bfloat16"])
def test_every_entry_point_takes_tensors_that_need_it_detached_or_widened(torch, kind):
    """evaluate, loss_partial's weights, the objectives and linear_cross_entropy's
    targets read torch tensors as cross_entropy does: one that requires grad
    (whose __array__ refuses) detached, a bfloat16 one (which NumPy lacks)
    through DLPack and ml_dtypes."""
    import crossent.objectives as objectives
    if kind == "bfloat16":
        pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(4)
    z = rng.normal(size=(12, 5)).astype(np.float32)
    p = crossent.softmax(rng.normal(size=(12, 5))).astype(np.float32)
    t = rng.integers(0, 5, 12)
    weights = (rng.random(5) + 0.5).astype(np.float32)
    if kind == "bfloat16":
        z, p, weights = (torch.from_numpy(a).bfloat16().float().numpy() for a in (z, p, weights))

    def tensor(a):
        x = torch.from_numpy(a)
        return x.bfloat16() if kind == "bfloat16" else x.requires_grad_()

    assert crossent.evaluate("cross_entropy", tensor(z), t) == crossent.cross_entropy(z, t)
    assert (crossent.loss_partial("cross_entropy", z, t, weight=tensor(weights))
            == crossent.loss_partial("cross_entropy", z, t, weight=weights))
    for ours, plain in zip(objectives.softmax(tensor(z), t), objectives.softmax(z, t)):
        np.testing.assert_array_equal(ours, plain)
    np.testing.assert_array_equal(objectives.binary_logistic(tensor(z), tensor(p))[0],
                                  objectives.binary_logistic(z, p)[0])
    h, w = rng.normal(size=(12, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    assert crossent.linear_cross_entropy(h, w, tensor(p)) == crossent.linear_cross_entropy(h, w, p)


# ------------------------------------------------------------------ refusals

class _OnAnotherDevice:
    """An array that says it lives in CUDA memory (DLPack device code 2)."""
    device = "cuda:0"

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, **kwargs):
        raise AssertionError("must not be exported")


def test_array_on_another_device_is_refused_with_the_device_named():
    with pytest.raises(ValueError, match=r"logits: expected an array in CPU memory.*cuda:0.*\.cpu\(\)"):
        crossent.cross_entropy(_OnAnotherDevice(), np.array([0]))
    with pytest.raises(ValueError, match=r"target: expected an array in CPU memory"):
        crossent.binary_cross_entropy_with_logits(np.zeros(3), _OnAnotherDevice())


def test_complex_tensor_is_refused_as_a_complex_array(torch):
    with pytest.raises(TypeError, match="logits: expected a real floating"):
        crossent.cross_entropy(torch.zeros(3, 2, dtype=torch.complex64), torch.zeros(3, dtype=torch.long))
