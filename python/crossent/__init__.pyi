"""Types of the crossent package (crossent/__init__.py).  Each module has its
own stub beside it; a module that adds public functions adds them there and
re-exports them here."""
import os
from contextlib import AbstractContextManager
from collections.abc import Sequence
from typing import Any

from . import linear as linear
from . import objectives as objectives
from ._api import (_Backend, _FloatScalar, _Input, binary_cross_entropy as binary_cross_entropy,
                   binary_cross_entropy_with_logits as binary_cross_entropy_with_logits,
                   categorical_cross_entropy as categorical_cross_entropy,
                   cross_entropy as cross_entropy, focal_loss as focal_loss, kl_div as kl_div,
                   log_sigmoid as log_sigmoid, log_softmax as log_softmax,
                   logsumexp as logsumexp, mse_loss as mse_loss, nll_loss as nll_loss,
                   sigmoid as sigmoid, softmax as softmax)
from ._linear_ce import linear_cross_entropy as linear_cross_entropy
from ._partial import LossPartial as LossPartial
from ._partial import loss_partial as loss_partial
from ._partial import merge_partials as merge_partials

__version__: str
__all__ = [
    "cross_entropy", "categorical_cross_entropy", "nll_loss", "kl_div", "softmax",
    "log_softmax", "logsumexp", "binary_cross_entropy_with_logits", "binary_cross_entropy",
    "mse_loss", "focal_loss", "sigmoid", "log_sigmoid",
    "backends", "get_backend", "set_backend", "use_backend", "set_num_threads",
    "get_num_threads", "release_memory", "info", "linear", "evaluate",
    "loss_partial", "LossPartial", "merge_partials", "objectives", "linear_cross_entropy",
]

def backends() -> list[str]: ...
def get_backend() -> str: ...
def set_backend(name: _Backend | None) -> None: ...
def use_backend(name: _Backend) -> AbstractContextManager[str]: ...
def set_num_threads(n: int | None) -> None: ...
def get_num_threads() -> int: ...
def release_memory() -> int: ...
def info() -> dict[str, Any]: ...

def evaluate(loss: str, pred: _Input | str | os.PathLike[str],
             target: _Input | str | os.PathLike[str], *,
             weight: _Input | str | None = None, sample_weight: _Input | str | None = None,
             pos_weight: _Input | str | None = None, ignore_index: int | None = None,
             label_smoothing: float | None = None, axis: int | None = None,
             alpha: float | None = None, gamma: float | None = None,
             log_target: bool | None = None, reduction: str | None = None,
             chunk_rows: int | None = None, backend: _Backend | None = None,
             n_threads: int | None = None, progress: bool = False,
             metrics: str | Sequence[str] | None = None, z_loss: float | None = None,
             softcap: float | None = None) -> Any: ...
