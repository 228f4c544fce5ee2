"""Types of crossent._cython_backend: the Cython backend.  One function per
kernel of the table (csrc/crossent_kernels.h, docs/kernels.md), positional
arguments as its signature names them, and the one-call fast paths."""
from typing import Any

import numpy as np
from numpy.typing import NDArray

NAME: str
KERNELS: dict[str, str]

def info() -> dict[str, Any]: ...
def set_simd(variant: str) -> None: ...

# the kernels of the table: a row of CE_KERNELS adds one line here
def sigmoid(x2: NDArray[Any], out2: NDArray[Any], n_threads: int, /) -> None: ...
def log_sigmoid(x2: NDArray[Any], out2: NDArray[Any], n_threads: int, /) -> None: ...
def bce(p2: NDArray[Any], y2: NDArray[Any], weight2: NDArray[Any] | None,
    sample_weight2: NDArray[Any] | None, losses_out2: NDArray[Any] | None,
    grad_out2: NDArray[Any] | None, grad_scale: float, n_threads: int,
    acc: float, /) -> float: ...
def bce_with_logits(z2: NDArray[Any], y2: NDArray[Any],
    weight2: NDArray[Any] | None, pos_weight2: NDArray[Any] | None,
    sample_weight2: NDArray[Any] | None, label_smoothing: float,
    losses_out2: NDArray[Any] | None, grad_out2: NDArray[Any] | None,
    grad_scale: float, n_threads: int, acc: float, /) -> float: ...
def mse(x2: NDArray[Any], t2: NDArray[Any], weight2: NDArray[Any] | None,
    sample_weight2: NDArray[Any] | None, losses_out2: NDArray[Any] | None,
    grad_out2: NDArray[Any] | None, grad_scale: float, n_threads: int,
    acc: float, /) -> float: ...
def focal(z2: NDArray[Any], y2: NDArray[Any], weight2: NDArray[Any] | None,
    sample_weight2: NDArray[Any] | None, alpha: float, gamma: float,
    losses_out2: NDArray[Any] | None, grad_out2: NDArray[Any] | None,
    grad_scale: float, n_threads: int, acc: float, /) -> float: ...
def kl_div(x2: NDArray[Any], t2: NDArray[Any], weight2: NDArray[Any] | None,
    sample_weight2: NDArray[Any] | None, log_target: int,
    losses_out2: NDArray[Any] | None, grad_out2: NDArray[Any] | None,
    grad_scale: float, n_threads: int, acc: float, /) -> float: ...
def softmax(x3: NDArray[Any], out3: NDArray[Any], n_threads: int, /) -> None: ...
def log_softmax(x3: NDArray[Any], out3: NDArray[Any], n_threads: int, /) -> None: ...
def logsumexp(x3: NDArray[Any], out2: NDArray[Any], n_threads: int, /) -> None: ...
def softmax_xent_index(z3: NDArray[Any], target2: NDArray[Any],
    class_weight: NDArray[np.float64] | None,
    sample_weight2: NDArray[Any] | None, ignore_index: int,
    label_smoothing: float, losses_out2: NDArray[Any] | None,
    grad_out3: NDArray[Any] | None, grad_scale: float, n_threads: int,
    acc: float, /) -> float: ...
def softmax_xent_soft(z3: NDArray[Any], y3: NDArray[Any],
    class_weight: NDArray[np.float64] | None,
    sample_weight2: NDArray[Any] | None, label_smoothing: float,
    losses_out2: NDArray[Any] | None, grad_out3: NDArray[Any] | None,
    grad_scale: float, n_threads: int, acc: float, /) -> float: ...
def categorical_xent_index(p3: NDArray[Any], target2: NDArray[Any],
    class_weight: NDArray[np.float64] | None,
    sample_weight2: NDArray[Any] | None, ignore_index: int,
    label_smoothing: float, losses_out2: NDArray[Any] | None,
    grad_out3: NDArray[Any] | None, grad_scale: float, n_threads: int,
    acc: float, /) -> float: ...
def categorical_xent_soft(p3: NDArray[Any], y3: NDArray[Any],
    class_weight: NDArray[np.float64] | None,
    sample_weight2: NDArray[Any] | None, label_smoothing: float,
    losses_out2: NDArray[Any] | None, grad_out3: NDArray[Any] | None,
    grad_scale: float, n_threads: int, acc: float, /) -> float: ...
def nll_index(x3: NDArray[Any], target2: NDArray[Any],
    class_weight: NDArray[np.float64] | None,
    sample_weight2: NDArray[Any] | None, ignore_index: int,
    losses_out2: NDArray[Any] | None, grad_out3: NDArray[Any] | None,
    grad_scale: float, n_threads: int, acc: float, /) -> float: ...
def index_weight_sum(target2: NDArray[Any],
    class_weight: NDArray[np.float64] | None,
    sample_weight2: NDArray[Any] | None, ignore_index: int, n_threads: int,
    acc: float, /) -> float: ...
def first_bad_index(target2: NDArray[Any], n_classes: int, ignore_index: int, /) -> int: ...

# the fast paths (csrc/crossent_pybind.h): a result, or None for the general path
def fast_softmax_xent_index(z: NDArray[Any], t: NDArray[Any], class_weight: Any, sample_weight: Any,
    ignore_index: int, label_smoothing: float, mean: bool, return_grad: bool,
    n_threads: int, /) -> Any: ...
def fast_nll_index(z: NDArray[Any], t: NDArray[Any], class_weight: Any, sample_weight: Any,
    ignore_index: int, mean: bool, return_grad: bool, n_threads: int, /) -> Any: ...
def fast_activation(name: str, z: NDArray[Any], n_threads: int, /) -> Any: ...
def fast_bce_with_logits(z: NDArray[Any], y: NDArray[Any], weight: Any, pos_weight: Any,
    label_smoothing: float, mean: bool, return_grad: bool, n_threads: int, /) -> Any: ...
def fast_bce(p: NDArray[Any], y: NDArray[Any], weight: Any, mean: bool, return_grad: bool,
    n_threads: int, /) -> Any: ...
def fast_mse(x: NDArray[Any], t: NDArray[Any], mean: bool, return_grad: bool, n_threads: int,
    /) -> Any: ...
