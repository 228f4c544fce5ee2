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

from . import _api
from ._validate import as_array

__all__ = ["cross_entropy", "binary_cross_entropy_with_logits", "nll_loss", "focal_loss"]


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


# linear_cross_entropy(input, linear_weight, target, bias=None, ...): the
# fused projection + cross-entropy, with gradients for the input, the weight
# and the bias, belongs here once crossent.linear_cross_entropy exists; its
# Function saves the three gradients and scales each in backward, as
# _FusedLoss does for one.
