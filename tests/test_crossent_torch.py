"""crossent.torch: drop-in replacements of PyTorch's losses.

Each function keeps the signature and defaults of its PyTorch original, gives
its values and gradients (through ``backward``), passes ``gradcheck`` in
float64, and trains a small network as the original does."""
import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
cet = pytest.importorskip("crossent.torch")

RTOL = {torch.float64: 1e-12, torch.float32: 2e-6}


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, as torchvision writes it (the oracle)."""
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def multiclass_inputs(dtype, shape=(12, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(*shape, generator=g, dtype=dtype) * 2
    lead = (shape[0],) + tuple(shape[2:])
    t = torch.randint(0, shape[1], lead, generator=g)
    return z, t


def binary_inputs(dtype, shape=(10, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(*shape, generator=g, dtype=dtype) * 2
    y = (torch.rand(*shape, generator=g) < 0.5).to(dtype)
    return z, y


# name -> (crossent.torch function, PyTorch oracle, make inputs, options to try)
CASES = {
    "cross_entropy": (cet.cross_entropy, F.cross_entropy, multiclass_inputs, [
        {}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.1},
        {"ignore_index": 2}, {"weight": "class"}, {"weight": "class", "ignore_index": 1,
                                                   "label_smoothing": 0.2}]),
    "nll_loss": (cet.nll_loss, F.nll_loss, multiclass_inputs, [
        {}, {"reduction": "sum"}, {"reduction": "none"}, {"weight": "class", "ignore_index": 0}]),
    "binary_cross_entropy_with_logits": (
        cet.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, binary_inputs, [
            {}, {"reduction": "sum"}, {"reduction": "none"}, {"weight": "elem"},
            {"pos_weight": "last"}, {"weight": "elem", "pos_weight": "last", "reduction": "none"}]),
    "focal_loss": (cet.focal_loss, sigmoid_focal_loss, binary_inputs, [
        {}, {"reduction": "mean"}, {"reduction": "sum"}, {"alpha": -1.0}, {"gamma": 0.5},
        {"alpha": 0.7, "gamma": 3.0, "reduction": "mean"}]),
}


def params():
    return [pytest.param(name, opts, id=f"{name}-{i}")
            for name, (_, _, _, options) in CASES.items() for i, opts in enumerate(options)]


def materialise(opts, z, dtype):
    """Options with "class"/"elem"/"last" replaced by weight tensors."""
    out = dict(opts)
    g = torch.Generator().manual_seed(7)
    for key, value in opts.items():
        if value == "class":
            out[key] = torch.rand(z.shape[1], generator=g, dtype=dtype) + 0.5
        elif value == "elem":
            out[key] = torch.rand(z.shape, generator=g, dtype=dtype) + 0.5
        elif value == "last":
            out[key] = torch.rand(z.shape[-1], generator=g, dtype=dtype) + 0.5
    return out


def value_and_grad(function, z, target, opts, grad_seed=3):
    z = z.detach().clone().requires_grad_()
    loss = function(z, target, **opts)
    upstream = torch.randn(loss.shape, generator=torch.Generator().manual_seed(grad_seed),
                           dtype=loss.dtype)
    (loss * upstream).sum().backward()
    return loss.detach(), z.grad


def test_signatures_and_defaults_are_pytorchs():
    for name, (ours, theirs, _, _) in CASES.items():
        assert inspect.signature(ours).parameters.keys() == inspect.signature(theirs).parameters.keys(), name
        for p, q in zip(inspect.signature(ours).parameters.values(),
                        inspect.signature(theirs).parameters.values()):
            assert p.default == q.default, f"{name}: {p.name}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name, opts", params())
def test_values_and_gradients_are_pytorchs(name, opts, dtype):
    ours_fn, theirs_fn, make, _ = CASES[name]
    z, target = make(dtype)
    opts = materialise(opts, z, dtype)
    ours, theirs = value_and_grad(ours_fn, z, target, opts), value_and_grad(theirs_fn, z, target, opts)
    rtol = RTOL[dtype]
    assert ours[0].dtype == dtype and ours[1].dtype == dtype
    torch.testing.assert_close(ours[0], theirs[0], rtol=rtol, atol=rtol)
    torch.testing.assert_close(ours[1], theirs[1], rtol=rtol, atol=rtol * float(theirs[1].abs().max()))


@pytest.mark.parametrize("name, opts", params())
def test_gradcheck_in_float64(name, opts):
    ours_fn, _, make, _ = CASES[name]
    z, target = make(torch.float64, shape=(6, 4))
    opts = materialise(opts, z, torch.float64)
    z = z.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ours_fn(x, target, **opts), (z,))


@pytest.mark.parametrize("shape", [(5,), (4, 5, 3), (2, 5, 3, 2)], ids=["unbatched", "3d", "4d"])
def test_cross_entropy_class_axis_is_pytorchs(shape):
    z, t = multiclass_inputs(torch.float64, shape=(1,) + shape[:1] if len(shape) == 1 else shape)
    if len(shape) == 1:
        z, t = z[0], t[0]
    for reduction in ("mean", "none"):
        ours = value_and_grad(cet.cross_entropy, z, t, {"reduction": reduction})
        theirs = value_and_grad(F.cross_entropy, z, t, {"reduction": reduction})
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
    z = z.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: cet.cross_entropy(x, t, reduction="none"), (z,))


def test_soft_targets_are_pytorchs():
    z, _ = multiclass_inputs(torch.float64)
    y = torch.softmax(torch.randn(z.shape, dtype=torch.float64), dim=1)
    ours = value_and_grad(cet.cross_entropy, z, y, {"label_smoothing": 0.1})
    theirs = value_and_grad(F.cross_entropy, z, y, {"label_smoothing": 0.1})
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_the_loss_is_a_tensor_with_a_grad_fn_and_backward_fills_grad():
    z, t = multiclass_inputs(torch.float32)
    z.requires_grad_()
    loss = cet.cross_entropy(z, t)
    assert isinstance(loss, torch.Tensor) and loss.grad_fn is not None and loss.shape == ()
    loss.backward()
    assert z.grad is not None and z.grad.shape == z.shape


def test_input_without_grad_gives_a_constant():
    z, t = multiclass_inputs(torch.float32)
    loss = cet.cross_entropy(z, t)
    assert loss.grad_fn is None and not loss.requires_grad
    assert float(loss) == pytest.approx(float(F.cross_entropy(z, t)), rel=2e-6)


def test_retained_graph_backward_twice_accumulates_twice():
    z, t = multiclass_inputs(torch.float64)
    z.requires_grad_()
    loss = cet.cross_entropy(z, t)
    loss.backward(retain_graph=True)
    once = z.grad.clone()
    loss.backward()
    torch.testing.assert_close(z.grad, 2 * once)


def test_the_input_is_read_without_a_copy(monkeypatch):
    """The crossent call receives an ndarray over the tensor's own memory."""
    import crossent._api as api
    seen = {}
    original = api.cross_entropy

    def spy(z, *args, **kwargs):
        seen["pointer"] = z.ctypes.data
        return original(z, *args, **kwargs)
    monkeypatch.setattr(api, "cross_entropy", spy)
    z, t = multiclass_inputs(torch.float32)
    z.requires_grad_()
    cet.cross_entropy(z, t).backward()
    assert seen["pointer"] == z.data_ptr()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_low_precision_inputs_give_losses_of_their_dtype(dtype):
    pytest.importorskip("ml_dtypes")
    z, t = multiclass_inputs(torch.float32)
    low = z.to(dtype).requires_grad_()
    loss = cet.cross_entropy(low, t)
    loss.backward()
    assert loss.dtype == dtype and low.grad.dtype == dtype
    wide = low.detach().float().requires_grad_()
    wide_loss = cet.cross_entropy(wide, t)
    wide_loss.backward()
    assert loss == wide_loss.to(dtype)
    torch.testing.assert_close(low.grad, wide.grad.to(dtype), rtol=0, atol=0)


def test_misuse_names_the_argument():
    z, t = multiclass_inputs(torch.float32)
    with pytest.raises(TypeError, match="input: expected a torch.Tensor"):
        cet.cross_entropy(z.numpy(), t)
    with pytest.raises(TypeError, match="target: expected a torch.Tensor"):
        cet.cross_entropy(z, t.numpy())
    with pytest.raises(ValueError, match="reduction"):
        cet.cross_entropy(z, t, reduction="avg")


def test_legacy_size_average_and_reduce_are_read_as_pytorch_reads_them():
    z, t = multiclass_inputs(torch.float64)
    with pytest.warns(UserWarning):
        ours = cet.nll_loss(torch.log_softmax(z, 1), t, size_average=False)
    torch.testing.assert_close(ours, F.nll_loss(torch.log_softmax(z, 1), t, reduction="sum"))


def train_digits(loss_fn, epochs=60, seed=0):
    """A 64-32-10 MLP on scikit-learn's digits, full-batch Adam; test accuracy."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    train, test = order[:1400], order[1400:]
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = loss_fn(model(X[train]), y[train])
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        accuracy = (model(X[test]).argmax(1) == y[test]).float().mean().item()
    return accuracy, loss.item()


@pytest.mark.slow
def test_training_an_mlp_on_digits_matches_pytorchs_loss():
    ours, theirs = train_digits(cet.cross_entropy), train_digits(F.cross_entropy)
    assert ours[0] > 0.9
    assert ours[0] == pytest.approx(theirs[0], abs=0.01)
    assert ours[1] == pytest.approx(theirs[1], rel=1e-3)
