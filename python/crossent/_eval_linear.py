"""``crossent eval linear_cross_entropy HIDDEN TARGET --linear-weight W``:
the loss (and perplexity) of a language-model head over stored hidden
states, in bounded memory, without ever writing its logits.

The hidden states and targets are read a chunk of rows at a time (memory-
mapped or streamed by ``_readers``); each chunk goes through
``linear_cross_entropy``'s own chunks (a logits buffer of at most
``LOGITS_BUFFER_BYTES``), continuing the sums of the chunk before.
"""
import math
import time
from contextlib import ExitStack

from . import _backends
from ._eval import DEFAULT_CHUNK_BYTES, EvalReport, _positive_int, _progress_bar
from ._linear_ce import linear_loss_sums
from ._readers import open_operand

# The logits buffer of one inner chunk.
LOGITS_BUFFER_BYTES = 64 * 2**20


def evaluate_linear_report(hidden, target, linear_weight, *, bias=None, weight=None,
                           sample_weight=None, ignore_index=None, label_smoothing=None,
                           z_loss=None, softcap=None, reduction=None, chunk_rows=None,
                           backend=None, n_threads=None, progress=False):
    """The mean (or sum) of ``linear_cross_entropy`` over stored arrays, as an
    ``EvalReport``; ``hidden`` (N, ..., d), ``target`` and the weights are
    arrays or paths as :func:`crossent.evaluate` takes them, and are cut
    along their first axis."""
    reduction = "mean" if reduction is None else reduction
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum' for linear_cross_entropy "
                         f"(evaluate returns no per-sample losses), got {reduction!r}")
    _backends.module(backend)
    n_threads = _backends.resolve_n_threads(n_threads)
    scalars = {k: v for k, v in dict(ignore_index=ignore_index, label_smoothing=label_smoothing,
                                     z_loss=z_loss, softcap=softcap).items() if v is not None}
    with ExitStack() as stack:
        h = open_operand(hidden, "HIDDEN", stack)
        t = open_operand(target, "TARGET", stack)
        w = open_operand(linear_weight, "--linear-weight", stack).whole()
        b = None if bias is None else open_operand(bias, "--bias", stack).whole()
        cw = None if weight is None else open_operand(weight, "--weight", stack).whole()
        s = None if sample_weight is None else open_operand(sample_weight, "--sample-weight",
                                                           stack)
        if len(h.shape) < 2 or len(w.shape) != 2:
            raise ValueError(f"HIDDEN: expected shape (N, ..., d) and --linear-weight (V, d), "
                             f"got {h.shape} and {w.shape}")
        n_rows = h.shape[0]
        for name, source in (("TARGET", t), ("--sample-weight", s)):
            if source is not None and (not source.shape or source.shape[0] != n_rows):
                raise ValueError(f"{name}: expected {n_rows} rows (HIDDEN's first axis), got "
                                 f"shape {source.shape}")
        per_row = math.prod(h.shape[1:-1])
        inner = max(1, LOGITS_BUFFER_BYTES // (w.shape[0] * h.dtype.itemsize))
        if chunk_rows is None:
            chunk_rows = max(1, DEFAULT_CHUNK_BYTES // max(1, math.prod(h.shape[1:]) *
                                                           h.dtype.itemsize))
        chunk_rows = _positive_int(chunk_rows, "chunk_rows")
        bar = stack.enter_context(_progress_bar(n_rows, progress))
        started = time.perf_counter()
        acc, dtype, backend_name, chunks = (0.0, 0.0), None, None, 0
        for start in range(0, n_rows, chunk_rows):
            stop = min(start + chunk_rows, n_rows)
            sw = None if s is None else s.take(0, start, stop)
            total, denominator, dtype, backend_name = linear_loss_sums(
                h.take(0, start, stop), w, t.take(0, start, stop), acc=acc, bias=b, weight=cw,
                sample_weight=sw, chunk_size=max(1, inner // per_row) * per_row,
                backend=backend, n_threads=n_threads, **scalars)
            acc = (total, denominator)
            chunks += 1
            bar.update(stop - start)
        seconds = time.perf_counter() - started
        bytes_read = sum(math.prod(x.shape) * x.dtype.itemsize
                         for x in (h, t, w, b, cw, s) if x is not None)
    from ._api import _mean
    if dtype is None:
        from ._linear_ce import linear_dtype
        dtype = linear_dtype(h.dtype, w.dtype)
    mean = _mean(acc[0], acc[1])
    value = dtype.type(acc[0] if reduction == "sum" else mean)
    return EvalReport(value, reduction, n_rows * per_row, acc[1], str(dtype),
                      backend_name or backend or _backends.get_backend(), n_rows, chunks,
                      seconds, bytes_read=bytes_read), mean
