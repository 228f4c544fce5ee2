"""A/B: two builds of crossent timed on the same cases, alternated in one run.

Each build is a directory holding an installed ``crossent`` package (for
example a copy of ``.venv/lib/python3.11/site-packages/crossent`` made before
a change).  For every round and every case, a fresh process imports one build
and times the case; the builds alternate round by round, so a change in the
machine's load hits both alike.  Prints, per case, each build's median over
the rounds and the ratio new / old.

    python benchmarks/ab.py OLD_DIR NEW_DIR [--rounds 5] [--threads 2] [--quick]

The cases are those of the saved full run (``crossent bench``'s grid,
float32, both layouts), with the gradient, fresh outputs as a plain call
makes them.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

CASES = [
    ("cross_entropy", (65536, 10), "contiguous"),
    ("cross_entropy", (4096, 1000), "contiguous"),
    ("cross_entropy", (4096, 1000), "strided"),
    ("cross_entropy", (256, 32000), "contiguous"),
    ("cross_entropy", (32, 128000), "contiguous"),
    ("cross_entropy", (1, 10), "contiguous"),
    ("nll_loss", (4096, 1000), "contiguous"),
    ("nll_loss", (65536, 10), "contiguous"),
    ("categorical_cross_entropy", (4096, 1000), "contiguous"),
    ("softmax", (4096, 1000), "contiguous"),
    ("log_softmax", (65536, 10), "contiguous"),
    ("logsumexp", (4096, 1000), "contiguous"),
    ("binary_cross_entropy_with_logits", (10**6,), "contiguous"),
    ("binary_cross_entropy_with_logits", (10**7,), "contiguous"),
    ("binary_cross_entropy_with_logits", (10**6,), "strided"),
    ("binary_cross_entropy", (10**6,), "contiguous"),
    ("mse_loss", (10**6,), "contiguous"),
    ("sigmoid", (10**6,), "contiguous"),
]

# Run in the child: time every case with the build on sys.path, print JSON.
CHILD = r"""
import json, sys, time
import numpy as np
import crossent
from crossent import _bench_cases as bc
threads, backend = int(sys.argv[1]), sys.argv[2]
crossent.set_num_threads(threads)
out = {}
for function, shape, layout in json.loads(sys.argv[3]):
    case = bc.Case(function, tuple(shape), "float32", layout)
    inputs = bc.make_inputs(case)
    call = getattr(crossent, function)
    kwargs = dict(inputs.kwargs)
    if backend != "default":
        kwargs["backend"] = backend
    call(*inputs.args, **kwargs)
    times, deadline = [], time.perf_counter() + 0.3
    while len(times) < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        call(*inputs.args, **kwargs)
        times.append(time.perf_counter() - start)
    out[case.id] = min(times)
print(json.dumps(out))
"""


def run_build(path, cases, threads, backend):
    env = dict(os.environ, PYTHONPATH=path)
    result = subprocess.run([sys.executable, "-c", CHILD, str(threads), backend, json.dumps(cases)],
                            env=env, capture_output=True, text=True, check=True, cwd="/")
    return json.loads(result.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", default="default",
                        help="'default' (the plain call), 'cython' or 'c' (backend=)")
    parser.add_argument("--quick", action="store_true", help="the first six cases only")
    parser.add_argument("--cases", help="only the functions whose name contains this")
    args = parser.parse_args(argv)
    cases = [[f, list(s), lay] for f, s, lay in (CASES[:6] if args.quick else CASES)
             if args.cases is None or args.cases in f]
    times = {"old": {}, "new": {}}
    for round_ in range(args.rounds):
        order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
        for build in order:
            for case_id, seconds in run_build(getattr(args, build), cases, args.threads,
                                              args.backend).items():
                times[build].setdefault(case_id, []).append(seconds)
    print(f"{'case':58s} {'old ms':>9s} {'new ms':>9s} {'new/old':>8s}")
    for case_id in times["old"]:
        old = statistics.median(times["old"][case_id]) * 1e3
        new = statistics.median(times["new"][case_id]) * 1e3
        print(f"{case_id:58s} {old:9.3f} {new:9.3f} {new / old:8.2f}")


if __name__ == "__main__":
    main()
