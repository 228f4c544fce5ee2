"""crossent's softmax cross-entropy against the floor of its precision.

    python benchmarks/floor.py                    # the row cases, 2 threads
    python benchmarks/floor.py --eval-rows 10000000 --cases none
    python benchmarks/floor.py --fma              # the floor with fused multiply-adds

``benchmarks/floor.c`` holds the least a softmax cross-entropy can do with
crossent's exp and float64 row sums, with no layout, range or NaN handling.
This script compiles it with the C compiler (``CC``, else ``cc``; OpenMP,
``-march=native``, crossent's floating-point flags) and times:

* each row case, loss + gradient into a fresh array, interleaved, median of
  ``--repeat``: the "exp pass" (the exps of every logit, summed in float64
  and kept, as the gradient needs them: no max pass, no log, no scaling),
  the "floor" (a whole straightforward kernel: max pass, exp pass, log,
  scaling), crossent's plain call and, when installed, JAX's
  ``jit(value_and_grad)`` of optax's formula (``crossent._bench_jax``).
  JAX / exp pass is more than any implementation with crossent's exp and
  float64 row sums could lead JAX by on this machine;
* with ``--eval-rows``, a rows x 100 float32 file (``benchmarks/bench_eval.py``
  writes it), best of ``--repeat``, each mapping the file afresh: reading it
  from the page cache (``bench_eval``'s yardstick), the "exp sums" (the exps
  of every logit summed in float64: the loss's per-element work without the
  max pass or the log), the floor's loss and ``crossent.evaluate``.

docs/performance.md quotes its runs.
"""
import argparse
import ctypes
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import time

import numpy as np

import crossent
from crossent import _bench

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, os.pardir, "csrc")
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math",
         "-fopenmp", "-fPIC", "-shared"]
CASES = {"65536x10": (65536, 10), "4096x1000": (4096, 1000), "256x32000": (256, 32000),
         "32x128000": (32, 128000)}


def build(directory, fma=False):
    """floor.c compiled into directory, loaded, its argument types set.  With
    fma, the compiler may fuse multiplies and adds (-ffp-contract=fast): the
    exp's cost were crossent's SIMD variants allowed to round differently
    from one another."""
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[:1]
    flags = [("-ffp-contract=fast" if fma and flag == "-ffp-contract=off" else flag)
             for flag in FLAGS]
    library = os.path.join(directory, "floor.so")
    subprocess.run(compiler + flags + ["-I", CSRC, os.path.join(HERE, "floor.c"), "-o", library],
                   check=True)
    lib = ctypes.CDLL(library)
    pointer, size = ctypes.c_void_p, ctypes.c_long
    lib.floor_loss.argtypes = [pointer, pointer, size, size]
    lib.floor_loss.restype = ctypes.c_double
    lib.floor_loss_grad.argtypes = [pointer, pointer, size, size, pointer]
    lib.floor_loss_grad.restype = ctypes.c_double
    lib.floor_exp_pass.argtypes = [pointer, size, pointer]
    lib.floor_exp_pass.restype = ctypes.c_double
    lib.floor_exp_sums.argtypes = [pointer, size]
    lib.floor_exp_sums.restype = ctypes.c_double
    lib.floor_set_threads.argtypes = [ctypes.c_int]
    return lib


def address(array):
    return array.ctypes.data


def floor_loss_grad(lib, z, t):
    grad = np.empty_like(z)
    total = lib.floor_loss_grad(address(z), address(t), z.shape[0], z.shape[1], address(grad))
    return total / z.shape[0], grad


def jax_loss_grad(z, t):
    """JAX's timed call on z, t, or None without JAX."""
    try:
        import jax
        from crossent import _bench_jax
    except ImportError:
        return None
    step = jax.jit(jax.value_and_grad(lambda x, y: _bench_jax.cross_entropy(x, y).mean()))
    zj, tj = jax.device_put(z), jax.device_put(t.astype(np.int32))
    jax.block_until_ready(step(zj, tj))   # compiled before any timing
    return lambda: jax.block_until_ready(step(zj, tj))


def interleaved(calls, repeat, min_time=0.05):
    """{name: median seconds per call}: in each of `repeat` rounds, each
    implementation in turn runs back to back for about min_time, after an
    untimed call that wakes its thread pool (crossent bench's timing)."""
    loops = {name: _bench.loops_for(_bench.warm_up(call, min_time), min_time)
             for name, call in calls.items()}
    times = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            times[name].append(_bench.time_calls(call, loops[name]))
    return {name: float(np.median(values)) for name, values in times.items()}


def row_cases(lib, names, repeat, n_threads):
    rng = np.random.default_rng(0)
    print(f"loss + gradient, float32, fresh outputs, {n_threads} threads, median of {repeat}")
    print(f"{'case':>10} {'exp pass ms':>12} {'floor ms':>9} {'crossent ms':>12} {'JAX ms':>8} "
          f"{'crossent/floor':>15} {'JAX/exp pass':>13} {'JAX/crossent':>13}")
    for name in names:
        rows, classes = CASES[name]
        z = rng.standard_normal((rows, classes), dtype=np.float32)
        t = rng.integers(0, classes, rows)
        kept = np.empty_like(z)
        loss, grad = floor_loss_grad(lib, z, t)
        want, want_grad = crossent.cross_entropy(z, t, return_grad=True)
        np.testing.assert_allclose(loss, want, rtol=1e-5)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-9)
        calls = {"floor": lambda: floor_loss_grad(lib, z, t),
                 "exp pass": lambda: lib.floor_exp_pass(address(z), z.size, address(kept)),
                 "crossent": lambda: crossent.cross_entropy(z, t, return_grad=True,
                                                            n_threads=n_threads)}
        jax_call = jax_loss_grad(z, t)
        if jax_call is not None:
            calls["jax"] = jax_call
        ms = {key: value * 1e3 for key, value in interleaved(calls, repeat).items()}
        jax_ms = ms.get("jax", float("nan"))
        print(f"{name:>10} {ms['exp pass']:12.3f} {ms['floor']:9.3f} {ms['crossent']:12.3f} "
              f"{jax_ms:8.3f} {ms['crossent'] / ms['floor']:15.2f} "
              f"{jax_ms / ms['exp pass']:13.2f} "
              f"{jax_ms / ms['crossent']:13.2f}")


def eval_file(lib, rows, repeat, directory):
    sys.path.insert(0, HERE)
    import bench_eval
    pred_path, target_path = bench_eval.write_files(directory, rows, 100)

    def read():
        return float(np.load(pred_path, mmap_mode="r").sum())

    def floor():
        z, t = np.load(pred_path, mmap_mode="r"), np.load(target_path, mmap_mode="r")
        return lib.floor_loss(address(z), address(t), rows, 100) / rows

    def exp_sums():
        z = np.load(pred_path, mmap_mode="r")
        return lib.floor_exp_sums(address(z), z.size)

    def evaluate():
        return crossent.evaluate("cross_entropy", pred_path, target_path)

    read()
    np.testing.assert_allclose(floor(), evaluate(), rtol=1e-6)
    runs = {"read": [], "exp sums": [], "floor": [], "crossent": []}
    calls = {"read": read, "exp sums": exp_sums, "floor": floor, "crossent": evaluate}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            runs[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in runs.items()}
    size_gb = os.path.getsize(pred_path) / 1e9
    print(f"\n{rows} x 100 float32 file ({size_gb:.1f} GB), best of {repeat}, each mapping it afresh")
    for name, seconds in best.items():
        print(f"{name:>9} {seconds:7.3f} s  {seconds / best['read']:5.2f}x the read")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES),
                        help="row cases, comma-separated, or 'none' (default: all)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-rows", type=int, default=0,
                        help="rows of the 100-class file to evaluate (0: none)")
    parser.add_argument("--dir", default=None, help="where the file is written")
    parser.add_argument("--fma", action="store_true",
                        help="compile the floor with fused multiply-adds")
    args = parser.parse_args(argv)
    names = [] if args.cases == "none" else args.cases.split(",")
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"--cases: unknown {', '.join(unknown)}; expected some of {', '.join(CASES)}")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    with tempfile.TemporaryDirectory(prefix="crossent-floor-", dir=args.dir) as directory:
        lib = build(directory, fma=args.fma)
        lib.floor_set_threads(args.threads)
        print(f"crossent {crossent.__version__}, SIMD variant {crossent.info()['simd']}; "
              f"the floor compiled {'with' if args.fma else 'without'} fused multiply-adds")
        if names:
            row_cases(lib, names, args.repeat, args.threads)
        if args.eval_rows:
            eval_file(lib, args.eval_rows, args.repeat, directory)


if __name__ == "__main__":
    main()
