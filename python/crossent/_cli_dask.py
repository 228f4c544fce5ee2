"""``crossent eval`` on Dask: globs of .npy shards, Zarr arrays, and a
cluster (``--scheduler ADDRESS``) or a local one (``--dask-workers N``).

Without a cluster the graph runs in this process (Dask's synchronous
scheduler, each task using all cores); on a cluster each task uses one
thread unless ``--threads`` says otherwise.  The answer is the same bits
either way (crossent.dask).
"""
import contextlib
import json
import sys
import time

from ._cli_info import two_columns
from ._stores import check_pairs, is_store_spec, open_store, rows_per_chunk, shard_partials

_ARRAY_OPTIONS = (("weight", "--weight"), ("sample_weight", "--sample-weight"),
                  ("pos_weight", "--pos-weight"))


def add_arguments(parser):
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on the Dask cluster at ADDRESS (e.g. tcp://10.0.0.1:8786); "
                             "needs crossent[dask]")
    parser.add_argument("--dask-workers", type=int, metavar="N",
                        help="run on a local Dask cluster of N worker processes")


def wanted(args):
    """Whether this invocation runs on Dask: a cluster is asked for, or an
    operand is a glob of shards or a Zarr array."""
    specs = [args.pred, args.target] + [getattr(args, key) for key, _ in _ARRAY_OPTIONS]
    return bool(args.scheduler or args.dask_workers is not None
                or any(is_store_spec(spec) for spec in specs))


def run(args):
    try:
        from .dask import require_dask
        require_dask()
        report = _evaluate(args)
    except (ImportError, OSError, ValueError, TypeError, MemoryError) as exc:
        return _error(exc)
    except KeyboardInterrupt:
        print("crossent eval: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:   # a worker lost for good (KilledWorker), a scheduler gone, ...
        return _error(exc, prefix=f"the Dask computation failed ({type(exc).__name__}): ")
    loss = report.pop("loss_value")
    if args.json:
        print(json.dumps(report))
    else:
        print(_table(args.loss, report, loss))
    return 0


def _table(loss_name, report, loss):
    """The human-readable report, as the files' one: the loss, then what
    was read, by how many workers and how fast."""
    rate = report["rows_per_second"]
    lines = [(f"{loss_name} ({report['reduction']})", str(loss)),
             ("rows", f"{report['rows']:,}"),
             ("rows/s", "-" if rate is None else f"{rate:,.0f}"),
             ("chunks", f"{report['chunks']:,}"),
             ("workers", str(report["workers"]) if report["workers"] else "this process"),
             ("seconds", f"{report['seconds']:.3g} ({report['backend']}, {report['dtype']})")]
    return two_columns(lines)


def _error(exc, prefix=""):
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"crossent eval: error: {prefix}{message}", file=sys.stderr)
    return 1


def _evaluate(args):
    from . import dask as crossent_dask
    from ._eval import DEFAULT_CHUNK_BYTES
    if args.dask_workers is not None and args.dask_workers < 1:
        raise ValueError(f"--dask-workers: expected a positive int, got {args.dask_workers}")
    if args.scheduler and args.dask_workers is not None:
        raise ValueError("--scheduler and --dask-workers: give one of them, not both")
    if args.metrics:
        raise ValueError("--metrics: not on the Dask path (shard globs, Zarr arrays, "
                         "--scheduler, --dask-workers), which gives the loss only; "
                         "evaluate a .npy or .npz file for the metrics")
    chunk_rows = args.chunk_rows or rows_per_chunk(args.pred, "PRED", DEFAULT_CHUNK_BYTES)
    pred, pred_files = _open(args.pred, "PRED", chunk_rows)
    target, target_files = _open(args.target, "TARGET", chunk_rows)
    if pred_files is not None and target_files is not None:
        check_pairs(pred_files, target_files, "PRED", "TARGET")
    options = {"ignore_index": args.ignore_index, "label_smoothing": args.label_smoothing,
               "axis": args.axis, "alpha": args.alpha, "gamma": args.gamma,
               "log_target": args.log_target, "z_loss": args.z_loss, "softcap": args.softcap}
    array_options = [(key, label) for key, label in _ARRAY_OPTIONS
                     if getattr(args, key) is not None]
    for key, label in array_options:
        options[key] = _open(getattr(args, key), label, chunk_rows)[0]
    on_cluster = bool(args.scheduler or args.dask_workers)
    n_threads = args.threads if args.threads is not None or not on_cluster else 1
    if (pred_files is not None and target_files is not None and not array_options
            and _rows_first(args.loss, args.axis, pred.ndim)):
        # One task per chunk that maps both shards' rows: no read tasks, no transfers.
        tasks = shard_partials(args.loss, pred_files, target_files, chunk_rows,
                               backend=args.backend, n_threads=n_threads, **options)
        lazy = crossent_dask.merge_tree(tasks)
    else:
        lazy = crossent_dask.build(args.loss, pred, target, backend=args.backend,
                                   n_threads=n_threads, **options)
    progress = not args.quiet and sys.stderr.isatty()
    started = time.perf_counter()
    with _client(args) as client:
        cluster_seconds = time.perf_counter() - started
        workers = len(client.scheduler_info()["workers"]) if client is not None else 0
        partial = _compute(lazy, client, progress)
        compute_seconds = time.perf_counter() - started - cluster_seconds
        worker_peaks = (sorted(client.run(peak_memory_mb).values()) if client is not None
                        else None)
    seconds = time.perf_counter() - started
    reduction = args.reduction
    loss = partial.result(reduction)
    means = tuple(partial.denominators)
    return {"loss": float(loss), "loss_value": loss,
            "reduction": reduction or means[0], "samples": partial.samples,
            "weight_sum": partial.sums(reduction if reduction in means else None)[1],
            "dtype": partial.dtype, "backend": args.backend or _default_backend(),
            "rows": int(pred.shape[0]) if pred.ndim else 1,
            "chunks": int(pred.numblocks[0]) if pred.ndim else 1,
            "workers": workers, "seconds": seconds, "compute_seconds": compute_seconds,
            "cluster_seconds": cluster_seconds, "worker_peak_mb": worker_peaks,
            "rows_per_second": (pred.shape[0] / seconds if seconds > 0 and pred.ndim else None),
            "partial": json.loads(partial.to_json())}


def _rows_first(loss, axis, ndim):
    """Whether the shards' first axis is the rows (not a multiclass loss's class axis)."""
    from . import _api
    if _api.FUNCTIONS.get(loss) is None or _api.FUNCTIONS[loss].over != "rows" or ndim < 2:
        return True
    return (-1 if axis is None else axis) % ndim != 0


def _open(spec, label, chunk_rows):
    """A Dask array for a shard glob or Zarr array; a .npy file too (one shard)."""
    if spec.endswith(".npz") or ".npz:" in spec:
        raise ValueError(f"{label}: .npz archives are read without Dask; on Dask give .npy "
                         f"shards or a Zarr array, got {spec!r}")
    return open_store(spec, label, chunk_rows)


@contextlib.contextmanager
def _client(args):
    """A distributed client for --scheduler / --dask-workers, else None."""
    if not (args.scheduler or args.dask_workers):
        yield None
        return
    from distributed import Client, LocalCluster
    if args.scheduler:
        with Client(args.scheduler) as client:
            yield client
        return
    import logging
    import multiprocessing

    import dask
    # Fork the workers where the platform can: they inherit the imports
    # (0.5 s to start two here, against 4.3 s spawned, docs/performance.md).
    # Safe because this process has run no kernel yet, so there is no
    # OpenMP thread pool for a child to inherit.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    # silence_logs: the workers' own shutdown chatter is no news to the user.
    with dask.config.set({"distributed.worker.multiprocessing-method": method}), \
            LocalCluster(n_workers=args.dask_workers, threads_per_worker=1, processes=True,
                         host="127.0.0.1", dashboard_address=":0",
                         silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        client.run(_warm_up)   # imports in the workers count as start-up, not as work
        yield client


def _compute(lazy, client, progress):
    if client is None:
        import dask
        if not progress:
            return dask.compute(lazy, scheduler="synchronous")[0]
        from dask.diagnostics import ProgressBar
        with ProgressBar(out=sys.stderr):
            return dask.compute(lazy, scheduler="synchronous")[0]
    future = client.compute(lazy)
    if progress:
        from distributed import progress as show_progress
        with contextlib.redirect_stdout(sys.stderr):   # keep stdout for the loss
            show_progress(future)
    return future.result()


def _default_backend():
    from . import _backends
    return _backends.get_backend()


def peak_memory_mb():
    """This process's peak resident memory (VmHWM, file-backed pages
    included), in MB; run on each worker for the --json report."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def _warm_up():
    import crossent.dask  # noqa: F401
    return True
