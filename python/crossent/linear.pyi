"""Types of crossent.linear (the founding note's models)."""
from typing import Any, Literal

from ._api import _Backend, _FloatArray, _FloatScalar, _Input

LOGISTIC_LOSSES: tuple[str, ...]

def logistic(X: _Input, y: _Input, w: _Input, b: float = 0.0, *,
             loss: Literal["bce", "mse"] = "bce", sample_weight: _Input | None = None,
             backend: _Backend | None = None,
             n_threads: int | None = None) -> tuple[_FloatScalar, _FloatArray, _FloatScalar]: ...
def softmax(X: _Input, y: _Input, W: _Input, b: _Input | None = None, *,
            sample_weight: _Input | None = None, label_smoothing: float = 0.0,
            backend: _Backend | None = None,
            n_threads: int | None = None) -> tuple[_FloatScalar, _FloatArray, _FloatArray]: ...
