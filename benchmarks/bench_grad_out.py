"""A plain call against the same call writing into a reused buffer.

    python benchmarks/bench_grad_out.py [--threads 2] [--repeat 9] [--cases TEXT]

For every large case of `crossent bench` (contiguous and strided, float32 and
float64): the plain call, which allocates its gradient (or, for an
activation, its output) afresh, against the same call given ``grad_out=``
(``out=``) of a buffer allocated once.  The two alternate within each repeat,
so that both see the same machine load; each repeat is the best of a few
calls.  Prints the medians and their ratio (plain / reused: below 1, the
reused buffer costs time).
"""
import argparse
import inspect
import time

import numpy as np

import crossent
from crossent._bench_cases import LOSSES, all_cases, make_inputs

LARGE = 10**5   # elements of the prediction: the 1 x 10 and 10-element cases are calls, not work


def best_of(call, calls):
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def buffer_keyword(function_name):
    """grad_out for a loss, out for an activation that takes one, else None."""
    keyword = "grad_out" if function_name in LOSSES else "out"
    return keyword if keyword in inspect.signature(getattr(crossent, function_name)).parameters else None


def reused_call(case, inputs):
    """The plain call and the same call writing into a buffer of its own."""
    function = getattr(crossent, case.function)
    args, kwargs = inputs.args, dict(inputs.kwargs)
    plain = lambda: function(*args, **kwargs)  # noqa: E731
    result = plain()
    first = result[1] if case.function in LOSSES else result
    buffer = np.empty(first.shape, first.dtype)
    kwargs[buffer_keyword(case.function)] = buffer
    return plain, lambda: function(*args, **kwargs)  # noqa: E731


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--calls", type=int, default=5, help="calls per repeat (best taken)")
    parser.add_argument("--cases", action="append", default=[],
                        help="only cases whose id contains TEXT (repeatable)")
    args = parser.parse_args()
    crossent.set_num_threads(args.threads)
    cases = [c for c in all_cases() if np.prod(c.shape) >= LARGE and buffer_keyword(c.function)
             and (not args.cases or any(text in c.id for text in args.cases))]
    print(f"{'case':64s} {'plain':>9s} {'reused':>9s} {'plain/reused':>12s}")
    ratios = []
    for case in cases:
        plain, reused = reused_call(case, make_inputs(case))
        samples = {"plain": [], "reused": []}
        for _ in range(args.repeat):
            samples["plain"].append(best_of(plain, args.calls))
            samples["reused"].append(best_of(reused, args.calls))
        a, b = (float(np.median(samples[k])) for k in ("plain", "reused"))
        ratios.append(a / b)
        print(f"{case.id:64s} {a * 1e3:7.3f}ms {b * 1e3:7.3f}ms {a / b:11.2f}x", flush=True)
    print(f"\n{len(ratios)} cases, {args.threads} threads, {crossent.info()['simd']}: "
          f"plain/reused from {min(ratios):.2f}x to {max(ratios):.2f}x, "
          f"median {float(np.median(ratios)):.2f}x")


if __name__ == "__main__":
    main()
