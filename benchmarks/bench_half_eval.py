"""``crossent eval`` of a float16 prediction file against the float32 file of
the same values: the float16 file is half the bytes to read, and the kernels
widen it a block at a time.  (A bfloat16 array has no .npy dtype of its own:
np.save stores it as raw 2-byte records, so files are float16 here.)

    python benchmarks/bench_half_eval.py [--rows 2000000] [--classes 100] [--threads 2]

Writes the two files (float32 holding exactly the float16 values, so both
give the same loss bit for bit) and their int64 labels, warms them into the
page cache, then times ``crossent eval cross_entropy PRED TARGET`` in fresh
processes, alternating the two files, and prints the best time of each (the
evaluation's own, as ``--json`` reports it) and their ratio.  Goal: the 2-byte file in at most 0.6x the float32 time.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

SLAB_ROWS = 200_000


def write_files(directory, rows, classes, half):
    rng = np.random.default_rng(0)
    paths = {name: os.path.join(directory, f"{name}.npy") for name in ("wide", "half", "target")}
    wide = np.lib.format.open_memmap(paths["wide"], "w+", np.float32, (rows, classes))
    narrow = np.lib.format.open_memmap(paths["half"], "w+", half, (rows, classes))
    target = np.lib.format.open_memmap(paths["target"], "w+", np.int64, (rows,))
    for start in range(0, rows, SLAB_ROWS):
        stop = min(rows, start + SLAB_ROWS)
        values = (3 * rng.standard_normal((stop - start, classes), np.float32)).astype(half)
        narrow[start:stop] = values
        wide[start:stop] = values.astype(np.float32)
        target[start:stop] = rng.integers(0, classes, stop - start)
    for array in (wide, narrow, target):
        array.flush()
    return paths


def run_eval(pred, target, threads):
    """(seconds of the evaluation as ``crossent eval`` reports it, the loss)."""
    command = [sys.executable, "-m", "crossent", "eval", "cross_entropy", pred, target,
               "--json", "--quiet", "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    report = json.loads(done.stdout)
    return report["seconds"], report["loss"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    half = np.dtype(np.float16)
    with tempfile.TemporaryDirectory() as directory:
        paths = write_files(directory, args.rows, args.classes, half)
        for name in ("wide", "half", "target"):   # into the page cache
            np.load(paths[name], mmap_mode="r").sum()
        best = {"wide": float("inf"), "half": float("inf")}
        values = {}
        for _ in range(args.repeats):
            for name in ("wide", "half"):
                seconds, values[name] = run_eval(paths[name], paths["target"], args.threads)
                best[name] = min(best[name], seconds)
    size = f"{args.rows} x {args.classes}"
    print(f"crossent eval cross_entropy, {size}, {args.threads} threads, best of {args.repeats}")
    print(f"  float32 file: {best['wide']:.3f} s")
    print(f"  float16 file: {best['half']:.3f} s")
    print(f"  ratio float16 / float32: {best['half'] / best['wide']:.2f} (goal <= 0.6)")
    print(f"  losses: float32 file {values['wide']!r}, float16 file {values['half']!r}")


if __name__ == "__main__":
    main()
