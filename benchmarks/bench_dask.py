"""Benchmark of ``crossent eval`` on Dask (a script; not part of the test suite).

    python benchmarks/bench_dask.py                  # 16 shards of 625 000 x 100 float32 = 4 GB
    python benchmarks/bench_dask.py --rows 62500     # a quick run (400 MB)

1. ``crossent eval cross_entropy 'DIR/preds/*.npy' 'DIR/labels/*.npy' --json``
   in one process (Dask's synchronous scheduler; the kernels use every core)
   against the same with ``--dask-workers 2`` (a LocalCluster of 2 worker
   processes, one thread each), alternated, each in a fresh process; wall
   time of the whole command (cluster start included) and the time of the
   computation alone, peak memory of the process and of each worker.
   Target: the cluster within 1.3x the wall time of the single process.
2. Scheduler overhead per task on the same LocalCluster: the time of a graph
   of N tasks that do nothing, divided by N.
3. What the exact rule costs: ``crossent.evaluate`` of 10**6 x 100 float32
   logits in memory against the ordered float64 fold it replaced.

The shards are written to a temporary directory (or ``--dir``) and deleted at
the end unless ``--keep``.  Prints one JSON object.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

RATIO_TARGET = 1.3
# The command runs in-process so that the peak line can follow its output.
EVAL = """
import json, sys
from crossent.__main__ import main
status = main(sys.argv[1:])
sys.stdout.flush()
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
               if line.startswith("VmHWM:"))
print(json.dumps({"peak_mb": peak_kb / 1024, "status": status}))
"""


def write_shards(directory, shards, rows, classes, seed=0):
    rng = np.random.default_rng(seed)
    for sub in ("preds", "labels"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    for i in range(shards):
        logits = rng.standard_normal((rows, classes), dtype=np.float32)
        np.save(os.path.join(directory, "preds", f"part-{i:03d}.npy"), logits)
        np.save(os.path.join(directory, "labels", f"part-{i:03d}.npy"),
                rng.integers(0, classes, size=rows))
    return os.path.join(directory, "preds", "*.npy"), os.path.join(directory, "labels", "*.npy")


def run_eval(preds, labels, extra):
    command = [sys.executable, "-c", EVAL, "eval", "cross_entropy", preds, labels, "--json",
               "--quiet", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    if done.returncode or len(lines) < 2:
        raise RuntimeError(f"{' '.join(command[3:])} failed: {done.stderr[-2000:]}")
    report, peak = json.loads(lines[-2]), json.loads(lines[-1])
    return {"wall_seconds": wall, "compute_seconds": report.get("compute_seconds"),
            "cluster_seconds": report.get("cluster_seconds"), "peak_mb": peak["peak_mb"],
            "worker_peak_mb": report.get("worker_peak_mb"), "loss": report["loss"]}


def scheduler_overhead(n_tasks, workers):
    """Seconds per task of an empty graph on a LocalCluster like --dask-workers's."""
    import dask
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0", silence_logs=40) as cluster, Client(cluster):
        def nothing(i):
            return i
        results = []
        for _ in range(3):
            tasks = [dask.delayed(nothing, pure=False)(i) for i in range(n_tasks)]
            started = time.perf_counter()
            dask.compute(*tasks)
            results.append((time.perf_counter() - started) / n_tasks)
    return min(results)


def exact_rule_cost(rows=10**6, classes=100, chunk_rows=167_744, repeats=7):
    """crossent.evaluate (exact partials) against the ordered float64 fold of
    block sums it replaced (_api.loss_sums chained through acc), in memory,
    alternated: (best ratio, median ratio, per-pair ratios)."""
    import crossent
    from crossent import _api
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((rows, classes), dtype=np.float32)
    labels = rng.integers(0, classes, size=rows)

    def ordered_fold():
        acc = (0.0, 0.0)
        for start in range(0, rows, chunk_rows):
            sums = _api.loss_sums("cross_entropy", logits[start:start + chunk_rows],
                                  labels[start:start + chunk_rows], acc=acc)
            acc = (sums.loss_sum, sums.denominator)

    def exact_partials():
        crossent.evaluate("cross_entropy", logits, labels, chunk_rows=chunk_rows)

    fold, exact = [], []
    for _ in range(repeats):
        for run, times in ((ordered_fold, fold), (exact_partials, exact)):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
    return {"fold_seconds": fold, "exact_seconds": exact,
            "best_ratio": min(exact) / min(fold),
            "median_ratio": statistics.median(exact) / statistics.median(fold)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--rows", type=int, default=625_000, help="rows per shard")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead-tasks", type=int, default=2000)
    parser.add_argument("--dir", help="where to write the shards (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the shards")
    args = parser.parse_args(argv)
    directory = args.dir or tempfile.mkdtemp(prefix="crossent-bench-dask-")
    try:
        preds, labels = write_shards(directory, args.shards, args.rows, args.classes)
        subprocess.run(["cat", *sorted(__import__("glob").glob(preds))], stdout=subprocess.DEVNULL,
                       check=True)   # into the page cache
        single, cluster = [], []
        for _ in range(args.repeats):   # alternated, so that drift hits both alike
            single.append(run_eval(preds, labels, []))
            cluster.append(run_eval(preds, labels, ["--dask-workers", str(args.workers)]))
        assert len({r["loss"] for r in single + cluster}) == 1, "the runs disagree"
        best_single = min(r["wall_seconds"] for r in single)
        best_cluster = min(r["wall_seconds"] for r in cluster)
        result = {
            "data": {"shards": args.shards, "rows_per_shard": args.rows, "classes": args.classes,
                     "gigabytes": args.shards * args.rows * args.classes * 4 / 1e9},
            "single": single, "cluster": cluster,
            "best_wall_single": best_single, "best_wall_cluster": best_cluster,
            "ratio_wall": best_cluster / best_single,
            "ratio_compute": (min(r["compute_seconds"] for r in cluster)
                              / min(r["compute_seconds"] for r in single)),
            "median_ratio_wall": (statistics.median(r["wall_seconds"] for r in cluster)
                                  / statistics.median(r["wall_seconds"] for r in single)),
            "scheduler_seconds_per_task": scheduler_overhead(args.overhead_tasks, args.workers),
            "exact_rule_cost": exact_rule_cost(),
        }
        print(json.dumps(result, indent=1))
        return 0 if result["ratio_wall"] <= RATIO_TARGET else 1
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
