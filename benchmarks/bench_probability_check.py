"""The probability check of binary_cross_entropy, categorical_cross_entropy
and focal_loss: the facade's check against NumPy's min and max alone, in one
process, calls alternated.

    python benchmarks/bench_probability_check.py [--rounds 10] [--calls 40]

4096 x 1000 float32 with return_grad=True on 2 threads, strided (buf[:, ::2])
and contiguous, the median time of a call.  The contiguous calls of these
losses take the one-call fast paths, whose own check is unchanged, so they
show the noise of the run.  Timings on a shared machine are noisy: compare
the two columns of one run.
"""
import argparse
import time

import numpy as np

import crossent
from crossent import _api


def min_max_check(module, p, name, n_threads=None):
    """The check with NumPy's min and max for every layout (the alternative)."""
    if p.size and not (p.min() >= 0 and p.max() <= 1):
        bad = np.flatnonzero((p < 0) | (p > 1))
        if bad.size:
            where = tuple(int(i) for i in np.unravel_index(bad[0], p.shape))
            raise ValueError(f"{name}: expected probabilities in [0, 1], got {p[where]} "
                             f"at position {where}")


def median_ms(call, calls):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def cases():
    rng = np.random.default_rng(0)
    n, c = 4096, 1000
    buf = rng.random((n, 2 * c), dtype=np.float32)
    buf /= buf.sum(1, keepdims=True) / 2
    strided, contiguous = buf[:, ::2], np.ascontiguousarray(buf[:, ::2])
    labels = rng.integers(0, c, n)
    y = (rng.random((n, c)) < 0.5).astype(np.float32)
    y_strided = np.repeat(y, 2, axis=1)[:, ::2]
    return {
        "categorical strided": lambda: crossent.categorical_cross_entropy(
            strided, labels, return_grad=True, n_threads=2),
        "categorical contiguous": lambda: crossent.categorical_cross_entropy(
            contiguous, labels, return_grad=True, n_threads=2),
        "bce strided": lambda: crossent.binary_cross_entropy(
            strided, y_strided, return_grad=True, n_threads=2),
        "bce contiguous": lambda: crossent.binary_cross_entropy(
            contiguous, y, return_grad=True, n_threads=2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    facade_check = _api._check_probabilities
    try:
        for name, call in cases().items():
            for _ in range(10):
                call()
            results = {min_max_check: [], facade_check: []}
            for _ in range(args.rounds):
                for check, times in results.items():
                    _api._check_probabilities = check
                    times.append(median_ms(call, args.calls))
            print(f"{name:24s} min/max {np.median(results[min_max_check]):7.2f} ms   "
                  f"crossent {np.median(results[facade_check]):7.2f} ms")
    finally:
        _api._check_probabilities = facade_check


if __name__ == "__main__":
    main()
