"""The roofline of this machine for crossent's standard cases.

    python benchmarks/roofline.py [--threads N] [--json PATH] [--against RUN.json]

Measures, on this machine, now:

* copy bandwidth: ``numpy.copyto`` of a 256 MiB float32 array into a reused
  one, on 1 thread and split over N threads (NumPy drops the GIL for the
  copy), counted as bytes read + bytes written; the bound uses the better;
* exp and log1p throughput: crossent's own vectorised float32/float64
  primitives (``crossent._primitives``, the SIMD variant in use) on an
  L1/L2-resident block, per element and per thread; the softmax cases are
  bounded with ``exp_moderate``, the faster exp their rows of ordinary logits
  take (docs/numerics.md), the binary ones with ``exp`` + ``log1p``;
* first-touch cost: writing a fresh 64 MiB allocation against writing a reused
  one, per MB (what a new gradient array costs on top of the kernel).

and from them the lower bound of each standard case (loss + gradient):
``max(bytes moved / bandwidth, elements x exp cost / N)``, bytes moved being the
logits read plus the gradient written (plus the labels). Prints a table and,
with --json, saves everything (docs/performance.md quotes a run).

With --against, a saved ``crossent bench --json`` run (same machine, same
threads) is set against the bounds: per case crossent's plain call, the
fastest peer of that run, crossent's speed-up over it and its distance to the
bound, checked against the speed goals of docs/performance.md (>= 3x the
fastest peer, <= 2x the bound; the 1 x 10 call under 3 us).
"""
import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import crossent

try:
    from crossent import _primitives
except ImportError:  # the test-only binding is built with the Cython backend
    _primitives = None

# (name, shape, dtype, transcendental calls per element)
CASES = [
    ("cross_entropy 65536x10", (65536, 10), np.float32, "exp"),
    ("cross_entropy 4096x1000", (4096, 1000), np.float32, "exp"),
    ("cross_entropy 256x32000", (256, 32000), np.float32, "exp"),
    ("cross_entropy 32x128000", (32, 128000), np.float32, "exp"),
    ("bce_with_logits 10^6", (10**6,), np.float32, "exp+log1p"),
    ("bce_with_logits 10^7", (10**7,), np.float32, "exp+log1p"),
]
# The same cases in `crossent bench`, and the one-call case (1 x 10).
BENCH_IDS = {
    "cross_entropy 65536x10": "cross_entropy[65536x10-float32-contiguous]",
    "cross_entropy 4096x1000": "cross_entropy[4096x1000-float32-contiguous]",
    "cross_entropy 256x32000": "cross_entropy[256x32000-float32-contiguous]",
    "cross_entropy 32x128000": "cross_entropy[32x128000-float32-contiguous]",
    "bce_with_logits 10^6": "binary_cross_entropy_with_logits[1000000-float32-contiguous]",
    "bce_with_logits 10^7": "binary_cross_entropy_with_logits[10000000-float32-contiguous]",
}
ONE_CALL_ID = "cross_entropy[1x10-float32-contiguous]"
PEERS = ("torch", "sklearn", "jax")
PEER_GOAL, BOUND_GOAL, ONE_CALL_GOAL_S = 3.0, 2.0, 3e-6


def best_of(call, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def copy_bandwidth(n_threads, mib=256, repeats=7):
    """Bytes read + written per second by an N-thread copy (GB/s)."""
    n = mib * 2**20 // 4
    src = np.ones(n, np.float32)
    dst = np.ones(n, np.float32)
    parts = np.array_split(np.arange(n), n_threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]
    with ThreadPoolExecutor(n_threads) as pool:
        def copy():
            list(pool.map(lambda b: np.copyto(dst[b[0]:b[1]], src[b[0]:b[1]]), bounds))
        copy()
        seconds = best_of(copy, repeats)
    return 2 * src.nbytes / seconds / 1e9


def primitive_ns(name, dtype, n=16384, loops=200, variant=None):
    """ns per element of crossent's vectorised primitive, one thread
    (variant: a SIMD variant's, default the one in use)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-20, 20, n).astype(dtype)
    if name == "log1p":
        x = np.abs(x)
    if name == "exp_moderate":   # its range: [-87.5, 0]
        x = -np.abs(x)
    out = np.empty_like(x)
    variant = variant or _primitives.active()

    def run():
        for _ in range(loops):
            _primitives.block(variant, name, x, out)
    run()
    return best_of(run, 5) / (loops * n) * 1e9


def first_touch_ms_per_mb(mib=64, repeats=5):
    n = mib * 2**20 // 4
    reused = np.empty(n, np.float32)
    reused.fill(1)
    warm = best_of(lambda: reused.fill(2), repeats)
    fresh = best_of(lambda: np.empty(n, np.float32).fill(2), repeats)
    return max(fresh - warm, 0.0) * 1e3 / (mib * 1.048576)


def case_bounds(bandwidth, exp_ns, log1p_ns, n_threads, softmax_exp_ns=None):
    """The bound of each standard case; the softmax cases ("exp" work) use
    softmax_exp_ns per element when given (the moderate exp), else exp_ns."""
    rows = []
    for name, shape, dtype, work in CASES:
        elements = int(np.prod(shape))
        itemsize = np.dtype(dtype).itemsize
        label_bytes = shape[0] * 8 if len(shape) == 2 else elements * itemsize
        moved = 2 * elements * itemsize + label_bytes  # logits in, gradient out, labels in
        if "log1p" in work:
            per_element = exp_ns + log1p_ns
        else:
            per_element = exp_ns if softmax_exp_ns is None else softmax_exp_ns
        memory_ms = moved / (bandwidth * 1e9) * 1e3
        compute_ms = elements * per_element / n_threads * 1e-6
        rows.append({"case": name, "elements": elements, "bytes_moved": moved,
                     "memory_ms": memory_ms, "compute_ms": compute_ms,
                     "bound_ms": max(memory_ms, compute_ms),
                     "limit": "memory" if memory_ms >= compute_ms else "exp throughput"})
    return rows


def same_moment_ratios(n_threads, bandwidth, rounds):
    """Each case's plain call over its bound, the two measured in the same
    round, `rounds` times; the median per case.  On a shared VM the exp probe
    alone moves by up to 2x from one minute to the next (exp_moderate 0.40 to
    0.75 ns within an hour on the Intel Xeon of docs/performance.md), so a
    bound probed minutes away from the run says little about the run."""
    from crossent._bench_cases import Case, make_inputs
    calls = {}
    for name, shape, dtype, _ in CASES:
        function = BENCH_IDS[name].split("[")[0]
        inputs = make_inputs(Case(function, shape, np.dtype(dtype).name, "contiguous"))
        calls[name] = (lambda f=getattr(crossent, function), a=inputs.args, k=inputs.kwargs:
                       f(*a, **k))
    ratios = {name: [] for name in calls}
    saved_threads = crossent.get_num_threads()
    crossent.set_num_threads(n_threads)
    try:
        for _ in range(rounds):
            rows = case_bounds(bandwidth, primitive_ns("exp", np.float32),
                               primitive_ns("log1p", np.float32), n_threads,
                               softmax_exp_ns=primitive_ns("exp_moderate", np.float32))
            for row in rows:
                call = calls[row["case"]]
                call()
                ratios[row["case"]].append(best_of(call, 5) * 1e3 / row["bound_ms"])
    finally:
        crossent.set_num_threads(saved_threads)
    return {name: float(np.median(values)) for name, values in ratios.items()}


def loss_only_per_element(n_threads, rounds=7, rows=65536, classes=100):
    """The loss-only evaluation kernel (``softmax_xent_index_eval``: what
    ``crossent eval cross_entropy`` runs) on rows x classes float32 logits
    with index targets, in ns per element per thread, against the moderate
    exp probed in the same round: {"ns": median, "exp_ns": median, "ratio":
    median of the rounds' ratios}.  The goal is a ratio <= 2."""
    from crossent import _backends
    rng = np.random.default_rng(0)
    z = (rng.random((rows, classes), dtype=np.float32) * 8 - 4)[None]
    t = rng.integers(0, classes, rows)[None]
    module = _backends.module(_backends.get_backend())
    call = lambda: module.softmax_xent_index_eval(z, t, None, None, -100, 0.0, None,  # noqa: E731
                                                  None, n_threads, 0.0)
    samples = {"ns": [], "exp_ns": [], "ratio": []}
    variant = module.info()["simd"]   # CROSSENT_SIMD picks it for the backends
    for _ in range(rounds):
        exp_ns = primitive_ns("exp_moderate", np.float32, variant=variant)
        call()
        ns = best_of(call, 5) / z.size * n_threads * 1e9
        samples["ns"].append(ns)
        samples["exp_ns"].append(exp_ns)
        samples["ratio"].append(ns / exp_ns)
    return {"simd": variant, **{key: float(np.median(values)) for key, values in samples.items()}}


def against_run(rows, run, same_moment=None):
    """The goals table from the bounds `rows` and a saved bench `run`: one dict
    per case with crossent's plain call, the fastest correct peer and both
    ratios; cases the run lacks are left out.  With `same_moment` (from
    same_moment_ratios), the bound goal is judged on those ratios."""
    seconds = {(r["case"], r["impl"]): r["seconds"] for r in run["results"]
               if r.get("correct") and r.get("seconds")}
    table = []
    for row in rows:
        case = BENCH_IDS[row["case"]]
        ours = seconds.get((case, "default"))
        peers = {p: seconds[(case, p)] for p in PEERS if (case, p) in seconds}
        if ours is None:
            continue
        entry = {"case": row["case"], "crossent_ms": ours * 1e3, "bound_ms": row["bound_ms"],
                 "times_bound": ours * 1e3 / row["bound_ms"]}
        if peers:
            peer = min(peers, key=peers.get)
            entry.update(peer=peer, peer_ms=peers[peer] * 1e3, times_peer=peers[peer] / ours)
        times_bound = entry["times_bound"]
        if same_moment is not None and row["case"] in same_moment:
            times_bound = entry["times_bound_same_moment"] = same_moment[row["case"]]
        entry["goals_met"] = (entry.get("times_peer", 0.0) >= PEER_GOAL
                              and times_bound <= BOUND_GOAL)
        table.append(entry)
    one_call = seconds.get((ONE_CALL_ID, "default"))
    if one_call is not None:
        table.append({"case": "cross_entropy 1x10, one call", "crossent_ms": one_call * 1e3,
                      "goals_met": one_call < ONE_CALL_GOAL_S})
    return table


def print_against(table):
    print(f"\n{'case':28s} {'crossent':>10s} {'fastest peer':>20s} {'x peer':>7s} "
          f"{'bound':>9s} {'x bound':>8s} {'same moment':>11s}  goals")
    for e in table:
        peer = f"{e['peer']} {e['peer_ms']:.3g}ms" if "peer" in e else "-"
        ratio = f"{e['times_peer']:6.2f}x" if "peer" in e else "      -"
        bound = (f"{e['bound_ms']:7.2f}ms {e['times_bound']:7.2f}x" if "bound_ms" in e
                 else f"{'-':>9s} {'-':>8s}")
        ours = (f"{e['crossent_ms']:8.4g}ms" if e["crossent_ms"] >= 0.1
                else f"{e['crossent_ms'] * 1e3:8.4g}us")
        now = (f"{e['times_bound_same_moment']:10.2f}x" if "times_bound_same_moment" in e
               else f"{'-':>11s}")
        print(f"{e['case']:28s} {ours} {peer:>20s} {ratio} {bound} {now}  "
              f"{'met' if e['goals_met'] else 'MISSED'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--against", metavar="RUN.json",
                        help="a `crossent bench --json` run to set against the bounds")
    parser.add_argument("--loss-only", type=int, default=0, metavar="ROUNDS",
                        help="also time the loss-only evaluation kernel (65536 x 100 float32) "
                             "against the moderate exp, ROUNDS times")
    parser.add_argument("--same-moment", type=int, default=7, metavar="ROUNDS",
                        help="with --against: also time crossent's plain calls against a "
                             "bound probed in the same round, ROUNDS times (0: off)")
    args = parser.parse_args(argv)
    run = None
    if args.against:
        with open(args.against) as f:
            run = json.load(f)
    if _primitives is None:
        sys.exit("roofline: needs crossent._primitives (a build with Cython)")
    probe = {
        "copy_GBps_1_thread": copy_bandwidth(1),
        f"copy_GBps_{args.threads}_threads": copy_bandwidth(args.threads),
        "exp_f32_ns": primitive_ns("exp", np.float32),
        "exp_moderate_f32_ns": primitive_ns("exp_moderate", np.float32),
        "exp_f64_ns": primitive_ns("exp", np.float64),
        "log1p_f32_ns": primitive_ns("log1p", np.float32),
        "first_touch_ms_per_MB": first_touch_ms_per_mb(),
    }
    # A lower bound takes the better of the two (on a VM, more threads may not
    # mean more bandwidth).
    bandwidth = max(probe["copy_GBps_1_thread"], probe[f"copy_GBps_{args.threads}_threads"])
    rows = case_bounds(bandwidth, probe["exp_f32_ns"], probe["log1p_f32_ns"], args.threads,
                       softmax_exp_ns=probe["exp_moderate_f32_ns"])
    print(f"machine: {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"SIMD {_primitives.active()}")
    for key, value in probe.items():
        print(f"  {key:24s} {value:8.3f}")
    print(f"\n{'case':28s} {'MB moved':>9s} {'memory':>9s} {'exp work':>9s} {'bound':>9s}  limit")
    for row in rows:
        print(f"{row['case']:28s} {row['bytes_moved'] / 1e6:9.1f} {row['memory_ms']:7.2f}ms "
              f"{row['compute_ms']:7.2f}ms {row['bound_ms']:7.2f}ms  {row['limit']}")
    loss_only = None
    if args.loss_only:
        loss_only = loss_only_per_element(args.threads, args.loss_only)
        print(f"\nloss-only cross_entropy 65536x100 float32 ({loss_only['simd']}): "
              f"{loss_only['ns']:.3f} ns per element "
              f"per thread, moderate exp {loss_only['exp_ns']:.3f} ns: "
              f"{loss_only['ratio']:.2f}x the exp bound (goal <= {BOUND_GOAL:g}x)")
    table = None
    if run is not None:
        same_moment = (same_moment_ratios(args.threads, bandwidth, args.same_moment)
                       if args.same_moment > 0 else None)
        table = against_run(rows, run, same_moment)
        print_against(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "simd": _primitives.active(),
                       "crossent": crossent.info(), "probe": probe, "cases": rows,
                       "against": table, "loss_only": loss_only}, f, indent=1)


if __name__ == "__main__":
    main()
