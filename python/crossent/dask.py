"""crossent on Dask arrays: :func:`evaluate`.

Each block of rows gives a :class:`~crossent.LossPartial` (its exact loss
and weight sums, computed by the usual kernels on the NumPy block); the
partials are merged in a tree.  Merging is exact, so the loss is the same
bits whatever the chunking, the number of workers and the order tasks
finish in, and equals :func:`crossent.evaluate` on the same data
(docs/guarantees.md).

Needs the ``dask`` extra: ``pip install crossent[dask]``.
"""
import numpy as np

from ._partial import LossPartial, loss_partial, merge_partials

INSTALL_HINT = "pip install crossent[dask]  (dask[array], distributed, zarr)"
# Partials merged per task of the merge tree: the tree is log_8(blocks) deep.
MERGE_FAN_IN = 8

_ARRAY_OPTIONS = ("weight", "sample_weight", "pos_weight")


def require_dask():
    """dask.array, or an ImportError saying what to install."""
    try:
        import dask.array
    except ImportError as exc:
        raise ImportError(f"crossent.dask needs Dask: {INSTALL_HINT} ({exc})") from None
    return dask.array


def evaluate(name, pred, target, *, reduction=None, return_partial=False, backend=None,
             n_threads=None, scheduler=None, **options):
    """The loss of Dask arrays chunked along the rows.

    Parameters
    ----------
    name : str
        A loss function's name, as :func:`crossent.evaluate`.
    pred, target : dask.array.Array or array_like
        Predictions and targets as the loss function takes them.  Chunks are
        cut along the rows (the first axis that is not the class axis); the
        other axes are rechunked whole, and the targets and per-sample
        options follow the predictions' row chunks.
    reduction : {"mean", "sum"}, or "batchmean" for kl_div
        None: the loss function's default.
    return_partial : bool
        Also return the merged :class:`~crossent.LossPartial`: ``(loss, partial)``.
    backend, n_threads :
        As every crossent function, inside each task (``n_threads=1`` suits
        one-thread workers).
    scheduler :
        Handed to ``dask.compute`` (None: Dask's default, the distributed
        client when one is active).
    **options :
        The loss's keywords (``weight``, ``sample_weight``, ``ignore_index``,
        ...); array options may be Dask arrays.

    Returns
    -------
    numpy scalar of the computation dtype: the correctly rounded sum of all
    per-sample losses (over that of all weights for a mean), the same bits as
    ``crossent.evaluate`` and ``crossent.loss_partial`` over the whole data,
    for every chunking.

    Example
    -------
    >>> logits = dask.array.from_zarr("preds.zarr")            # (N, C), chunked by rows
    >>> crossent.dask.evaluate("cross_entropy", logits, labels)
    """
    partial = build(name, pred, target, backend=backend, n_threads=n_threads, **options)
    import dask
    (partial,) = dask.compute(partial, scheduler=scheduler)
    loss = partial.result(reduction)
    return (loss, partial) if return_partial else loss


def build(name, pred, target, *, backend=None, n_threads=None, **options):
    """The lazy merged partial (a ``dask.delayed`` object) of :func:`evaluate`."""
    da = require_dask()
    from dask import delayed
    from . import _api, _backends
    # a use_backend block holds for this thread only: its choice goes with the tasks
    backend = backend or _backends.chosen_here()
    from ._eval import _check_loss_keywords
    from ._validate import check_axis
    given = {k: v for k, v in options.items() if v is not None}
    _check_loss_keywords(name, given)
    pred, target = _as_dask(da, pred, "pred"), _as_dask(da, target, "target")
    if _api.FUNCTIONS[name].over == "rows" and pred.ndim:
        class_axis = check_axis(given.get("axis", -1), pred.ndim, "pred")
        cut = 1 if class_axis == 0 else 0
    else:
        class_axis, cut = None, 0
    if cut >= pred.ndim:   # nothing to cut along: one block
        pred = pred.rechunk(-1)
        row_chunks = (pred.shape[cut] if pred.ndim > cut else 1,)
    else:
        pred = pred.rechunk({i: (pred.chunks[i] if i == cut else -1) for i in range(pred.ndim)})
        row_chunks = pred.chunks[cut]
    bounds = _bounds(row_chunks)
    operands = {"target": target, **{k: given.pop(k) for k in _ARRAY_OPTIONS if k in given}}
    blocks = {"pred": _blocks_along(pred, cut if pred.ndim > cut else None, len(bounds))}
    for key, value in operands.items():
        frame, frame_cut = _frame(key, value, pred.shape, class_axis, cut)
        blocks[key] = _operand_blocks(da, key, value, frame, frame_cut, row_chunks, len(bounds),
                                      pred.shape)
    scalars = given
    tasks = [delayed(_block_partial, pure=True)(
        name, {key: blocks[key][i] for key in blocks}, bounds[i], backend, n_threads, scalars)
        for i in range(len(bounds))]
    return merge_tree(tasks)


# ---------------------------------------------------------------- tasks

def _block_partial(name, operands, bounds, backend, n_threads, scalars):
    """One block's partial; errors say which rows the block holds."""
    options = {k: v for k, v in operands.items() if k not in ("pred", "target")}
    try:
        return loss_partial(name, operands["pred"], operands["target"], backend=backend,
                            n_threads=n_threads, **options, **scalars)
    except (ValueError, TypeError) as exc:
        start, stop = bounds
        raise type(exc)(f"rows {start}:{stop} of the predictions: {exc}") from None


def _merge(*partials):
    return merge_partials(partials)


def merge_tree(tasks):
    """One lazy partial from many: merged MERGE_FAN_IN at a time, in a tree."""
    from dask import delayed
    level = list(tasks)
    while len(level) > 1:
        level = [delayed(_merge, pure=True)(*level[i:i + MERGE_FAN_IN])
                 for i in range(0, len(level), MERGE_FAN_IN)]
    return level[0]


# ---------------------------------------------------------------- chunk alignment

def _as_dask(da, value, name):
    if isinstance(value, da.Array):
        return value
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"{name}: expected a dask or NumPy array, got {type(value).__name__}")
    return da.from_array(array, chunks=-1)


def _bounds(row_chunks):
    stops = np.cumsum(row_chunks).tolist()
    return list(zip([0] + stops[:-1], stops))


def _blocks_along(array, axis, n_blocks):
    """The array's delayed blocks, one per row block (the array is whole
    along every other axis)."""
    blocks = array.to_delayed().reshape(-1)
    if axis is None or len(blocks) == 1 and n_blocks > 1:
        return [blocks[0]] * n_blocks
    return list(blocks)


def _frame(key, value, pred_shape, class_axis, cut):
    """The shape ``value`` broadcasts against, and the cut axis in it: the
    predictions', or their sample shape (without the class axis) for the
    targets of class indices and the per-sample weights of a multiclass loss;
    None for class weights (taken whole)."""
    if class_axis is None:
        return pred_shape, cut
    if key == "weight":
        return None, None
    sample_shape = pred_shape[:class_axis] + pred_shape[class_axis + 1:]
    if key == "sample_weight" or key == "target" and np.ndim(value) != len(pred_shape):
        return sample_shape, cut if cut < class_axis else cut - 1
    return pred_shape, cut


def _operand_blocks(da, key, value, frame, frame_cut, row_chunks, n_blocks, pred_shape):
    """One piece of ``value`` per row block: its rows of the block where it
    runs along the cut axis, the whole of it where it broadcasts."""
    shape = np.shape(value)
    if frame is None or frame_cut >= len(frame):
        return [_whole(da, value)] * n_blocks
    d = frame_cut - (len(frame) - len(shape))
    if d < 0 or d >= len(shape) or shape[d] == 1 and frame[frame_cut] != 1:
        return [_whole(da, value)] * n_blocks
    if shape[d] != frame[frame_cut]:
        raise ValueError(f"{key}: shape {shape} does not match the predictions' shape "
                         f"{pred_shape}: its axis {d} has length {shape[d]}, expected "
                         f"{frame[frame_cut]}")
    array = _as_dask(da, value, key)
    array = array.rechunk({i: (row_chunks if i == d else -1) for i in range(array.ndim)})
    return _blocks_along(array, d, n_blocks)


def _whole(da, value):
    """A broadcast operand: computed once into the graph if it is a Dask array."""
    if isinstance(value, da.Array):
        return value.rechunk(-1).to_delayed().reshape(-1)[0]
    return np.asarray(value)


__all__ = ["evaluate", "build", "LossPartial", "INSTALL_HINT"]
