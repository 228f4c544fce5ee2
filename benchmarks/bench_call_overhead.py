"""Per-call overhead of the compiled backends on a tiny batch.

A 1 x 10 ``softmax_xent_index`` call (loss and gradient, one thread) does
almost no arithmetic, so its time is the cost of crossing from Python into the
kernel: argument parsing, reading the arrays' pointers and strides, the block
runner.  This is what decides the binding of the C backend (see
csrc/crossent_cbinding.c) and what small-batch users pay per call.

    python benchmarks/bench_call_overhead.py [--repeat 7] [--number 100000]

Prints the best time per call (ns) for each kernel module that is built, and
for the public ``crossent.cross_entropy`` on each backend.  Timings on a
shared machine are noisy: compare the rows of one run, not runs.
"""
import argparse
import importlib
import timeit

import numpy as np

KERNEL_MODULES = {
    "cython": "crossent._cython_backend",
    "c": "crossent._c_backend",
    "numpy": "crossent._reference",
}


def tiny_problem(dtype=np.float32, n_classes=10):
    rng = np.random.default_rng(0)
    z3 = rng.normal(size=(1, 1, n_classes)).astype(dtype)
    target2 = np.array([[3]], dtype=np.int64)
    grad_out3 = np.empty_like(z3)
    return z3, target2, grad_out3


def kernel_call(module, z3, target2, grad_out3):
    """A zero-argument callable doing one kernel call, and its result."""
    kernel = module.softmax_xent_index
    args = (z3, target2, None, None, -100, 0.0, None, grad_out3, 1.0, 1, 0.0)
    return lambda: kernel(*args)


def best_ns_per_call(fn, number, repeat):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e9


def measure(number=100_000, repeat=7):
    """{label: ns per call} for every backend that imports."""
    z3, target2, grad_out3 = tiny_problem()
    results = {}
    loss_by_backend = {}
    for name, module_name in KERNEL_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        call = kernel_call(module, z3, target2, grad_out3)
        loss_by_backend[name] = call()
        # the NumPy reference is ~100x slower: fewer calls give the same precision
        n = number if name != "numpy" else max(1, number // 100)
        results[f"kernel  {name}"] = best_ns_per_call(call, n, repeat)
    reference = loss_by_backend.get("numpy")
    for name, loss in loss_by_backend.items():
        assert reference is None or np.isclose(loss, reference, rtol=1e-5), (name, loss, reference)
    try:
        import crossent
    except ImportError:
        return results
    logits, labels = z3[0], target2[0]
    for name in loss_by_backend:
        if name not in crossent.backends():
            continue

        def public_call(name=name):
            return crossent.cross_entropy(logits, labels, return_grad=True, backend=name, n_threads=1)

        n = number // 10 if name != "numpy" else max(1, number // 100)
        results[f"public  {name}"] = best_ns_per_call(public_call, n, repeat)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100_000, help="calls per timing")
    parser.add_argument("--repeat", type=int, default=7, help="timings (the best is kept)")
    args = parser.parse_args(argv)
    for label, ns in measure(args.number, args.repeat).items():
        print(f"{label:16s} {ns:10.0f} ns/call")


if __name__ == "__main__":
    main()
