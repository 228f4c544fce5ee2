"""Benchmark of ``crossent eval`` on a file larger than a comfortable memory
budget (a script; not part of the test suite).

    python benchmarks/bench_eval.py                 # 10 000 000 x 100 float32 = 4 GB
    python benchmarks/bench_eval.py --rows 1000000  # a quick run

What it measures, each in a fresh process so that memory is the process's own:

1. ``crossent eval cross_entropy PRED TARGET`` on a float32 prediction file
   with its int64 labels: peak resident memory (VmHWM, file-backed pages
   included) and throughput.  Targets: peak under 300 MB, and time within
   1.5x of the yardstick below; with ``--metrics accuracy,top5`` (the same
   pass), within 1.7x.
2. The yardstick: ``numpy.load(PRED, mmap_mode="r").sum()`` on the same
   file, i.e. reading it once from the page cache.
3. On a size that fits in memory: ``sklearn.metrics.log_loss`` against
   ``crossent.evaluate("categorical_cross_entropy", ...)`` and the one-shot
   ``crossent.categorical_cross_entropy``, values and times.

The file is warmed into the page cache first and timings take the best of
``--repeats`` runs (the machine may be shared).  The files are deleted at the
end unless ``--keep``.  Exit status 1 when a target is missed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

PEAK_MB_TARGET = 300
SLOWDOWN_TARGET = 1.5
METRICS_SLOWDOWN_TARGET = 1.7
METRICS = "accuracy,top5"
SLAB_ROWS = 500_000   # rows generated at a time when writing the file

# Each child prints its result as a JSON line, then its own peak resident
# memory (VmHWM: the high-water mark of this process image, file-backed pages
# included).  Not wait4's ru_maxrss: that one starts from the parent's RSS at
# fork time.
PEAK_LINE = """
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
               if line.startswith("VmHWM:"))
print(json.dumps({"peak_mb": peak_kb / 1024}))
"""
YARDSTICK = """
import json, sys, time
import numpy as np
start = time.perf_counter()
total = float(np.load(sys.argv[1], mmap_mode="r").sum())
print(json.dumps({"seconds": time.perf_counter() - start, "sum": total}))
""" + PEAK_LINE
# `crossent eval ... --json`, run in-process so that the peak line can follow.
EVAL = """
import json, sys
from crossent.__main__ import main
status = main(sys.argv[1:])
sys.stdout.flush()
""" + PEAK_LINE + """
sys.exit(status)
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--dir", default=None, help="where to write the files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the files afterwards")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--sklearn-rows", type=int, default=1_000_000,
                        help="rows of the in-memory comparison with scikit-learn (0: skip)")
    parser.add_argument("--json", metavar="PATH", help="also save the results as JSON")
    return parser.parse_args(argv)


def write_files(directory, rows, classes):
    """A float32 logits file and an int64 label file, written a slab at a time."""
    pred_path = os.path.join(directory, "pred.npy")
    target_path = os.path.join(directory, "target.npy")
    pred = np.lib.format.open_memmap(pred_path, mode="w+", dtype=np.float32, shape=(rows, classes))
    target = np.lib.format.open_memmap(target_path, mode="w+", dtype=np.int64, shape=(rows,))
    for start in range(0, rows, SLAB_ROWS):
        stop = min(start + SLAB_ROWS, rows)
        rng = np.random.default_rng(start)
        pred[start:stop] = rng.random((stop - start, classes), dtype=np.float32) * 8 - 4
        target[start:stop] = rng.integers(0, classes, stop - start)
    pred.flush()
    target.flush()
    del pred, target
    return pred_path, target_path


def run_child(code, *argv):
    """Run a Python child; returns (its JSON result, its peak resident memory in MB)."""
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr}")
    lines = done.stdout.splitlines()
    return json.loads(lines[0]), json.loads(lines[-1])["peak_mb"]


def eval_argv(pred_path, target_path, args, metrics=None):
    argv = ["eval", "cross_entropy", pred_path, target_path, "--json", "--quiet"]
    if metrics:
        argv += ["--metrics", metrics]
    if args.backend:
        argv += ["--backend", args.backend]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    return argv


def bench_big_file(args, directory):
    size_gb = args.rows * args.classes * 4 / 1e9
    print(f"writing {args.rows} x {args.classes} float32 ({size_gb:.2f} GB) + int64 labels "
          f"to {directory} ...", flush=True)
    started = time.perf_counter()
    pred_path, target_path = write_files(directory, args.rows, args.classes)
    print(f"  written in {time.perf_counter() - started:.1f} s", flush=True)
    run_child(YARDSTICK, pred_path)            # warm the page cache
    runs = {"eval": [], "yardstick": [], "eval_metrics": []}
    for _ in range(args.repeats):
        runs["yardstick"].append(run_child(YARDSTICK, pred_path))
        runs["eval"].append(run_child(EVAL, *eval_argv(pred_path, target_path, args)))
        runs["eval_metrics"].append(run_child(EVAL, *eval_argv(pred_path, target_path, args,
                                                              METRICS)))
    best_eval = min(report["seconds"] for report, _ in runs["eval"])
    best_metrics = min(report["seconds"] for report, _ in runs["eval_metrics"])
    best_yardstick = min(report["seconds"] for report, _ in runs["yardstick"])
    report = runs["eval"][0][0]
    return {
        "rows": args.rows, "classes": args.classes, "file_gb": size_gb,
        "loss": report["loss"], "backend": report["backend"], "chunks": report["chunks"],
        "eval_seconds": best_eval, "eval_rows_per_second": args.rows / best_eval,
        "eval_gb_per_second": size_gb / best_eval,
        "eval_peak_mb": max(peak for _, peak in runs["eval"]),
        "yardstick_seconds": best_yardstick, "yardstick_gb_per_second": size_gb / best_yardstick,
        "yardstick_peak_mb": max(peak for _, peak in runs["yardstick"]),
        "slowdown_vs_yardstick": best_eval / best_yardstick,
        "metrics": METRICS, "metrics_values": runs["eval_metrics"][0][0]["metrics"],
        "eval_metrics_seconds": best_metrics,
        "eval_metrics_peak_mb": max(peak for _, peak in runs["eval_metrics"]),
        "metrics_slowdown_vs_yardstick": best_metrics / best_yardstick,
        "all_eval_metrics_seconds": [r["seconds"] for r, _ in runs["eval_metrics"]],
        "all_eval_seconds": [r["seconds"] for r, _ in runs["eval"]],
        "all_yardstick_seconds": [r["seconds"] for r, _ in runs["yardstick"]],
    }


def best_time(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def bench_sklearn(args):
    try:
        from sklearn.metrics import log_loss
    except ImportError:
        return {"skipped": "scikit-learn is not installed"}
    import crossent
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((args.sklearn_rows, args.classes))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, args.classes, args.sklearn_rows)
    del logits
    options = {"backend": args.backend, "n_threads": args.threads}
    t_sklearn, v_sklearn = best_time(
        lambda: log_loss(labels, probs, labels=np.arange(args.classes)), args.repeats)
    t_eval, v_eval = best_time(lambda: crossent.evaluate(
        "categorical_cross_entropy", probs, labels, **options), args.repeats)
    t_one_shot, v_one_shot = best_time(lambda: crossent.categorical_cross_entropy(
        probs, labels, **options), args.repeats)
    return {
        "rows": args.sklearn_rows, "classes": args.classes, "dtype": "float64",
        "sklearn_log_loss": float(v_sklearn), "sklearn_seconds": t_sklearn,
        "evaluate_loss": float(v_eval), "evaluate_seconds": t_eval,
        "one_shot_loss": float(v_one_shot), "one_shot_seconds": t_one_shot,
        "evaluate_equals_one_shot": bool(v_eval == v_one_shot),
        "relative_difference_to_sklearn": abs(float(v_eval) / float(v_sklearn) - 1),
        "speedup_vs_sklearn": t_sklearn / t_eval,
    }


def main(argv=None):
    args = parse_args(argv)
    directory = tempfile.mkdtemp(prefix="crossent-bench-eval-", dir=args.dir)
    needed = args.rows * args.classes * 4 + args.rows * 8
    free = shutil.disk_usage(directory).free
    if free < 1.1 * needed:
        print(f"not enough disk in {directory}: need {needed / 1e9:.1f} GB, "
              f"{free / 1e9:.1f} GB free", file=sys.stderr)
        return 2
    try:
        results = {"big_file": bench_big_file(args, directory)}
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    if args.sklearn_rows:
        results["sklearn"] = bench_sklearn(args)
    big = results["big_file"]
    results["targets"] = {
        f"peak under {PEAK_MB_TARGET} MB": max(big["eval_peak_mb"],
                                               big["eval_metrics_peak_mb"]) < PEAK_MB_TARGET,
        f"within {SLOWDOWN_TARGET}x of the page-cache read": (
            big["slowdown_vs_yardstick"] <= SLOWDOWN_TARGET),
        f"with {METRICS} within {METRICS_SLOWDOWN_TARGET}x of the page-cache read": (
            big["metrics_slowdown_vs_yardstick"] <= METRICS_SLOWDOWN_TARGET),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if all(results["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
