"""crossent's losses as PyTorch functions: tensors in, tensors out, with a
``grad_fn`` whose backward is crossent's fused gradient.

Each function has the signature and defaults of its PyTorch original
(``torch.nn.functional``; ``focal_loss`` those of
``torchvision.ops.sigmoid_focal_loss``), so that it replaces it in a training
loop::

    import crossent.torch as cet
    loss = cet.cross_entropy(model(x), y)      # was F.cross_entropy(model(x), y)
    loss.backward()

The forward pass computes the loss and, when the input requires grad, its
gradient in one pass of crossent's kernel (over the tensor's memory, without
a copy); backward only scales the saved gradient by the incoming one.  CPU
tensors only.  The loss has the input's dtype (float16 and bfloat16 inputs are
computed in float32 and rounded back, as PyTorch's CPU kernels return them).
Gradients flow to the input (logits or log-probabilities) only: a target,
``weight`` or ``pos_weight`` that requires grad is treated as a constant.

PyTorch is an optional dependency: ``pip install crossent[torch]`` (on a
machine without a GPU, ``pip install torch==2.13.0`` from the CPU wheel
index keeps the CUDA libraries out).
"""
try:
    import torch as _torch
except ImportError as error:   # pragma: no cover - exercised without torch only
    raise ImportError("crossent.torch needs PyTorch: pip install crossent[torch] "
                      "(or pip install torch)") from error

import numpy as np

from . import _api, _linear_ce
from ._validate import as_array

__all__ = ["cross_entropy", "binary_cross_entropy_with_logits", "nll_loss", "focal_loss",
           "linear_cross_entropy"]


# ------------------------------------------------------------------ helpers

def _numpy(tensor, name):
    """A tensor's memory as an ndarray (no copy), or None for None."""
    if tensor is None:
        return None
    if not isinstance(tensor, _torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.device.type == "cpu" and tensor.dtype != _torch.bfloat16:
        try:
            # Tensor.numpy: the DLPack view of crossent's inputs, at a
            # fraction of its cost per call.
            return tensor.detach().numpy()
        except (RuntimeError, TypeError):   # a conjugate or negative view, ...
            pass
    return as_array(tensor, name)   # bfloat16 (as ml_dtypes), or the device error


def _reduction(size_average, reduce, reduction):
    """PyTorch's deprecated size_average/reduce pair, as its functions read it."""
    if size_average is not None or reduce is not None:
        from torch.nn import _reduction as legacy
        return legacy.legacy_get_string(size_average, reduce)
    return reduction


def _tensor(array, like):
    """A NumPy result as a tensor of ``like``'s dtype (shares memory when the
    dtypes agree)."""
    tensor = _torch.from_numpy(np.asarray(array))
    return tensor if tensor.dtype == like.dtype else tensor.to(like.dtype)


class _FusedLoss(_torch.autograd.Function):
    """A crossent loss with its gradient from the forward pass.

    ``run(return_grad)`` calls the crossent function on the input's memory;
    ``class_axis`` is where a per-sample incoming gradient (reduction="none")
    is broadcast along, None for elementwise losses.
    """

    @staticmethod
    def forward(ctx, input, run, class_axis, reduction):
        needs_grad = ctx.needs_input_grad[0]
        result = run(needs_grad)
        loss, grad = result if needs_grad else (result, None)
        ctx.run, ctx.input_dtype = run, input.dtype
        ctx.grad = None if grad is None else _tensor(grad, input)
        ctx.class_axis = class_axis if reduction == "none" else None
        return _tensor(loss, input)

    @staticmethod
    @_torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        grad = ctx.grad
        if grad is None:
            # Handed over by an earlier backward of a retained graph: again.
            grad = _tensor(ctx.run(True)[1], _torch.empty(0, dtype=ctx.input_dtype))
        if ctx.class_axis is None and grad_output.numel() == 1 and grad_output.item() == 1.0:
            # loss.backward(): the saved gradient is the answer.  Handing it
            # over (no reference kept) lets autograd make it the input's .grad
            # without a copy; a second backward of a retained graph computes
            # it again above, since autograd may accumulate into this one.
            ctx.grad = None
            return grad, None, None, None
        grad_output = grad_output.to(grad.dtype)
        if ctx.class_axis is not None:
            grad_output = grad_output.unsqueeze(ctx.class_axis)
        return grad * grad_output, None, None, None


def _fused(input, run, class_axis, reduction):
    return _FusedLoss.apply(input, run, class_axis, reduction)


def _class_axis(input):
    """PyTorch's class axis: 1, or 0 for a single unbatched sample; as the
    last axis where it is (crossent's fast path takes axis=-1)."""
    return -1 if input.dim() <= 2 else 1


# ------------------------------------------------------------------ losses

def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """``torch.nn.functional.cross_entropy`` computed by
    :func:`crossent.cross_entropy` (class axis 1, integer or soft targets,
    class ``weight``, ``ignore_index``, ``label_smoothing``)."""
    reduction = _reduction(size_average, reduce, reduction)
    z, t, w = _numpy(input, "input"), _numpy(target, "target"), _numpy(weight, "weight")
    axis = _class_axis(input)
    return _fused(input, lambda return_grad: _api.cross_entropy(
        z, t, axis=axis, weight=w, ignore_index=ignore_index, label_smoothing=label_smoothing,
        reduction=reduction, return_grad=return_grad), axis, reduction)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """``torch.nn.functional.nll_loss`` computed by :func:`crossent.nll_loss`."""
    reduction = _reduction(size_average, reduce, reduction)
    x, t, w = _numpy(input, "input"), _numpy(target, "target"), _numpy(weight, "weight")
    axis = _class_axis(input)
    return _fused(input, lambda return_grad: _api.nll_loss(
        x, t, axis=axis, weight=w, ignore_index=ignore_index, reduction=reduction,
        return_grad=return_grad), axis, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """``torch.nn.functional.binary_cross_entropy_with_logits`` computed by
    :func:`crossent.binary_cross_entropy_with_logits`."""
    reduction = _reduction(size_average, reduce, reduction)
    z, y = _numpy(input, "input"), _numpy(target, "target")
    w, pw = _numpy(weight, "weight"), _numpy(pos_weight, "pos_weight")
    return _fused(input, lambda return_grad: _api.binary_cross_entropy_with_logits(
        z, y, weight=w, pos_weight=pw, reduction=reduction, return_grad=return_grad),
        None, reduction)


def focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """``torchvision.ops.sigmoid_focal_loss`` (its signature and its
    ``reduction="none"`` default; ``alpha < 0`` turns the class balance off)
    computed by :func:`crossent.focal_loss`."""
    z, y = _numpy(inputs, "inputs"), _numpy(targets, "targets")
    return _fused(inputs, lambda return_grad: _api.focal_loss(
        z, y, alpha=alpha, gamma=gamma, reduction=reduction, return_grad=return_grad),
        None, reduction)


class _FusedLinearLoss(_torch.autograd.Function):
    """crossent.linear_cross_entropy with its three gradients.

    ``run(return_grad, sample_weight=None, reduction=<the call's>)`` calls it
    on the operands' memory.  A scalar loss computes (dh, dW, dbias) in the forward
    pass, as the row kernels give them, and backward scales them.  For
    ``reduction="none"`` an incoming gradient per token cannot be applied to
    dW after the fact (dW sums over the tokens), so backward computes the
    gradients then, of ``Σ grad_output_i·loss_i``: the per-token incoming
    gradient is the sample weight of a summed loss.
    """

    @staticmethod
    def forward(ctx, input, linear_weight, linear_bias, run, reduction):
        wanted = ctx.needs_input_grad[:3]
        ctx.run, ctx.reduction = run, reduction
        ctx.like = tuple(None if x is None else _torch.empty(0, dtype=x.dtype)
                         for x in (input, linear_weight, linear_bias))
        ctx.wanted, ctx.grads = wanted, None
        if any(wanted) and reduction != "none":
            loss, ctx.grads = run(True)
        else:
            loss = run(False)
        return _tensor(loss, input)

    @staticmethod
    @_torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        scale = None
        if ctx.reduction == "none":
            weights = grad_output.detach().to(_torch.float64).numpy()
            grads = ctx.run(True, sample_weight=weights, reduction="sum")[1]
        else:
            grads, ctx.grads = ctx.grads, None
            if grads is None:   # a second backward of a retained graph
                grads = ctx.run(True)[1]
            if grad_output.item() != 1.0:
                scale = grad_output
        out = []
        for grad, like, wanted in zip(grads, ctx.like, ctx.wanted):
            if grad is None or not wanted:
                out.append(None)
                continue
            grad = _tensor(grad, like)
            out.append(grad if scale is None else grad * scale.to(grad.dtype))
        return (*out, None, None)


def _linear_shapes(input, linear_weight, target, linear_bias, ignore_index):
    """PyTorch's checks of linear_cross_entropy's shapes, with its messages;
    returns the weight's dimensions between the classes and the features
    (``()`` for a plain (C, in_features) weight)."""
    if input.dim() < 1 or input.dim() > 2:
        raise RuntimeError(f"expected input with dimensionality 1 or 2, got {input.dim()}")
    if linear_weight.dim() < 2:
        raise RuntimeError("expected linear_weight with dimensionality at least 2, got "
                           f"{linear_weight.dim()}")
    if input.shape[-1] != linear_weight.shape[-1]:
        raise RuntimeError("expected equal input and linear_weight last dimensions "
                           f"(in_features), got {input.shape[-1]} and "
                           f"{linear_weight.shape[-1]}, respectively")
    out_features = tuple(linear_weight.shape[1:-1])
    logits_shape = (*input.shape[:-1], linear_weight.shape[0], *out_features)
    if linear_bias is not None and tuple(linear_bias.shape) != logits_shape[input.dim() - 1:]:
        raise RuntimeError(f"expected linear_bias shape {logits_shape[input.dim() - 1:]}, "
                           f"got {tuple(linear_bias.shape)}")
    if out_features and input.dim() == 1:
        raise RuntimeError(f"K-dimensional loss defined by linear_weight shape "
                           f"{tuple(linear_weight.shape)} requires batched input, "
                           f"(N, {input.shape[-1]}), got unbatched input with shape "
                           f"{tuple(input.shape)}")
    probabilities = tuple(target.shape) == logits_shape
    if probabilities and ignore_index is not None:
        raise RuntimeError("ignore_index cannot be specified when target contains probabilities")
    return out_features


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0, options=None):
    """``torch.nn.functional.linear_cross_entropy`` computed by
    :func:`crossent.linear_cross_entropy`: the logits ``input @ linear_weight.T
    + linear_bias`` a chunk of rows at a time, never all N × C of them, with
    the gradients of ``input``, ``linear_weight`` and ``linear_bias`` from the
    same pass.

    ``options`` (``torch.nn.LinearCrossEntropyOptions``) only lends its
    ``batch_chunk_size``, the rows per chunk (default: 1/16 of the N × C
    logits); crossent always sums in float64, so ``acc_policy`` and
    ``acc_dtype`` have nothing to choose.  A K-dimensional ``linear_weight``
    (C, d_1, …, d_K, in_features) softmaxes over C at each position, which
    is no row of one GEMM: it is computed, as PyTorch computes it, on the
    materialised logits (by :func:`cross_entropy`).
    """
    h, w = _numpy(input, "input"), _numpy(linear_weight, "linear_weight")
    t, b, cw = _numpy(target, "target"), _numpy(linear_bias, "linear_bias"), _numpy(weight, "weight")
    out_features = _linear_shapes(input, linear_weight, target, linear_bias, ignore_index)
    ignore_index = -100 if ignore_index is None else ignore_index
    if out_features:
        in_features = input.shape[-1]
        flat_bias = None if linear_bias is None else linear_bias.reshape(-1)
        logits = _torch.nn.functional.linear(input, linear_weight.reshape(-1, in_features),
                                             flat_bias)
        return cross_entropy(logits.reshape(input.shape[0], *linear_weight.shape[:-1]), target,
                             weight, ignore_index=ignore_index, reduction=reduction,
                             label_smoothing=label_smoothing)
    chunk_size = getattr(options, "batch_chunk_size", None)

    def run(return_grad, sample_weight=None, reduction=reduction):
        return _linear_ce.linear_cross_entropy(
            h, w, t, bias=b, weight=cw, sample_weight=sample_weight, ignore_index=ignore_index,
            label_smoothing=label_smoothing, reduction=reduction, return_grad=return_grad,
            chunk_size=chunk_size)
    return _FusedLinearLoss.apply(input, linear_weight, linear_bias, run, reduction)
