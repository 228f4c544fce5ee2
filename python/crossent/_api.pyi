"""Types of crossent's public functions (crossent/_api.py).

A loss returns a NumPy scalar of its computation dtype for reduction="mean"
or "sum", an array for "none", and ``(loss, grad)`` with return_grad=True;
the overloads say which from the literal arguments of a call.  A new loss
takes the five overloads of a loss below with its own arguments (the last
one, with plain ``str`` and ``bool``, catches calls whose arguments are not
literals), and a new public name goes into ``__all__`` here and in
``__init__.pyi``.
"""
from typing import Any, Literal, Protocol, TypeAlias, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

class _SupportsDLPack(Protocol):
    """A torch tensor, a JAX array: any array that exports itself by DLPack."""
    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __dlpack_device__(self) -> Any: ...

# What every array argument takes: what np.asarray takes, or a DLPack array.
_Input: TypeAlias = ArrayLike | _SupportsDLPack
_Backend: TypeAlias = Literal["cython", "c", "numpy"]
_FloatArray: TypeAlias = NDArray[np.floating[Any]]
_FloatScalar: TypeAlias = np.floating[Any]

__all__ = [
    "cross_entropy", "categorical_cross_entropy", "nll_loss", "kl_div", "softmax",
    "log_softmax", "logsumexp", "binary_cross_entropy_with_logits", "binary_cross_entropy",
    "mse_loss", "focal_loss", "sigmoid", "log_sigmoid",
]

# ---------------------------------------------------------------- activations

def sigmoid(z: _Input, *, out: _FloatArray | None = None, backend: _Backend | None = None,
            n_threads: int | None = None) -> _FloatArray: ...
def log_sigmoid(z: _Input, *, out: _FloatArray | None = None, backend: _Backend | None = None,
                n_threads: int | None = None) -> _FloatArray: ...
_Axes = int | tuple[int, ...] | None

def softmax(z: _Input, axis: _Axes = -1, *, out: _FloatArray | None = None,
            backend: _Backend | None = None, n_threads: int | None = None) -> _FloatArray: ...
def log_softmax(z: _Input, axis: _Axes = -1, *, out: _FloatArray | None = None,
                backend: _Backend | None = None, n_threads: int | None = None) -> _FloatArray: ...
def logsumexp(z: _Input, axis: _Axes = -1, *, backend: _Backend | None = None,
              n_threads: int | None = None) -> Any: ...

# ---------------------------------------------------------------- losses

@overload
def binary_cross_entropy(p: _Input, y: _Input, *, weight: _Input | None = None,
    sample_weight: _Input | None = None, reduction: Literal["mean", "sum"] = "mean",
    return_grad: Literal[False] = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> _FloatScalar: ...
@overload
def binary_cross_entropy(p: _Input, y: _Input, *, weight: _Input | None = None,
    sample_weight: _Input | None = None, reduction: Literal["none"],
    return_grad: Literal[False] = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> _FloatArray: ...
@overload
def binary_cross_entropy(p: _Input, y: _Input, *, weight: _Input | None = None,
    sample_weight: _Input | None = None, reduction: Literal["mean", "sum"] = "mean",
    return_grad: Literal[True], grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> tuple[_FloatScalar,
    _FloatArray]: ...
@overload
def binary_cross_entropy(p: _Input, y: _Input, *, weight: _Input | None = None,
    sample_weight: _Input | None = None, reduction: Literal["none"], return_grad: Literal[True],
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def binary_cross_entropy(p: _Input, y: _Input, *, weight: _Input | None = None,
    sample_weight: _Input | None = None, reduction: str = "mean", return_grad: bool = False,
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> Any: ...

@overload
def binary_cross_entropy_with_logits(z: _Input, y: _Input, *, weight: _Input | None = None,
    pos_weight: _Input | None = None, sample_weight: _Input | None = None,
    label_smoothing: float = 0.0, reduction: Literal["mean", "sum"] = "mean",
    return_grad: Literal[False] = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> _FloatScalar: ...
@overload
def binary_cross_entropy_with_logits(z: _Input, y: _Input, *, weight: _Input | None = None,
    pos_weight: _Input | None = None, sample_weight: _Input | None = None,
    label_smoothing: float = 0.0, reduction: Literal["none"], return_grad: Literal[False] = False,
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> _FloatArray: ...
@overload
def binary_cross_entropy_with_logits(z: _Input, y: _Input, *, weight: _Input | None = None,
    pos_weight: _Input | None = None, sample_weight: _Input | None = None,
    label_smoothing: float = 0.0, reduction: Literal["mean", "sum"] = "mean",
    return_grad: Literal[True], grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> tuple[_FloatScalar,
    _FloatArray]: ...
@overload
def binary_cross_entropy_with_logits(z: _Input, y: _Input, *, weight: _Input | None = None,
    pos_weight: _Input | None = None, sample_weight: _Input | None = None,
    label_smoothing: float = 0.0, reduction: Literal["none"], return_grad: Literal[True],
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def binary_cross_entropy_with_logits(z: _Input, y: _Input, *, weight: _Input | None = None,
    pos_weight: _Input | None = None, sample_weight: _Input | None = None,
    label_smoothing: float = 0.0, reduction: str = "mean", return_grad: bool = False,
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> Any: ...

@overload
def mse_loss(pred: _Input, target: _Input, *, weight: _Input | None = None,
    sample_weight: _Input | None = None, reduction: Literal["mean", "sum"] = "mean",
    return_grad: Literal[False] = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> _FloatScalar: ...
@overload
def mse_loss(pred: _Input, target: _Input, *, weight: _Input | None = None,
    sample_weight: _Input | None = None, reduction: Literal["none"],
    return_grad: Literal[False] = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> _FloatArray: ...
@overload
def mse_loss(pred: _Input, target: _Input, *, weight: _Input | None = None,
    sample_weight: _Input | None = None, reduction: Literal["mean", "sum"] = "mean",
    return_grad: Literal[True], grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> tuple[_FloatScalar,
    _FloatArray]: ...
@overload
def mse_loss(pred: _Input, target: _Input, *, weight: _Input | None = None,
    sample_weight: _Input | None = None, reduction: Literal["none"], return_grad: Literal[True],
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def mse_loss(pred: _Input, target: _Input, *, weight: _Input | None = None,
    sample_weight: _Input | None = None, reduction: str = "mean", return_grad: bool = False,
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> Any: ...

@overload
def focal_loss(z: _Input, y: _Input, *, alpha: float = 0.25, gamma: float = 2.0,
    weight: _Input | None = None, sample_weight: _Input | None = None, reduction: Literal["mean",
    "sum"] = "mean", return_grad: Literal[False] = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> _FloatScalar: ...
@overload
def focal_loss(z: _Input, y: _Input, *, alpha: float = 0.25, gamma: float = 2.0,
    weight: _Input | None = None, sample_weight: _Input | None = None, reduction: Literal["none"],
    return_grad: Literal[False] = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> _FloatArray: ...
@overload
def focal_loss(z: _Input, y: _Input, *, alpha: float = 0.25, gamma: float = 2.0,
    weight: _Input | None = None, sample_weight: _Input | None = None, reduction: Literal["mean",
    "sum"] = "mean", return_grad: Literal[True], grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> tuple[_FloatScalar,
    _FloatArray]: ...
@overload
def focal_loss(z: _Input, y: _Input, *, alpha: float = 0.25, gamma: float = 2.0,
    weight: _Input | None = None, sample_weight: _Input | None = None, reduction: Literal["none"],
    return_grad: Literal[True], grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> tuple[_FloatArray,
    _FloatArray]: ...
@overload
def focal_loss(z: _Input, y: _Input, *, alpha: float = 0.25, gamma: float = 2.0,
    weight: _Input | None = None, sample_weight: _Input | None = None, reduction: str = "mean",
    return_grad: bool = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> Any: ...

@overload
def cross_entropy(logits: _Input, target: _Input, *, axis: int = -1, weight: _Input | None = None,
    sample_weight: _Input | None = None, ignore_index: int = -100, label_smoothing: float = 0.0,
    z_loss: float = 0.0, softcap: float | None = None,
    reduction: Literal["mean", "sum"] = "mean", return_grad: Literal[False] = False,
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> _FloatScalar: ...
@overload
def cross_entropy(logits: _Input, target: _Input, *, axis: int = -1, weight: _Input | None = None,
    sample_weight: _Input | None = None, ignore_index: int = -100, label_smoothing: float = 0.0,
    z_loss: float = 0.0, softcap: float | None = None,
    reduction: Literal["none"], return_grad: Literal[False] = False,
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> _FloatArray: ...
@overload
def cross_entropy(logits: _Input, target: _Input, *, axis: int = -1, weight: _Input | None = None,
    sample_weight: _Input | None = None, ignore_index: int = -100, label_smoothing: float = 0.0,
    z_loss: float = 0.0, softcap: float | None = None,
    reduction: Literal["mean", "sum"] = "mean", return_grad: Literal[True],
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> tuple[_FloatScalar, _FloatArray]: ...
@overload
def cross_entropy(logits: _Input, target: _Input, *, axis: int = -1, weight: _Input | None = None,
    sample_weight: _Input | None = None, ignore_index: int = -100, label_smoothing: float = 0.0,
    z_loss: float = 0.0, softcap: float | None = None,
    reduction: Literal["none"], return_grad: Literal[True], grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> tuple[_FloatArray,
    _FloatArray]: ...
@overload
def cross_entropy(logits: _Input, target: _Input, *, axis: int = -1, weight: _Input | None = None,
    sample_weight: _Input | None = None, ignore_index: int = -100, label_smoothing: float = 0.0,
    z_loss: float = 0.0, softcap: float | None = None,
    reduction: str = "mean", return_grad: bool = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> Any: ...

@overload
def categorical_cross_entropy(probs: _Input, target: _Input, *, axis: int = -1,
    weight: _Input | None = None, sample_weight: _Input | None = None, ignore_index: int = -100,
    label_smoothing: float = 0.0, reduction: Literal["mean", "sum"] = "mean",
    return_grad: Literal[False] = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> _FloatScalar: ...
@overload
def categorical_cross_entropy(probs: _Input, target: _Input, *, axis: int = -1,
    weight: _Input | None = None, sample_weight: _Input | None = None, ignore_index: int = -100,
    label_smoothing: float = 0.0, reduction: Literal["none"], return_grad: Literal[False] = False,
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> _FloatArray: ...
@overload
def categorical_cross_entropy(probs: _Input, target: _Input, *, axis: int = -1,
    weight: _Input | None = None, sample_weight: _Input | None = None, ignore_index: int = -100,
    label_smoothing: float = 0.0, reduction: Literal["mean", "sum"] = "mean",
    return_grad: Literal[True], grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> tuple[_FloatScalar,
    _FloatArray]: ...
@overload
def categorical_cross_entropy(probs: _Input, target: _Input, *, axis: int = -1,
    weight: _Input | None = None, sample_weight: _Input | None = None, ignore_index: int = -100,
    label_smoothing: float = 0.0, reduction: Literal["none"], return_grad: Literal[True],
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def categorical_cross_entropy(probs: _Input, target: _Input, *, axis: int = -1,
    weight: _Input | None = None, sample_weight: _Input | None = None, ignore_index: int = -100,
    label_smoothing: float = 0.0, reduction: str = "mean", return_grad: bool = False,
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> Any: ...

@overload
def nll_loss(log_probs: _Input, target: _Input, *, axis: int = -1, weight: _Input | None = None,
    sample_weight: _Input | None = None, ignore_index: int = -100, reduction: Literal["mean",
    "sum"] = "mean", return_grad: Literal[False] = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> _FloatScalar: ...
@overload
def nll_loss(log_probs: _Input, target: _Input, *, axis: int = -1, weight: _Input | None = None,
    sample_weight: _Input | None = None, ignore_index: int = -100, reduction: Literal["none"],
    return_grad: Literal[False] = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> _FloatArray: ...
@overload
def nll_loss(log_probs: _Input, target: _Input, *, axis: int = -1, weight: _Input | None = None,
    sample_weight: _Input | None = None, ignore_index: int = -100, reduction: Literal["mean",
    "sum"] = "mean", return_grad: Literal[True], grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> tuple[_FloatScalar,
    _FloatArray]: ...
@overload
def nll_loss(log_probs: _Input, target: _Input, *, axis: int = -1, weight: _Input | None = None,
    sample_weight: _Input | None = None, ignore_index: int = -100, reduction: Literal["none"],
    return_grad: Literal[True], grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> tuple[_FloatArray,
    _FloatArray]: ...
@overload
def nll_loss(log_probs: _Input, target: _Input, *, axis: int = -1, weight: _Input | None = None,
    sample_weight: _Input | None = None, ignore_index: int = -100, reduction: str = "mean",
    return_grad: bool = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> Any: ...

@overload
def kl_div(log_q: _Input, p: _Input, *, log_target: bool = False, axis: int = -1,
    sample_weight: _Input | None = None, reduction: Literal["batchmean", "mean",
    "sum"] = "batchmean", return_grad: Literal[False] = False,
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> _FloatScalar: ...
@overload
def kl_div(log_q: _Input, p: _Input, *, log_target: bool = False, axis: int = -1,
    sample_weight: _Input | None = None, reduction: Literal["none"],
    return_grad: Literal[False] = False, grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> _FloatArray: ...
@overload
def kl_div(log_q: _Input, p: _Input, *, log_target: bool = False, axis: int = -1,
    sample_weight: _Input | None = None, reduction: Literal["batchmean", "mean",
    "sum"] = "batchmean", return_grad: Literal[True], grad_out: _FloatArray | None = None,
    backend: _Backend | None = None, n_threads: int | None = None) -> tuple[_FloatScalar,
    _FloatArray]: ...
@overload
def kl_div(log_q: _Input, p: _Input, *, log_target: bool = False, axis: int = -1,
    sample_weight: _Input | None = None, reduction: Literal["none"], return_grad: Literal[True],
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def kl_div(log_q: _Input, p: _Input, *, log_target: bool = False, axis: int = -1,
    sample_weight: _Input | None = None, reduction: str = "batchmean", return_grad: bool = False,
    grad_out: _FloatArray | None = None, backend: _Backend | None = None,
    n_threads: int | None = None) -> Any: ...
