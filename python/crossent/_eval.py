"""``crossent eval`` and :func:`crossent.evaluate`: the loss of stored
predictions and targets, in bounded memory whatever the file size.

How the answer stays the same whatever the chunks: each chunk gives a
:class:`~crossent.LossPartial` (_partial.py), the exact sums of its
per-sample losses and weights, and the partials merge exactly; the loss is
the correctly rounded sum of every per-sample loss over that of every
weight (docs/guarantees.md), for any chunk size, thread count and backend
of equal per-sample losses, and equal to what ``crossent.dask.evaluate``
gives.  The one-shot ``crossent.<loss>(...)`` folds block sums in order
instead: the two agree to within that fold's rounding.  Validation, the
canonical layout and the reduction are the facade's own, run on each chunk.
The metrics (``_metrics``) come from the index losses' loss-only
``*_eval`` kernels, which give each row's target rank.

The files are read by ``_readers`` (bounded memory: see there); the command
line is ``_cli_eval``.
"""
import math
import os
import re
import sys
import time
from contextlib import ExitStack
from typing import NamedTuple

import numpy as np

from . import _backends
from ._metrics import MetricSums, chunk_partial, parse_metrics
from ._readers import InMemory, open_operand

# Predictions read per chunk when ``chunk_rows`` is not given: large enough
# that per-chunk overhead is noise (each chunk starts the kernels' threads
# anew, which on a busy machine costs more than the validation or the mmap:
# 32 MiB chunks run ~20% slower than one call there), small enough
# that a chunk and its temporaries stay far below the memory budget.
DEFAULT_CHUNK_BYTES = 64 * 2**20

# Keyword -> command-line option, for the messages of options a loss does not take.
_OPTIONS = {"axis": "--axis", "weight": "--weight", "sample_weight": "--sample-weight",
            "pos_weight": "--pos-weight", "ignore_index": "--ignore-index",
            "label_smoothing": "--label-smoothing", "alpha": "--alpha", "gamma": "--gamma",
            "log_target": "--log-target", "z_loss": "--z-loss", "softcap": "--softcap"}
_ARRAY_KEYWORDS = ("weight", "sample_weight", "pos_weight")


class EvalReport(NamedTuple):
    """What :func:`evaluate` computed, for ``crossent eval --json``."""
    loss: object          # numpy scalar of the computation dtype
    reduction: str
    samples: int          # samples seen (rows of a multiclass loss, elements of an elementwise one)
    weight_sum: float     # the mean's denominator: Σ weights of the samples not ignored
    dtype: str
    backend: str
    rows: int             # length of the axis the chunks were cut along
    chunks: int
    seconds: float
    metrics: dict = {}    # name -> value, in the order asked (metrics=)
    bytes_read: int = 0   # bytes of the operands read (file sizes, less headers)


def loss_names():
    """The losses of SPEC §3 (those :func:`evaluate` takes)."""
    from . import _api
    return _api.LOSSES


# ================================================================ chunking

class _Cut(NamedTuple):
    """Where chunks are cut: along ``axis`` of the predictions, ``length``
    long, in multiples of ``step`` (whole kernel blocks).  ``axis`` None: one
    chunk holding everything."""
    axis: object
    length: int
    step: int
    pred_bytes_per_index: int


def _plan_cut(pred_shape, pred_itemsize, class_axis, blocks="rows"):
    """``class_axis``: that of a multiclass loss (normalised), None for an
    elementwise one; ``blocks``: what the loss's kernel runs over ("rows" or
    "elements": kl_div's elementwise kernel, whose per-sample weights still
    sum by rows)."""
    from ._blocking import BLOCK_ELEMS, BLOCK_ROWS
    ndim = len(pred_shape)
    if class_axis is not None and blocks == "elements" and class_axis == 0:
        # An elementwise kernel's blocks run in C order: a chunk along axis 1
        # is no run of them.
        return _Cut(None, 1, 1, 0)
    if class_axis is not None:
        cut = 1 if class_axis == 0 else 0
        rows = math.prod(n for i, n in enumerate(pred_shape) if i > cut and i != class_axis)
        step = _whole_blocks(BLOCK_ROWS, rows)
        if blocks == "elements":
            step = math.lcm(step, _whole_blocks(BLOCK_ELEMS, math.prod(pred_shape[1:])))
    else:
        cut, step = 0, _whole_blocks(BLOCK_ELEMS, math.prod(pred_shape[1:]))
    if cut >= ndim:
        return _Cut(None, 1, 1, 0)
    return _Cut(cut, pred_shape[cut], step, math.prod(pred_shape[cut + 1:]) * pred_itemsize)


def _whole_blocks(block, units):
    """The fewest indices along the cut, ``units`` units each, that make
    whole blocks of ``block`` units."""
    return block // math.gcd(block, units) if units else 1


def _chunk_length(cut, chunk_rows, in_memory):
    """Rows per chunk.  Arrays already in memory need no chunks (one call is
    faster: every chunk starts the kernels' threads anew), unless asked."""
    if chunk_rows is None and in_memory:
        chunk_rows = max(cut.length, 1)
    elif chunk_rows is None:
        chunk_rows = DEFAULT_CHUNK_BYTES // max(cut.pred_bytes_per_index, 1)
    else:
        chunk_rows = _positive_int(chunk_rows, "chunk_rows")
    if chunk_rows >= cut.length:
        return max(cut.length, 1)   # one chunk: no later chunk to align with
    # Round down to whole blocks (but never below one block's worth).
    return max(cut.step, chunk_rows - chunk_rows % cut.step)


def _positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__}")
    value = value.__index__()
    if value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return value


def _operand_axis(source, frame_shape, cut_axis, pred_shape):
    """The axis of ``source`` that lines up with the cut (broadcasting aligns
    shapes on the right), or None when it broadcasts along the cut."""
    d = cut_axis - (len(frame_shape) - len(source.shape))
    if d < 0 or d >= len(source.shape):
        return None
    if source.shape[d] == frame_shape[cut_axis]:
        return d
    if source.shape[d] == 1:
        return None
    raise ValueError(f"{source.label}: shape {source.shape} does not match the predictions' "
                     f"shape {pred_shape}: its axis {d} has length {source.shape[d]}, "
                     f"expected {frame_shape[cut_axis]}")


def _operand_axes(sources, class_axis, cut):
    """For each operand: the axis it is cut along, or None (taken whole)."""
    pred_shape = sources["pred"].shape
    multiclass = class_axis is not None
    if cut.axis is None:
        return {name: None for name in sources}
    if multiclass:
        sample_shape = pred_shape[:class_axis] + pred_shape[class_axis + 1:]
    axes = {}
    for name, source in sources.items():
        if multiclass and name == "weight":
            axes[name] = None                                   # one weight per class
        elif multiclass and (name == "sample_weight" or name == "target"
                             and len(source.shape) != len(pred_shape)):
            axes[name] = _operand_axis(source, sample_shape, 0, pred_shape)
        else:
            axes[name] = _operand_axis(source, pred_shape, cut.axis, pred_shape)
    return axes


# ================================================================ evaluate

def evaluate(loss, pred, target, *, weight=None, sample_weight=None, pos_weight=None,
             ignore_index=None, label_smoothing=None, axis=None, alpha=None, gamma=None,
             log_target=None, reduction=None, chunk_rows=None, backend=None, n_threads=None,
             progress=False, metrics=None, z_loss=None, softcap=None):
    """The loss of predictions and targets that may not fit in memory.

    The correctly rounded sum of the per-sample losses of
    ``crossent.<loss>(pred, target, ..., reduction="none")`` (as
    ``math.fsum``), over that of the per-sample weights for a mean: the same
    bits for any ``chunk_rows`` and ``n_threads``, the same as
    ``crossent.loss_partial`` and ``crossent.dask.evaluate`` on any split,
    and within rounding of the one-shot ``crossent.<loss>(...)`` (which folds
    block sums in order).  Computed a chunk at a time so that memory stays
    bounded by the chunk size.

    Parameters
    ----------
    loss : str
        A loss function's name: ``"cross_entropy"``, ``"categorical_cross_entropy"``,
        ``"nll_loss"``, ``"binary_cross_entropy"``,
        ``"binary_cross_entropy_with_logits"``, ``"mse_loss"``, ``"focal_loss"``
        or ``"kl_div"``.
    pred, target, weight, sample_weight, pos_weight :
        Arrays, or paths of stored arrays: ``"x.npy"``, ``"x.npz:key"`` (or
        ``"x.npz"`` holding a single array). ``.npy`` files and uncompressed
        ``.npz`` members (``np.savez``) are memory-mapped a chunk at a time;
        compressed members (``np.savez_compressed``) are decompressed as a
        stream, a chunk at a time.
    ignore_index, label_smoothing, axis, alpha, gamma, log_target, z_loss, softcap :
        As the loss function; None leaves the function's default. A keyword
        the loss does not take raises ``TypeError``.
    reduction : {"mean", "sum"}, or "batchmean" for ``kl_div``
        None: the loss function's default ("batchmean" for ``kl_div``,
        "mean" for the others).
    chunk_rows : int, optional
        Rows per chunk along the first non-class axis; rounded down to whole
        kernel blocks (64 rows, or 4096 elements for elementwise losses).
        None: about 64 MiB of predictions per chunk when any operand is a
        file, one chunk when all are arrays already in memory.
    backend, n_threads :
        As every crossent function.
    progress : bool
        Show a progress bar on stderr (tqdm when installed).
    metrics : str or sequence of str, optional
        Metrics from the same pass over the data, e.g.
        ``("accuracy", "top5", "perplexity")`` or ``"accuracy,top5"``.
        Multiclass losses with class-index targets: ``"accuracy"``
        (``numpy.argmax`` equals the target, ties to the lowest index),
        ``"topK"`` for any K (``"top5"``: the target among the 5 largest
        predictions), ``"perplexity"`` (exp of the mean loss). Binary losses:
        ``"accuracy"`` (a probability above 0.5, or a logit above 0, counts
        as positive, as does a target above 0.5), ``"brier"`` (the mean of
        ``(p - y)**2``), ``"perplexity"``. Weighted means with the loss's
        weights (class weight of the target times the sample weight; ignored
        rows excluded); a row holding a NaN is never correct. Each is exact
        and independent of ``chunk_rows``.

    Returns
    -------
    numpy scalar of the computation dtype; with ``metrics``, a dict of the
    loss (key ``"loss"``) and each metric (Python floats).

    A class index out of range raises ``ValueError`` naming its position in
    the whole target; files that cannot be read raise ``OSError`` or
    ``ValueError`` with one line saying which and why.
    """
    report = evaluate_report(loss, pred, target, weight=weight, sample_weight=sample_weight,
                           pos_weight=pos_weight, ignore_index=ignore_index,
                           label_smoothing=label_smoothing, axis=axis, alpha=alpha, gamma=gamma,
                           log_target=log_target, z_loss=z_loss, softcap=softcap,
                           reduction=reduction,
                           chunk_rows=chunk_rows, backend=backend, n_threads=n_threads,
                           progress=progress, metrics=metrics)
    if metrics is None:
        return report.loss
    return {"loss": report.loss, **report.metrics}


def _check_loss_keywords(loss, given):
    import inspect

    from . import _api
    names = loss_names()
    if loss not in names:
        raise ValueError(f"loss: expected one of {', '.join(names)}, got {loss!r}")
    accepted = inspect.signature(getattr(_api, loss)).parameters
    for keyword in given:
        if keyword not in _OPTIONS:
            raise TypeError(f"{keyword}: not an option of a loss (the options: "
                            f"{', '.join(_OPTIONS)})")
        if keyword not in accepted:
            takes = ", ".join(k for k in _OPTIONS if k in accepted) or "none of them"
            raise TypeError(f"{keyword} ({_OPTIONS[keyword]}) does not apply to {loss} "
                            f"(it takes: {takes})")


def evaluate_report(loss, pred, target, *, reduction=None, chunk_rows=None, backend=None,
                    n_threads=None, progress=False, metrics=None, **options):
    """:func:`evaluate`, returning an :class:`EvalReport` (loss, metrics, counts, timing)."""
    from . import _api, _validate
    given = {k: v for k, v in options.items() if v is not None}
    _check_loss_keywords(loss, given)
    metric_sums = MetricSums(loss, parse_metrics(metrics, loss))
    means = _means(loss)
    reduction = means[0] if reduction is None else reduction
    if reduction not in means + ("sum",):
        expected = " or ".join(repr(r) for r in means + ("sum",))
        raise ValueError(f"reduction: expected {expected} for {loss} (evaluate returns no "
                         f"per-sample losses), got {reduction!r}")
    mean = reduction if reduction != "sum" else means[0]
    _backends.module(backend)   # a bad name fails before any file is opened
    backend_name = backend or _backends.get_backend()
    n_threads = _backends.resolve_n_threads(n_threads)
    multiclass = _api.FUNCTIONS[loss].over == "rows"
    ignore_index = _validate.check_ignore_index(given.get("ignore_index", -100))
    with ExitStack() as stack:
        sources = {"pred": open_operand(pred, _label(pred, "pred"), stack),
                   "target": open_operand(target, _label(target, "target"), stack)}
        for name in _ARRAY_KEYWORDS:
            if name in given:
                sources[name] = open_operand(given.pop(name), _label(options[name], name), stack)
        pred_shape = sources["pred"].shape
        # The facade's own check, early, so that a bad axis never reaches the label check.
        class_axis = (_validate.check_axis(given.get("axis", -1), len(pred_shape),
                                           sources["pred"].label) if multiclass else None)
        cut = _plan_cut(pred_shape, sources["pred"].dtype.itemsize, class_axis,
                        _api.FUNCTIONS[loss].blocks)
        axes = _operand_axes(sources, class_axis, cut)
        length = _chunk_length(cut, chunk_rows, all(isinstance(source, InMemory)
                                                    for source in sources.values()))
        check_labels = multiclass and sources["target"].dtype.kind in "iu"
        bar = stack.enter_context(_progress_bar(cut.length if cut.axis is not None else 1, progress))
        started = time.perf_counter()
        sums, samples, chunks = _run_chunks(loss, mean, backend_name, n_threads, sources, axes,
                                            cut, length, given, class_axis, check_labels,
                                            ignore_index, bar, metric_sums)
        seconds = time.perf_counter() - started
    value = _api.finish_reduction(sums, reduction)
    rows = cut.length if cut.axis is not None else samples
    bytes_read = sum(math.prod(s.shape) * s.dtype.itemsize for s in sources.values())
    return EvalReport(value, reduction, samples, sums.denominator, str(sums.dtype), sums.backend,
                      rows, chunks, seconds, metric_sums.finish(sums), bytes_read)


def _means(loss):
    """The mean reductions ``loss`` takes, its default first."""
    default = _signature_keywords(loss)["reduction"].default
    return (default, "mean") if default != "mean" else ("mean",)


def _signature_keywords(loss):
    import inspect

    from . import _api
    return inspect.signature(getattr(_api, loss)).parameters


def _label(value, name):
    """How messages name an operand: as on the command line for files
    (PRED, TARGET, --weight, ...), by its keyword for arrays."""
    if isinstance(value, (str, os.PathLike)):
        return _OPTIONS.get(name, name.upper())
    return name


def _run_chunks(loss, mean, backend, n_threads, sources, axes, cut, length, scalars, class_axis,
                check_labels, ignore_index, bar, metric_sums):
    """Feed the chunks through the facade, merging their exact partials
    (_partial.py) and feeding ``metric_sums``; returns (the merged LossSums,
    samples, chunks).  ``class_axis`` is None for an elementwise loss;
    ``check_labels``: the target holds class indices, checked here first."""
    from . import _api
    total, samples, chunks = None, 0, 0
    bounds = [(None, None)] if cut.axis is None else [
        (start, min(start + length, cut.length)) for start in range(0, max(cut.length, 1), length)]
    for start, stop in bounds:
        views = {name: (source.whole() if axes[name] is None or start is None
                        else source.take(axes[name], start, stop))
                 for name, source in sources.items()}
        if check_labels:
            _check_labels(views["target"], views["pred"].shape, class_axis, ignore_index,
                          start or 0, sources["target"].label, backend)
        kwargs = {**scalars, **{k: v for k, v in views.items() if k not in ("pred", "target")}}
        try:
            partial = chunk_partial(loss, views["pred"], views["target"], metric_sums,
                                    backend=backend, n_threads=n_threads, **kwargs)
        except (ValueError, TypeError) as exc:
            raise type(exc)(_in_context(str(exc), sources, cut, start, stop)) from None
        total = partial if total is None else total.merge(partial)
        shape = views["pred"].shape
        samples += math.prod(n for i, n in enumerate(shape) if i != class_axis)
        chunks += 1
        del views, kwargs   # unmap this chunk before mapping the next
        bar.update((stop - start) if start is not None else 1)
    sums = _api.LossSums(*total.sums(mean), np.dtype(total.dtype), _backends.module(backend).NAME)
    return sums, samples, chunks


def _check_labels(target, pred_shape, class_axis, ignore_index, offset, label, backend):
    """Class indices in range, checked before any kernel reads them, with the
    position given in the whole target (the chunk starts at row ``offset``).
    A target of the wrong shape is left to the facade to report."""
    from ._reference import first_bad_index
    if len(target.shape) + 1 != len(pred_shape):
        return
    n_classes = pred_shape[class_axis]
    if target.dtype in (np.int32, np.int64) and target.flags.c_contiguous and target.flags.aligned:
        # The backend's vectorised scan (the reference's takes ~5% of a chunk's time).
        bad = _backends.module(backend).first_bad_index(target.reshape(1, -1), n_classes,
                                                        ignore_index)
    else:
        bad = first_bad_index(target, n_classes, ignore_index)
    if bad < 0:
        return
    where = tuple(int(i) for i in np.unravel_index(bad, target.shape))
    value = target[where]
    if where:
        where = (where[0] + offset,) + where[1:]
    row = f"row {where[0]}" if len(where) == 1 else f"position {where}"
    raise ValueError(f"{label}: class index {value} at {row} is outside [0, {n_classes}) "
                     f"and is not ignore_index={ignore_index}")


def _in_context(message, sources, cut, start, stop):
    """A facade message about one chunk, with positions moved into the whole
    arrays and the arrays' shapes named."""
    if start:
        # Positions in the facade's messages index the chunk; the cut axis of
        # the predictions' frame is ``cut.axis``, of a per-sample target 0.
        shift_axis = 0 if message.startswith("target:") else cut.axis

        def shift(match):
            index = [int(i) for i in match.group(1).split(",") if i.strip()]
            if shift_axis < len(index):
                index[shift_axis] += start
            return "position " + str(tuple(index))
        message = re.sub(r"position \(([-\d, ]*)\)", shift, message)
    shapes = ", ".join(f"{s.label} {s.shape} {s.dtype}" for s in sources.values())
    return f"{message} [arrays: {shapes}]"


# ================================================================ progress

class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


class _TextProgress(_NoProgress):
    """A one-line progress display for when tqdm is not installed."""

    def __init__(self, total, stream):
        self.total, self.done, self.stream = total, 0, stream
        self.started = self.shown = time.perf_counter()

    def update(self, n):
        self.done += n
        now = time.perf_counter()
        if now - self.shown >= 0.2 or self.done >= self.total:
            self.shown = now
            rate = self.done / max(now - self.started, 1e-9)
            percent = 100.0 * self.done / max(self.total, 1)
            self.stream.write(f"\rcrossent eval: {percent:5.1f}%  {self.done}/{self.total} rows  "
                              f"{rate:,.0f} rows/s ")
            self.stream.flush()

    def __exit__(self, *exc):
        self.stream.write("\n")
        self.stream.flush()
        return False


def _progress_bar(total, enabled):
    if not enabled:
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return _TextProgress(total, sys.stderr)
    return tqdm(total=total, unit="row", unit_scale=True, desc="crossent eval", file=sys.stderr,
                leave=False)
