"""Stored arrays as Dask arrays, for ``crossent eval`` on Dask: a glob of
``.npy`` shards (concatenated along their first axis, in sorted order) or a
Zarr array (``store.zarr:array``).

A shard is read a chunk of rows at a time, memory-mapped, inside the task
that computes that chunk's partial, so that a worker holds one chunk; its
header is read up front, so a shard of the wrong shape or dtype is named
before anything runs.
"""
import glob
import os
import re

import numpy as np

GLOB_CHARACTERS = "*?["


def is_store_spec(spec):
    """Whether a command-line operand names shards or a Zarr array (the
    other operands are .npy/.npz files, read by _readers)."""
    if not isinstance(spec, str):
        return False
    if _zarr_parts(spec) is not None:
        return True
    # A file whose name holds "[" or "*" is that file, not a pattern.
    return any(c in spec for c in GLOB_CHARACTERS) and not os.path.exists(spec)


def open_store(spec, label, chunk_rows):
    """(dask array, the shard paths or None for Zarr) for operand ``spec``;
    shards are read in chunks of ``chunk_rows`` rows (a Zarr array keeps its
    own chunks)."""
    parts = _zarr_parts(spec)
    if parts is not None:
        return _open_zarr(*parts, label), None
    files = sorted(glob.glob(spec))
    if not files:
        raise FileNotFoundError(f"{label}: no file matches {spec!r}")
    return _open_shards(files, label, chunk_rows), files


# ---------------------------------------------------------------- .npy shards

def shard_header(path, label):
    """(shape, dtype) of one shard, from its header; errors name the shard."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise type(exc)(f"{label} shard {path}: cannot be read as a .npy array: {exc}") from None
    if not isinstance(mapped, np.ndarray):
        raise ValueError(f"{label} shard {path}: expected a .npy array, got a .npz archive")
    if mapped.ndim == 0:
        raise ValueError(f"{label} shard {path}: expected an array with rows, got a 0-d array")
    return mapped.shape, mapped.dtype


def _open_shards(files, label, chunk_rows):
    import dask.array as da
    from dask import delayed
    first_shape, first_dtype = shard_header(files[0], label)
    pieces = []
    for path in files:
        shape, dtype = shard_header(path, label)
        if shape[1:] != first_shape[1:] or dtype != first_dtype:
            raise ValueError(f"{label} shard {path}: shape {shape} {dtype}, expected "
                             f"(rows, {', '.join(map(str, first_shape[1:]))}) {first_dtype} "
                             f"as the first shard {files[0]}")
        for start in range(0, max(shape[0], 1), chunk_rows):
            stop = min(start + chunk_rows, shape[0])
            rows = delayed(read_rows, pure=True)(path, start, stop, shape, str(dtype), label)
            pieces.append(da.from_delayed(rows, shape=(stop - start,) + shape[1:], dtype=dtype))
    return da.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]


def read_rows(path, start, stop, shape, dtype, label):
    """Rows start:stop of a shard, memory-mapped (a task of the graph)."""
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    if mapped.shape != tuple(shape) or mapped.dtype != np.dtype(dtype):
        raise ValueError(f"{label} shard {path}: shape {mapped.shape} {mapped.dtype}, expected "
                         f"{tuple(shape)} {dtype} (the shard changed since the run started)")
    return np.asarray(mapped[start:stop])


def rows_per_chunk(spec, label, chunk_bytes):
    """Rows of about ``chunk_bytes`` of the first shard matching ``spec``
    (1 when nothing matches: open_store then says so)."""
    files = sorted(glob.glob(spec)) if _zarr_parts(spec) is None else []
    if not files:
        return 1
    shape, dtype = shard_header(files[0], label)
    return max(1, chunk_bytes // max(int(np.prod(shape[1:])) * dtype.itemsize, 1))


def shard_partials(loss, pred_files, target_files, chunk_rows, *, backend=None, n_threads=None,
                   **options):
    """One lazy LossPartial per chunk of ``chunk_rows`` rows of each pair of
    shards, each task mapping its rows of both shards itself."""
    from dask import delayed
    from ._eval import _check_loss_keywords
    scalars = {k: v for k, v in options.items() if v is not None}
    _check_loss_keywords(loss, scalars)
    tasks = []
    for pred_path, target_path in zip(pred_files, target_files):
        pred_shape, pred_dtype = shard_header(pred_path, "PRED")
        target_shape, target_dtype = shard_header(target_path, "TARGET")
        pred_source = (pred_path, pred_shape, str(pred_dtype), "PRED")
        target_source = (target_path, target_shape, str(target_dtype), "TARGET")
        for start in range(0, max(pred_shape[0], 1), chunk_rows):
            stop = min(start + chunk_rows, pred_shape[0])
            tasks.append(delayed(shard_chunk_partial, pure=True)(
                loss, pred_source, target_source, start, stop, backend, n_threads, scalars))
    return tasks


def shard_chunk_partial(loss, pred_source, target_source, start, stop, backend, n_threads,
                        scalars):
    """The partial of rows start:stop of a pair of shards (a task)."""
    from ._partial import loss_partial
    pred = read_rows(pred_source[0], start, stop, *pred_source[1:])
    target = read_rows(target_source[0], start, stop, *target_source[1:])
    try:
        return loss_partial(loss, pred, target, backend=backend, n_threads=n_threads, **scalars)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"rows {start}:{stop} of PRED shard {pred_source[0]} and TARGET shard "
                        f"{target_source[0]}: {exc}") from None


def check_pairs(pred_files, target_files, pred_label, target_label):
    """Shards of predictions and targets pair in sorted order: as many of
    each, the same rows in each pair.  An error names the first shard
    without its partner."""
    for i, (p, t) in enumerate(zip(pred_files, target_files)):
        p_numbers, t_numbers = _numbers(p), _numbers(t)
        if len(p_numbers) == len(t_numbers) and p_numbers != t_numbers:
            raise ValueError(f"{target_label} shard {t} is paired with {pred_label} shard {p} "
                             f"(pair {i} in sorted order) but their numbers differ: a shard is "
                             f"missing ({len(pred_files)} {pred_label} shards, "
                             f"{len(target_files)} {target_label} shards)")
        p_rows, t_rows = shard_header(p, pred_label)[0][0], shard_header(t, target_label)[0][0]
        if p_rows != t_rows:
            raise ValueError(f"{target_label} shard {t}: {t_rows} rows, expected {p_rows} as its "
                             f"pair {pred_label} shard {p} (pair {i} in sorted order)")
    if len(pred_files) != len(target_files):
        longer, label = ((pred_files, pred_label) if len(pred_files) > len(target_files)
                         else (target_files, target_label))
        other = target_label if label == pred_label else pred_label
        unpaired = longer[min(len(pred_files), len(target_files))]
        raise ValueError(f"{label} shard {unpaired} has no {other} shard to pair with: "
                         f"{len(pred_files)} {pred_label} shards, {len(target_files)} "
                         f"{target_label} shards")


def _numbers(path):
    return re.findall(r"\d+", os.path.basename(path))


# ---------------------------------------------------------------- Zarr

def _zarr_parts(spec):
    """("store.zarr", "array") for "store.zarr:array", ("store.zarr", None)
    for "store.zarr", None for anything else."""
    if not isinstance(spec, str):
        return None
    match = re.match(r"^(.*\.zarr)/?(?::(.*))?$", spec)
    if match is None:
        return None
    return match.group(1), match.group(2) or None


def _open_zarr(store, array, label):
    import dask.array as da
    try:
        import zarr
    except ImportError:
        from .dask import INSTALL_HINT
        raise ImportError(f"{label}: reading Zarr needs zarr: {INSTALL_HINT}") from None
    if not os.path.exists(store) and "://" not in store:
        raise FileNotFoundError(f"{label}: no Zarr store at {store}")
    try:
        opened = zarr.open(store, mode="r", path=array) if array else zarr.open(store, mode="r")
    except Exception as exc:   # zarr's own errors differ across versions
        where = f"{store}:{array}" if array else store
        raise ValueError(f"{label}: cannot open the Zarr array {where}: {exc}") from None
    if not hasattr(opened, "shape") or not hasattr(opened, "dtype"):
        names = ", ".join(sorted(getattr(opened, "array_keys", lambda: [])()))
        raise ValueError(f"{label}: {store} is a Zarr group; name one of its arrays as "
                         f"{store}:ARRAY (arrays: {names or 'none'})")
    return da.from_zarr(opened)
