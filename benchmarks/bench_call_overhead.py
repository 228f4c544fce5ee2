"""Per-call cost of every loss on a tiny batch, against NumPy's own call cost.

A 1 x 10 call does almost no arithmetic, so its time is the cost of crossing
from Python into the kernel: validation, reading the arrays' pointers and
strides, the reduction.  This is what small-batch users pay per call.

    python benchmarks/bench_call_overhead.py [--repeat 7] [--number 20000]

Prints the best time per call (us) of each loss's plain call and of its
calls with options, on each compiled backend, and NumPy's own cost for one
small ufunc call and for ``np.sum`` in the same run (the floor the machine
sets on any call that touches an array).  Timings on a shared machine are
noisy: compare the rows of one run, not runs.
"""
import argparse
import timeit

import numpy as np

import crossent

COMPILED = [name for name in ("cython", "c") if name in crossent.backends()]


def tiny_inputs(dtype=np.float32, n_classes=10):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1, n_classes)).astype(dtype)
    return {
        "z": z,
        "probs": crossent.softmax(z),
        "log_probs": crossent.log_softmax(z),
        "labels": np.array([3]),
        "soft": crossent.softmax(rng.normal(size=(1, n_classes)).astype(dtype)),
        "y01": (rng.random((1, n_classes)) < 0.5).astype(dtype),
        "p01": np.clip(rng.random((1, n_classes)), 0.01, 0.99).astype(dtype),
        "class_weight": rng.random(n_classes) + 0.5,
        "sample_weight": np.array([0.5], dtype=dtype),
        "elem_weight": (rng.random((1, n_classes)) + 0.5).astype(dtype),
    }


def cases(x):
    """(loss, options, call) for every loss: call(**kw) makes the 1 x 10 call
    with the gradient, kw adding backend= when given."""
    z, labels = x["z"], x["labels"]
    ce, bce = crossent.cross_entropy, crossent.binary_cross_entropy
    bcel, nll = crossent.binary_cross_entropy_with_logits, crossent.nll_loss
    cat, mse = crossent.categorical_cross_entropy, crossent.mse_loss
    focal, kl = crossent.focal_loss, crossent.kl_div
    weights = {"weight": x["class_weight"], "sample_weight": x["sample_weight"]}
    elem = {"weight": x["elem_weight"], "sample_weight": x["elem_weight"]}
    return [
        ("cross_entropy", "plain", lambda **kw: ce(z, labels, return_grad=True, **kw)),
        ("cross_entropy", "weights", lambda **kw: ce(z, labels, return_grad=True, **weights, **kw)),
        ("cross_entropy", "ignore_index+smoothing",
         lambda **kw: ce(z, labels, return_grad=True, ignore_index=1, label_smoothing=0.1, **kw)),
        ("cross_entropy", "soft targets", lambda **kw: ce(z, x["soft"], return_grad=True, **kw)),
        ("nll_loss", "plain", lambda **kw: nll(x["log_probs"], labels, return_grad=True, **kw)),
        ("nll_loss", "weights", lambda **kw: nll(x["log_probs"], labels, return_grad=True, **weights, **kw)),
        ("categorical_cross_entropy", "plain", lambda **kw: cat(x["probs"], labels, return_grad=True, **kw)),
        ("categorical_cross_entropy", "weights",
         lambda **kw: cat(x["probs"], labels, return_grad=True, **weights, **kw)),
        ("binary_cross_entropy_with_logits", "plain", lambda **kw: bcel(z, x["y01"], return_grad=True, **kw)),
        ("binary_cross_entropy_with_logits", "weights+pos_weight",
         lambda **kw: bcel(z, x["y01"], return_grad=True, pos_weight=x["elem_weight"][0], **elem,
                           **kw)),
        ("binary_cross_entropy", "plain", lambda **kw: bce(x["p01"], x["y01"], return_grad=True, **kw)),
        ("binary_cross_entropy", "weights",
         lambda **kw: bce(x["p01"], x["y01"], return_grad=True, **elem, **kw)),
        ("mse_loss", "plain", lambda **kw: mse(z, x["y01"], return_grad=True, **kw)),
        ("mse_loss", "weights", lambda **kw: mse(z, x["y01"], return_grad=True, **elem, **kw)),
        ("focal_loss", "plain", lambda **kw: focal(z, x["y01"], return_grad=True, **kw)),
        ("focal_loss", "weights", lambda **kw: focal(z, x["y01"], return_grad=True, **elem, **kw)),
        ("kl_div", "plain", lambda **kw: kl(x["log_probs"], x["soft"], return_grad=True, **kw)),
        ("kl_div", "log_target+sum",
         lambda **kw: kl(x["log_probs"], x["log_probs"], return_grad=True, log_target=True,
                         reduction="sum", **kw)),
        ("categorical_cross_entropy", "soft targets",
         lambda **kw: cat(x["probs"], x["soft"], return_grad=True, **kw)),
        ("cross_entropy", "soft+weights",
         lambda **kw: ce(z, x["soft"], return_grad=True, **weights, **kw)),
        ("softmax", "plain", lambda **kw: crossent.softmax(z, **kw)),
        ("sigmoid", "plain", lambda **kw: crossent.sigmoid(z, **kw)),
    ]


def best_us_per_call(fn, number, repeat):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def measure(number=20_000, repeat=7):
    """[(label, options, backend, us per call)]: NumPy's floor, then each
    case as a plain call (the default backend) and with backend= each
    compiled one (an option: it takes the general path)."""
    x = tiny_inputs()
    a, b = x["z"], x["y01"]
    rows = [("numpy add (1 x 10)", "", "", best_us_per_call(lambda: np.add(a, b), number, repeat)),
            ("numpy sum (1 x 10)", "", "", best_us_per_call(lambda: np.sum(a), number, repeat))]
    default = crossent.get_backend()
    for loss, variant, call in cases(x):
        rows.append((loss, variant, f"default ({default})", best_us_per_call(call, number, repeat)))
        for name in COMPILED:
            rows.append((loss, variant, f"backend={name!r}",
                         best_us_per_call(lambda: call(backend=name), number, repeat)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing")
    parser.add_argument("--repeat", type=int, default=7, help="timings (the best is kept)")
    args = parser.parse_args(argv)
    print(f"{'call':34s} {'options':24s} {'backend':18s} {'us/call':>8s}")
    for label, variant, backend, us in measure(args.number, args.repeat):
        print(f"{label:34s} {variant:24s} {backend:18s} {us:8.2f}")


if __name__ == "__main__":
    main()
