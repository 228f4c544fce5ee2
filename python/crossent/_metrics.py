"""The metrics of :func:`crossent.evaluate` (``metrics=``, ``crossent eval
--metrics``), computed from the same pass over the data as the loss.

Multiclass losses with class-index targets (cross_entropy,
categorical_cross_entropy, nll_loss) run their ``*_eval`` kernel, which
writes each row's target rank (docs/kernels.md, "Evaluation"); a row is
top-k correct when its rank is below k, so ``accuracy`` (= ``top1``) counts
``numpy.argmax(row) == target`` with ties to the lowest index, for every k
(scikit-learn's ``top_k_accuracy_score`` puts a tie at a higher index
first, so on tied scores its top-k, k > 1, can differ), and a row holding a
NaN is never correct.  The binary losses count a prediction
positive when its probability is above 0.5 (a logit above 0) and a target
positive when it is above 0.5; ``brier`` is the weighted mean of
``(p - y)**2``.  ``perplexity`` is ``exp`` of the mean loss.

Weights follow the loss: a row's weight is ``weight[t] * sample_weight``
(multiclass; ignored rows weigh 0), an element's ``weight *
sample_weight`` (binary), and each metric is the weighted mean
``Σ weight·value / Σ weight``.  Every sum is exact and independent of the
chunking: counts are integers, weighted sums are float64 sums over the
kernels' fixed blocks added in block order, as the loss's own.
"""
import math
import re

import numpy as np

from . import _api
from ._blocking import BLOCK_ELEMS, BLOCK_ROWS
from ._reference import ordered_sum
from ._validate import as_array, class_weight as _class_weight

RANKED_LOSSES = ("cross_entropy", "categorical_cross_entropy", "nll_loss")
BINARY_LOSSES = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
# A float32 rank is an exact integer up to here.
_FLOAT32_EXACT = 2**24


def parse_metrics(metrics, loss):
    """``metrics`` (None, "accuracy,top5", or a sequence of names) as a
    tuple of names, each checked against what ``loss`` offers."""
    if metrics is None:
        return ()
    if isinstance(metrics, str):
        names = [m.strip() for m in metrics.split(",") if m.strip()]
    else:
        try:
            names = list(metrics)
        except TypeError:
            raise TypeError(f"metrics: expected a sequence of metric names, got "
                            f"{type(metrics).__name__}") from None
    offered = _offered(loss)
    parsed = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"metrics: expected metric names (str), got {type(name).__name__}")
        if not _matches(name, offered):
            raise ValueError(f"metrics: {name!r} is not a metric of {loss} (it offers: "
                             f"{', '.join(offered) or 'none'})")
        if name not in parsed:
            parsed.append(name)
    return tuple(parsed)


def _offered(loss):
    if loss in RANKED_LOSSES:
        return ("accuracy", "topK", "perplexity")
    if loss in BINARY_LOSSES:
        return ("accuracy", "brier", "perplexity")
    return ()


def _matches(name, offered):
    if name in offered:
        return True
    match = re.fullmatch(r"top([1-9][0-9]*)", name)
    return "topK" in offered and match is not None


def top_k(name):
    """k of a ranked metric ("accuracy" is top1), or None."""
    if name == "accuracy":
        return 1
    match = re.fullmatch(r"top([1-9][0-9]*)", name)
    return int(match.group(1)) if match else None


class MetricSums:
    """The running sums behind the metrics, fed a chunk at a time."""

    def __init__(self, loss, names):
        self.loss, self.names = loss, names
        self.ks = sorted({k for k in map(top_k, names) if k is not None}) if (
            loss in RANKED_LOSSES) else []
        self.binary = loss in BINARY_LOSSES and any(n in ("accuracy", "brier") for n in names)
        self.hits = {}          # k (or "binary") -> int count or float64 block-ordered sum
        self.brier = 0.0
        self.weight = 0         # Σ weights behind the binary metrics
        self.rank_weight = 0    # Σ weights of the rows not ignored, behind the ranked ones
        self.n_classes = None

    @property
    def wants_ranks(self):
        return bool(self.ks)

    def add_ranks(self, ranks, target, class_weight, sample_weight, ignore_index):
        """One chunk's ranks (lead shape, NaN where ignored) with its targets,
        class weights and the caller's sample weights (in float64, as given:
        not rounded to float32 predictions' dtype, as scikit-learn takes them)."""
        kept = target != ignore_index
        weights = None
        if class_weight is not None or sample_weight is not None:
            weights = np.where(kept, 1.0, 0.0) if class_weight is None else np.where(
                kept, class_weight[np.where(kept, target, 0)], 0.0)
            if sample_weight is not None:
                weights = weights * _float64(sample_weight, ranks.shape)
            self.rank_weight = ordered_sum(weights, BLOCK_ROWS, self.rank_weight)
        else:
            self.rank_weight += int(np.count_nonzero(kept))
        for k in self.ks:
            correct = ranks < min(k, self.n_classes)   # NaN (ignored) compares False
            if weights is None:
                self.hits[k] = self.hits.get(k, 0) + int(np.count_nonzero(correct))
            else:
                self.hits[k] = ordered_sum(np.where(correct, weights, 0.0), BLOCK_ROWS,
                                           self.hits.get(k, 0.0))

    def add_binary(self, pred, target, weight, sample_weight, from_logits, backend, n_threads):
        """One chunk of a binary loss: hits at 0.5 and squared errors."""
        shape = np.broadcast_shapes(pred.shape, target.shape)
        x = np.broadcast_to(pred, shape)
        y = np.broadcast_to(target, shape).astype(x.dtype, copy=False)
        threshold = 0 if from_logits else 0.5
        hit = (x > threshold) == (y > 0.5)
        weights = None
        for factor in (weight, sample_weight):
            if factor is not None:
                factor = _float64(factor, shape)
                weights = factor if weights is None else weights * factor
        if "brier" in self.names:
            p = _api.sigmoid(np.ascontiguousarray(x), backend=backend,
                             n_threads=n_threads) if from_logits else x
            error = np.square(p.astype(np.float64) - y.astype(np.float64))
            if weights is not None:
                error = error * weights
            self.brier = ordered_sum(error, BLOCK_ELEMS, self.brier)
        if weights is None:
            self.hits["binary"] = self.hits.get("binary", 0) + int(np.count_nonzero(hit))
            self.weight += hit.size
        else:
            self.hits["binary"] = ordered_sum(np.where(hit, weights, 0.0), BLOCK_ELEMS,
                                              self.hits.get("binary", 0.0))
            self.weight = ordered_sum(weights, BLOCK_ELEMS, self.weight)

    def finish(self, loss_sums):
        """{name: float} in the order asked, from these sums and the loss's."""
        mean_loss = _api._mean(loss_sums.loss_sum, loss_sums.denominator)
        values = {}
        for name in self.names:
            if name == "perplexity":
                values[name] = math.exp(min(mean_loss, 710.0)) if mean_loss == mean_loss else math.nan
            elif name == "brier":
                values[name] = _api._mean(self.brier, self.weight)
            elif self.loss in BINARY_LOSSES:
                values[name] = _api._mean(self.hits.get("binary", 0), self.weight)
            else:
                values[name] = _api._mean(self.hits.get(top_k(name), 0), self.rank_weight)
        return values


def _float64(weights, shape):
    """The caller's weights (an array-like, a tensor) in float64, broadcast."""
    return np.broadcast_to(as_array(weights, "weight").astype(np.float64), shape)


def chunk_partial(loss, pred, target, metric_sums, *, backend, n_threads, **kwargs):
    """:func:`crossent.loss_partial` of one chunk, feeding ``metric_sums``:
    the target ranks come from the partial's own kernel call (the loss's
    evaluation kernel, the same per-sample losses), so the chunk is read
    once."""
    from ._partial import partial_and_ranks
    ranked = ", ".join(n for n in metric_sums.names if top_k(n))
    partial, ranks, plan = partial_and_ranks(loss, pred, target, backend, n_threads, kwargs,
                                             f"metrics: {ranked}" if metric_sums.wants_ranks
                                             else None)
    if ranks is not None:
        n_classes = plan.pred.shape[plan.axis]
        metric_sums.n_classes = n_classes
        if plan.dtype == np.float32 and n_classes > _FLOAT32_EXACT:
            raise ValueError(f"metrics: target ranks among {n_classes} classes need "
                             f"float64 predictions (float32 counts exactly to 2**24)")
        metric_sums.add_ranks(ranks, plan.inputs[1],
                              _class_weight(kwargs.get("weight"), n_classes),
                              kwargs.get("sample_weight"), kwargs.get("ignore_index", -100))
    if metric_sums.binary:
        metric_sums.add_binary(plan.inputs[0], plan.inputs[1], kwargs.get("weight"),
                               kwargs.get("sample_weight"),
                               loss == "binary_cross_entropy_with_logits", backend, n_threads)
    return partial
