"""Mergeable loss partials: :func:`loss_partial` and :class:`LossPartial`.

The rule (docs/guarantees.md): a partial's weighted-loss sum is the EXACT sum
of the per-sample losses that ``reduction="none"`` returns (each already
multiplied by its weights), and its weight sum the exact sum of the
per-sample weights the mean divides by; both are rounded to float64 once, in
:meth:`LossPartial.result`.  Exact sums are integers (``_exactsum``), so
merging is associative and commutative, and the result does not depend on
how the samples were split into pieces nor on the order pieces are merged:
it is ``math.fsum`` of all the per-sample losses, whatever the split.

The one-shot loss functions fold per-block float64 sums in block order
instead (docs/kernels.md): their means agree with a partial's to within the
rounding of that fold, not bit for bit.
"""
import hashlib
import json
import math

import numpy as np

from . import _backends
from ._exactsum import ExactSum

_FORMAT = 1
_SCALAR_OPTIONS = ("axis", "ignore_index", "label_smoothing", "alpha", "gamma", "log_target",
                   "z_loss", "softcap")


def loss_partial(name, pred, target, *, backend=None, n_threads=None, **options):
    """The mergeable sums behind loss ``name`` over one piece of the samples.

    Parameters
    ----------
    name : str
        A loss function's name (``crossent._api.LOSSES``): ``"cross_entropy"``,
        ``"binary_cross_entropy_with_logits"``, ...
    pred, target :
        The piece's predictions and targets, as the loss function takes them.
    **options :
        The loss's own keywords (``weight``, ``sample_weight``, ``pos_weight``,
        ``ignore_index``, ``label_smoothing``, ``axis``, ``alpha``, ``gamma``,
        ``log_target``, ``z_loss``, ``softcap``), validated as the loss
        function does; not ``reduction``: a partial gives every reduction.
    backend, n_threads :
        As every crossent function.

    Returns
    -------
    LossPartial
        ``p.result("mean")`` is the loss; ``p + q`` (or ``p.merge(q)``) is the
        partial of both pieces.  The merged result is the same bits whatever
        the split and the merge order: the correctly rounded sum of every
        per-sample loss (as ``math.fsum``) over the correctly rounded sum of
        every per-sample weight.

    Example
    -------
    >>> p = crossent.loss_partial("cross_entropy", logits[:500], labels[:500])
    >>> q = crossent.loss_partial("cross_entropy", logits[500:], labels[500:])
    >>> (p + q).result("mean")    # the loss of all the rows
    """
    return partial_and_ranks(name, pred, target, backend, n_threads, options, None)[0]


def partial_and_ranks(name, pred, target, backend, n_threads, options, ranks_for):
    """(:func:`loss_partial`'s partial, each sample's target rank or None,
    the loss's plan).  ranks_for (None: no ranks) names what wants the ranks,
    for the error: they come from the loss's own kernel call, its evaluation
    kernel (``*_eval``, the same per-sample losses), which a loss with
    class-index targets has; ValueError for the others."""
    from . import _api
    if name not in _api.LOSSES:
        raise ValueError(f"name: expected one of {', '.join(_api.LOSSES)}, got {name!r}")
    if "reduction" in options:
        raise TypeError("reduction: a partial gives every reduction; pass it to .result()")
    module = _backends.module(backend)
    plan = _api._PLANNERS[name](module, pred, target, reduction="none", **options)
    n_threads = _backends.resolve_n_threads(n_threads)
    losses = np.empty(plan.lead_shape, plan.dtype)
    ranks = None
    if ranks_for is None:
        _api._sums(plan, module, n_threads, losses, None)
    else:
        # The ranks are the predictions' own: with z_loss or softcap, the
        # plain plan's evaluation kernel gives them, and the loss's kernel the losses.
        rank_plan = plan
        if plan.kernel.endswith("_ext"):
            plain = {k: v for k, v in options.items() if k not in ("z_loss", "softcap")}
            rank_plan = _api._PLANNERS[name](module, pred, target, reduction="none", **plain)
        kernel = getattr(module, rank_plan.kernel + "_eval", None)
        if kernel is None:
            raise ValueError(f"{ranks_for} need class-index targets (got probabilities of "
                             f"shape {np.shape(target)})")
        ranks = np.empty(plan.lead_shape, plan.dtype)
        rank_losses = losses
        if rank_plan is not plan:
            _api._sums(plan, module, n_threads, losses, None)
            rank_losses = np.empty_like(losses)
        if plan.pred.size:
            folded = _api.fold(rank_plan.lead_shape, rank_plan.inputs + [rank_losses, ranks],
                               inputs_ok_to_copy=range(len(rank_plan.inputs)))
            kernel(*rank_plan.make_args(folded[:-2]), *folded[-2:], n_threads, 0.0)
    denominators, samples = _denominators(name, plan, options)
    partial = LossPartial(name, plan.dtype.name, _fingerprint(name, options, plan.pred.ndim),
                          ExactSum.of(losses), denominators, samples)
    return partial, ranks, plan


class LossPartial:
    """Exact, mergeable sums of one loss over some of the samples.

    Attributes: ``loss`` (the function's name), ``dtype`` (the computation
    dtype), ``options`` (the scalar options and a digest of the class
    weights; partials merge only when these agree), ``loss_sum`` and
    ``denominators`` (``ExactSum``; the denominator of each mean the loss
    has, keyed "mean", and "batchmean" for kl_div) and ``samples`` (the count
    of samples: rows of a multiclass loss, elements of an elementwise one,
    slices along the class axis for kl_div).
    """
    __slots__ = ("loss", "dtype", "options", "loss_sum", "denominators", "samples")

    def __init__(self, loss, dtype, options, loss_sum, denominators, samples):
        self.loss, self.dtype, self.options = loss, str(dtype), dict(options)
        self.loss_sum, self.denominators, self.samples = loss_sum, dict(denominators), int(samples)

    # ---------------------------------------------------------------- merging

    def merge(self, other):
        """The partial of both pieces (a new object; neither is changed)."""
        if not isinstance(other, LossPartial):
            raise TypeError(f"other: expected a LossPartial, got {type(other).__name__}")
        mine, theirs = self._key(), other._key()
        if mine != theirs:
            raise ValueError(f"other: partials of different computations cannot merge: "
                             f"{_describe(mine)} vs {_describe(theirs)}")
        return LossPartial(self.loss, self.dtype, self.options, self.loss_sum + other.loss_sum,
                           {k: v + other.denominators[k] for k, v in self.denominators.items()},
                           self.samples + other.samples)

    __add__ = merge

    def __radd__(self, other):
        # sum(partials) starts from 0
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented

    def _key(self):
        return (self.loss, self.dtype, tuple(sorted(self.options.items())))

    def __eq__(self, other):
        return isinstance(other, LossPartial) and self._state() == other._state()

    def __hash__(self):
        return hash(self._key())

    def _state(self):
        return (self._key(), self.loss_sum.state(), self.samples,
                tuple((k, v.state()) for k, v in sorted(self.denominators.items())))

    # ---------------------------------------------------------------- results

    def result(self, reduction=None):
        """The loss: ``"sum"``, ``"mean"`` or (kl_div) ``"batchmean"``; None
        gives the loss function's default.  A numpy scalar of the
        computation dtype; a zero denominator gives nan (as the loss functions)."""
        from . import _api
        means = tuple(self.denominators)
        reduction = means[0] if reduction is None else reduction
        if reduction == "sum":
            return np.dtype(self.dtype).type(self.loss_sum.value())
        if reduction not in means:
            expected = " or ".join(repr(r) for r in means + ("sum",))
            raise ValueError(f"reduction: expected {expected} for {self.loss}, got {reduction!r}")
        total, denominator = self.loss_sum.value(), self.denominators[reduction].value()
        return np.dtype(self.dtype).type(_api._mean(total, denominator))

    def sums(self, mean=None):
        """(loss sum, the denominator of ``mean``) as float64, each correctly rounded."""
        mean = next(iter(self.denominators)) if mean is None else mean
        return self.loss_sum.value(), self.denominators[mean].value()

    # ---------------------------------------------------------------- storage

    def to_json(self):
        """A JSON string holding the exact sums (``from_json`` reads it back)."""
        return json.dumps({"crossent_partial": _FORMAT, "loss": self.loss, "dtype": self.dtype,
                           "options": self.options, "samples": self.samples,
                           "loss_sum": _sum_to_json(self.loss_sum),
                           "denominators": {k: _sum_to_json(v)
                                            for k, v in self.denominators.items()}})

    @classmethod
    def from_json(cls, text):
        try:
            data = json.loads(text)
            if data.get("crossent_partial") != _FORMAT:
                raise ValueError(f"not a crossent partial of format {_FORMAT}")
            return cls(data["loss"], data["dtype"], data["options"],
                       _sum_from_json(data["loss_sum"]),
                       {k: _sum_from_json(v) for k, v in data["denominators"].items()},
                       data["samples"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"text: expected the JSON of LossPartial.to_json(), got "
                             f"{str(text)[:60]!r} ({exc})") from None

    def __getstate__(self):
        return self.to_json()

    def __setstate__(self, state):
        other = LossPartial.from_json(state)
        for field in self.__slots__:
            setattr(self, field, getattr(other, field))

    def __repr__(self):
        return (f"LossPartial({self.loss!r}, samples={self.samples}, "
                f"loss_sum={self.loss_sum.value()!r}, "
                + ", ".join(f"{k}_denominator={v.value()!r}" for k, v in self.denominators.items())
                + ")")


def merge_partials(partials):
    """The merge of an iterable of partials (any order gives the same bits)."""
    partials = list(partials)
    if not partials:
        raise ValueError("partials: expected at least one LossPartial, got none")
    total = partials[0]
    for partial in partials[1:]:
        total = total.merge(partial)
    return total


def _sum_to_json(total):
    """The exact sum as "MpE" (hexadecimal M, decimal E: units = M * 2**E,
    M odd), short where the int is mostly trailing zeros."""
    units = total.units
    shift = (units & -units).bit_length() - 1 if units else 0
    return {"units": f"{units >> shift:x}p{shift}", "nan": total.nan, "pos_inf": total.pos_inf,
            "neg_inf": total.neg_inf}


def _sum_from_json(data):
    mantissa, shift = data["units"].split("p")
    return ExactSum(int(mantissa, 16) << int(shift), bool(data["nan"]), bool(data["pos_inf"]),
                    bool(data["neg_inf"]))


def _describe(key):
    loss, dtype, options = key
    return f"{loss} ({dtype}, {dict(options)})"


def _fingerprint(name, options, ndim):
    """What must agree for two partials to merge: the scalar options that
    differ from the loss's defaults (the axis made non-negative), and a
    digest of the class weights of a multiclass loss."""
    import inspect

    from . import _api
    defaults = inspect.signature(getattr(_api, name)).parameters
    key = {}
    for k in _SCALAR_OPTIONS:
        value = options.get(k)
        if k == "axis" and value is not None and ndim:
            value = value % ndim if value % ndim != ndim - 1 else None
        if value is not None and (k not in defaults or value != defaults[k].default):
            key[k] = _plain(value)
    weight = options.get("weight")
    if weight is not None and _api.FUNCTIONS[name].over == "rows":
        from ._validate import as_array
        w = np.ascontiguousarray(as_array(weight, "weight"), dtype=np.float64)
        key["weight_sha256"] = hashlib.sha256(w.tobytes()).hexdigest()[:16]
    return key


def _plain(value):
    """A JSON-able scalar (numpy scalars as Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------- denominators
#
# Each mirrors the weights its plan's denominator sums (_validate.py,
# _api._plan_kl_div), per sample, so that their exact sum replaces the
# block-ordered one.

def _denominators(name, plan, options):
    """({mean name: ExactSum of its denominator}, sample count)."""
    kernel = plan.kernel.removesuffix("_ext")   # z_loss and softcap leave the weights alone
    samples = math.prod(plan.lead_shape)
    if kernel.endswith("_index"):
        return {"mean": _index_weights(plan)}, samples
    if kernel.endswith("_soft"):
        return {"mean": _sum_or_count(plan.inputs[2], samples)}, samples
    if kernel == "kl_div":
        return _kl_div_denominators(plan, options)
    # the elementwise losses: inputs [x, y, w, (pos_weight,) s]
    s, w = plan.inputs[-1], plan.inputs[2]
    weights = [v for v in ((s, w) if kernel == "mse" else (s,)) if v is not None]
    product = None if not weights else weights[0] if len(weights) == 1 else weights[0] * weights[1]
    return {"mean": _sum_or_count(product, samples)}, samples


def _sum_or_count(weights, count):
    return ExactSum().add_count(count) if weights is None else ExactSum.of(weights)


def _index_weights(plan):
    """Σ class weight[t_i] · s_i (float64 products, as the kernels' weight
    sum) over the rows not ignored."""
    t, s = plan.inputs[1], plan.inputs[2]
    args = plan.make_args(plan.inputs)
    class_weight, ignore_index = args[2], args[4]
    valid = t != ignore_index
    if class_weight is None and s is None:
        return ExactSum().add_count(int(np.count_nonzero(valid)))
    if class_weight is None:
        w = valid.astype(np.float64)
    else:
        w = np.where(valid, class_weight[np.where(valid, t, 0)], 0.0)
    if s is not None:
        w = w * s
    return ExactSum.of(w)


def _kl_div_denominators(plan, options):
    """"mean" divides by the elements' weights (C·Σ s_i), "batchmean" by the
    samples' (Σ s_i); the plan holds s broadcast along the class axis."""
    from ._validate import as_array, check_axis
    x, s = plan.pred, plan.inputs[3]
    axis = check_axis(options.get("axis", -1), x.ndim, "log_q")
    sample_shape = x.shape[:axis] + x.shape[axis + 1:]
    samples = math.prod(sample_shape)
    if s is None:
        return {"batchmean": ExactSum().add_count(samples),
                "mean": ExactSum().add_count(x.size)}, samples
    per_sample = (np.take(s, 0, axis=axis) if x.shape[axis] else
                  np.broadcast_to(as_array(options["sample_weight"], "sample_weight").astype(x.dtype),
                                  sample_shape))
    batch = ExactSum.of(per_sample)
    if not x.shape[axis]:   # no elements: the mean's denominator is an empty sum
        return {"batchmean": batch, "mean": ExactSum()}, samples
    return {"batchmean": batch, "mean": ExactSum(batch.units * x.shape[axis], batch.nan,
                                                  batch.pos_inf, batch.neg_inf)}, samples
