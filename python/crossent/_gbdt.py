"""What the XGBoost and LightGBM adapters share: the objective callables, the
reusable gradient buffers, label conversion and the logloss metric."""
import importlib

import numpy as np

from . import _api, objectives


def require(library):
    """Import a boosting library, or say how to install it."""
    try:
        return importlib.import_module(library)
    except ImportError as error:
        raise ImportError(f"crossent.{library} needs the {library} package, which is not "
                          f"installed: pip install crossent[gbdt] (or pip install {library})"
                          ) from error


def class_labels(labels, n_classes):
    """Float class labels (as the libraries store them) as int32, checked to be
    whole numbers in [0, K)."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        return labels
    as_int = labels.astype(np.int32)
    if labels.size and not np.array_equal(as_int, labels):
        where = int(np.argmax(as_int != labels))
        raise ValueError(f"labels: expected whole class indices in [0, {n_classes}), got "
                         f"{labels[where].item()!r} at row {where}")
    return as_int


class Buffers:
    """A pair of (grad, hess) arrays reused from call to call: the libraries
    copy the gradient before the next round, so one pair serves every round.
    ``class_major``: the (n, K) arrays are transposes of (K, n) C-contiguous
    ones (LightGBM's layout, which it flattens without a copy)."""

    def __init__(self, class_major=False):
        self.class_major = class_major
        self._pair = None

    def get(self, shape, dtype):
        pair = self._pair
        if pair is None or pair[0].shape != shape or pair[0].dtype != dtype:
            if self.class_major and len(shape) == 2:
                pair = tuple(np.empty(shape[::-1], dtype).T for _ in range(2))
            else:
                pair = tuple(np.empty(shape, dtype) for _ in range(2))
            self._pair = pair
        return pair


class Objective:
    """The shared body of an adapter's objective: margins, labels and weights
    in, (grad, hess) out, through one crossent objective.

    kind: "logistic", "softmax" or "focal"; options: that function's keywords.
    """

    def __init__(self, kind, options, class_major=False, n_threads=None):
        self.kind = kind
        self.options = options
        self.n_threads = n_threads
        self._buffers = Buffers(class_major)

    def compute(self, margins, labels, weights, dtype):
        margins = np.asarray(margins)
        out = self._buffers.get(margins.shape, np.dtype(dtype))
        if margins.dtype != dtype:
            margins = margins.astype(dtype)
        weights = None if weights is None or np.size(weights) == 0 else weights
        common = dict(sample_weight=weights, out=out, n_threads=self.n_threads, **self.options)
        if self.kind == "softmax":
            if margins.ndim != 2:
                raise ValueError(f"margins: expected an (n, K) array of K >= 2 class scores, "
                                 f"got shape {margins.shape} (set num_class in the parameters)")
            labels = class_labels(labels, margins.shape[1])
            return objectives.softmax(margins, labels, **common)
        labels = np.asarray(labels)
        if labels.shape != margins.shape and labels.size == margins.size:
            labels = labels.reshape(margins.shape)
        if weights is not None and np.shape(weights) != margins.shape:
            common["sample_weight"] = np.reshape(weights, margins.shape)
        if self.kind == "focal":
            return objectives.focal(margins, labels, **common)
        return objectives.binary_logistic(margins, labels, **common)


def logloss_value(margins, labels, weights, n_threads=None):
    """The weighted mean log loss of raw margins: binary from (n,) margins,
    softmax cross-entropy from (n, K) ones."""
    margins = np.asarray(margins)
    weights = None if weights is None or np.size(weights) == 0 else weights
    if margins.ndim == 2 and margins.shape[1] > 1:
        labels = class_labels(labels, margins.shape[1])
        return float(_api.cross_entropy(margins, labels, sample_weight=weights,
                                        n_threads=n_threads))
    labels = np.asarray(labels, dtype=margins.dtype).reshape(margins.shape)
    if weights is not None:
        weights = np.asarray(weights).reshape(margins.shape)
    return float(_api.binary_cross_entropy_with_logits(margins, labels, sample_weight=weights,
                                                       n_threads=n_threads))
