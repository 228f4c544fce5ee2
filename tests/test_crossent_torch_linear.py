"""crossent.torch.linear_cross_entropy: PyTorch's F.linear_cross_entropy
(signature, defaults, values, the gradients of input, weight and bias, its
shape rules and errors) computed by crossent without the N × C logits."""
import inspect
import tracemalloc
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
cet = pytest.importorskip("crossent.torch")
if not hasattr(F, "linear_cross_entropy"):
    pytest.skip("this torch has no F.linear_cross_entropy", allow_module_level=True)

RTOL = {torch.float64: 1e-11, torch.float32: 1e-5}


def problem(dtype, n=13, d=7, v=11, soft=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(v, d, generator=g, dtype=dtype) / 2
    b = torch.randn(v, generator=g, dtype=dtype)
    if soft:
        return h, w, b, torch.softmax(torch.randn(n, v, generator=g, dtype=dtype), -1)
    t = torch.randint(0, v, (n,), generator=g)
    t[[0, 4]] = -100
    return h, w, b, t


OPTIONS = [
    {}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.1},
    {"ignore_index": 3}, {"weight": "class"}, {"bias": False},
    {"weight": "class", "label_smoothing": 0.2, "reduction": "none"},
    {"soft": True}, {"soft": True, "weight": "class", "reduction": "sum"},
]


def arguments(options, dtype):
    """(h, W, b, target, keywords) for one entry of OPTIONS."""
    options = dict(options)
    soft, with_bias = options.pop("soft", False), options.pop("bias", True)
    h, w, b, t = problem(dtype, soft=soft)
    if "ignore_index" in options:
        t[t == -100] = options["ignore_index"]
    if options.get("weight") == "class":
        options["weight"] = torch.rand(w.shape[0], generator=torch.Generator().manual_seed(5),
                                       dtype=dtype) + 0.5
    return h, w, b if with_bias else None, t, options


def values_and_grads(function, h, w, b, t, options):
    leaves = [x.detach().clone().requires_grad_() for x in (h, w) + ((b,) if b is not None else ())]
    loss = function(leaves[0], leaves[1], t, linear_bias=leaves[2] if b is not None else None,
                    **options)
    upstream = torch.randn(loss.shape, generator=torch.Generator().manual_seed(3),
                           dtype=loss.dtype)
    (loss * upstream).sum().backward()
    return [loss.detach()] + [x.grad for x in leaves]


def test_signature_and_defaults_are_pytorchs():
    ours = inspect.signature(cet.linear_cross_entropy).parameters
    theirs = inspect.signature(F.linear_cross_entropy).parameters
    assert list(ours) == list(theirs)
    for name in theirs:
        assert (ours[name].kind, ours[name].default) == (theirs[name].kind, theirs[name].default), name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("options", OPTIONS, ids=[str(i) for i in range(len(OPTIONS))])
def test_values_and_gradients_are_pytorchs(options, dtype):
    h, w, b, t, keywords = arguments(options, dtype)
    ours = values_and_grads(cet.linear_cross_entropy, h, w, b, t, keywords)
    theirs = values_and_grads(F.linear_cross_entropy, h, w, b, t, keywords)
    rtol = RTOL[dtype]
    for mine, expected in zip(ours, theirs):
        assert mine.dtype == dtype and mine.shape == expected.shape
        torch.testing.assert_close(mine, expected, rtol=rtol,
                                   atol=rtol * max(1.0, float(expected.abs().max())))


@pytest.mark.parametrize("options", OPTIONS, ids=[str(i) for i in range(len(OPTIONS))])
def test_gradcheck_in_float64(options):
    h, w, b, t, keywords = arguments(options, torch.float64)
    leaves = tuple(x.requires_grad_() for x in (h, w) + ((b,) if b is not None else ()))

    def loss(h, w, b=None):
        return cet.linear_cross_entropy(h, w, t, linear_bias=b, **keywords)
    assert torch.autograd.gradcheck(loss, leaves)


def test_the_pytorch_chunked_path_agrees():
    h, w, b, t, _ = arguments({}, torch.float32)
    ours = values_and_grads(cet.linear_cross_entropy, h, w, b, t, {})
    theirs = values_and_grads(F.linear_cross_entropy, h, w, b, t,
                              {"options": torch.nn.LinearCrossEntropyOptions()})
    for mine, expected in zip(ours, theirs):
        torch.testing.assert_close(mine, expected, rtol=1e-5, atol=1e-6)


def test_unbatched_input():
    h, w, b, _ = problem(torch.float64)
    for target in (torch.tensor(4), torch.softmax(torch.randn(w.shape[0], dtype=torch.float64), 0)):
        ours = values_and_grads(cet.linear_cross_entropy, h[0], w, b, target, {})
        theirs = values_and_grads(F.linear_cross_entropy, h[0], w, b, target, {})
        assert ours[0].shape == ()
        for mine, expected in zip(ours, theirs):
            torch.testing.assert_close(mine, expected)


def test_k_dimensional_weight_is_pytorchs():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(6, 5, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    b = torch.randn(4, 3, generator=g, dtype=torch.float64)
    t = torch.randint(0, 4, (6, 3), generator=g)
    for reduction in ("mean", "none"):
        ours = values_and_grads(cet.linear_cross_entropy, h, w, b, t, {"reduction": reduction})
        theirs = values_and_grads(F.linear_cross_entropy, h, w, b, t, {"reduction": reduction})
        for mine, expected in zip(ours, theirs):
            torch.testing.assert_close(mine, expected)


def test_options_lend_their_chunk_size(monkeypatch):
    import crossent._linear_ce as linear_ce
    seen = []
    original = linear_ce.linear_cross_entropy

    def spy(h, w, t, **kwargs):
        seen.append((h.ctypes.data, w.ctypes.data, kwargs["chunk_size"]))
        return original(h, w, t, **kwargs)
    monkeypatch.setattr(linear_ce, "linear_cross_entropy", spy)
    h, w, b, t = problem(torch.float32)
    h.requires_grad_()
    chunked = cet.linear_cross_entropy(h, w, t, linear_bias=b,
                                       options=torch.nn.LinearCrossEntropyOptions(batch_chunk_size=4))
    chunked.backward()
    whole = cet.linear_cross_entropy(h, w, t, linear_bias=b)
    # the operands are read in place: the pointers are the tensors' own
    assert seen == [(h.data_ptr(), w.data_ptr(), 4), (h.data_ptr(), w.data_ptr(), None)]
    torch.testing.assert_close(chunked, whole)


def test_only_the_tensors_that_require_grad_get_one():
    h, w, b, t = problem(torch.float64)
    w.requires_grad_()
    loss = cet.linear_cross_entropy(h, w, t, linear_bias=b)
    loss.backward()
    assert h.grad is None and b.grad is None
    w_ref = w.detach().clone().requires_grad_()
    F.linear_cross_entropy(h, w_ref, t, linear_bias=b).backward()
    torch.testing.assert_close(w.grad, w_ref.grad)
    assert cet.linear_cross_entropy(h, w.detach(), t).grad_fn is None


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_retained_graph_backward_twice_accumulates_twice(reduction):
    h, w, b, t = problem(torch.float64)
    for x in (h, w, b):
        x.requires_grad_()
    loss = cet.linear_cross_entropy(h, w, t, linear_bias=b, reduction=reduction).sum()
    loss.backward(retain_graph=True)
    once = [x.grad.clone() for x in (h, w, b)]
    loss.backward()
    for x, first in zip((h, w, b), once):
        torch.testing.assert_close(x.grad, 2 * first)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_low_precision_operands_are_computed_in_float32(dtype):
    pytest.importorskip("ml_dtypes")
    h, w, b, t = problem(torch.float32)
    low = [x.to(dtype).requires_grad_() for x in (h, w, b)]
    loss = cet.linear_cross_entropy(low[0], low[1], t, linear_bias=low[2])
    loss.backward()
    wide = [x.detach().float().requires_grad_() for x in low]
    wide_loss = cet.linear_cross_entropy(wide[0], wide[1], t, linear_bias=wide[2])
    wide_loss.backward()
    assert loss.dtype == dtype and loss == wide_loss.to(dtype)
    for x, y in zip(low, wide):
        assert x.grad.dtype == dtype
        torch.testing.assert_close(x.grad, y.grad.to(dtype), rtol=0, atol=0)


@pytest.mark.parametrize("args, keywords, words", [
    ((torch.ones(2, 3, 4), torch.ones(5, 4), torch.zeros(2, 3, dtype=torch.long)), {},
     "dimensionality 1 or 2"),
    ((torch.ones(2, 4), torch.ones(5), torch.zeros(2, dtype=torch.long)), {},
     "linear_weight with dimensionality"),
    ((torch.ones(2, 4), torch.ones(5, 3), torch.zeros(2, dtype=torch.long)), {}, "in_features"),
    ((torch.ones(2, 4), torch.ones(5, 4), torch.zeros(2, dtype=torch.long)),
     {"linear_bias": torch.ones(4)}, "linear_bias shape"),
    ((torch.ones(4), torch.ones(5, 2, 4), torch.zeros(2, dtype=torch.long)), {},
     "requires batched input"),
    ((torch.ones(2, 4), torch.ones(5, 4), torch.full((2, 5), 0.2)), {"ignore_index": 1},
     "ignore_index cannot be specified"),
])
def test_shape_errors_are_pytorchs(args, keywords, words):
    for function in (cet.linear_cross_entropy, F.linear_cross_entropy):
        with pytest.raises(RuntimeError, match=words):
            function(*args, **keywords)


def test_misuse_names_the_argument():
    h, w, b, t = problem(torch.float32)
    with pytest.raises(TypeError, match="input: expected a torch.Tensor"):
        cet.linear_cross_entropy(h.numpy(), w, t)
    with pytest.raises(ValueError, match="outside"):
        cet.linear_cross_entropy(h, w, torch.full_like(t, w.shape[0]))
    with pytest.raises(ValueError, match="reduction"):
        cet.linear_cross_entropy(h, w, t, reduction="avg")


def test_the_logits_never_exist():
    """Forward and backward allocate about 1/16 of the N × C float32 logits
    beyond the returned gradients (NumPy's allocations, which crossent's
    buffers are, are the ones tracemalloc sees)."""
    n, d, v = 512, 32, 8192
    h, w, b, t = problem(torch.float32, n=n, d=d, v=v)
    for x in (h, w, b):
        x.requires_grad_()
    tracemalloc.start()
    try:
        cet.linear_cross_entropy(h, w, t, linear_bias=b).backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    returned = 4 * (n * d + v * d + v)
    assert peak - returned <= n * v * 4 / 8


def train_digits(head, epochs=60, seed=0):
    """A 64-32-10 MLP on scikit-learn's digits (full-batch Adam), its last
    layer and loss given by ``head(features, layer, y)``; test accuracy."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    X, y = torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    train, test = order[:1400], order[1400:]
    torch.manual_seed(seed)
    body = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU())
    last = torch.nn.Linear(32, 10)
    optimiser = torch.optim.Adam([*body.parameters(), *last.parameters()], lr=1e-2)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = head(body(X[train]), last, y[train])
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        accuracy = (last(body(X[test])).argmax(1) == y[test]).float().mean().item()
    return accuracy, loss.item()


@pytest.mark.slow
def test_training_an_mlp_head_on_digits_matches_pytorchs():
    ours = train_digits(lambda x, last, y: cet.linear_cross_entropy(
        x, last.weight, y, linear_bias=last.bias))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = train_digits(lambda x, last, y: F.linear_cross_entropy(
            x, last.weight, y, linear_bias=last.bias))
    assert ours[0] > 0.9
    assert ours[0] == pytest.approx(theirs[0], abs=0.01)
    assert ours[1] == pytest.approx(theirs[1], rel=1e-3)
