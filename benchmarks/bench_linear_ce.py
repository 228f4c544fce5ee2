"""linear_cross_entropy against its peers: time (loss and all gradients) and
peak memory, float32.

    python benchmarks/bench_linear_ce.py [--threads 2] [--repeat 3] [--cases 0,1,2]
                                         [--memory] [--json PATH]

Each case is timed five ways in the same run, each method in a process of
its own (one warm-up, then --repeat timed calls; the median): in one
process, the thread pools of torch (OpenMP), JAX (XLA) and OpenBLAS spin
after their calls and take the CPU from the next method's threads, which
doubled the GEMMs' time on a 2-core machine.  The methods:
  crossent      crossent.linear_cross_entropy(..., return_grad=True)
  gemm floor    the three GEMMs alone (np.matmul: logits, dh, dW)
  torch mat.    F.linear + F.cross_entropy + backward
  torch chunked F.linear_cross_entropy(..., options=LinearCrossEntropyOptions())
  jax           jit(value_and_grad) of the materialised formula
With --memory, each method's peak memory beyond its inputs and returned
gradients is measured in a fresh process: peak RSS (VmHWM, which includes
the BLAS's per-thread work buffers), and for crossent NumPy's own
allocations (tracemalloc).  Methods
whose N x V logits would not fit in half the available memory are skipped.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc

CASES = [(2048, 512, 32000), (1024, 512, 128256), (8192, 256, 128256)]
METHODS = ["crossent", "gemm", "torch", "torch_chunked", "jax"]
MATERIALISED = {"torch", "jax", "gemm"}


def _inputs(n, d, v, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal((v, d), dtype=np.float32) * np.float32(d ** -0.5)
    t = rng.integers(0, v, n)
    return h, w, t


def make_runner(method, h, w, t, threads):
    """A function running one loss-and-gradients evaluation by ``method``."""
    import numpy as np
    if method == "crossent":
        import crossent
        return lambda: crossent.linear_cross_entropy(h, w, t, return_grad=True,
                                                     n_threads=threads)
    if method == "gemm":
        logits = np.empty((h.shape[0], w.shape[0]), np.float32)
        dh, dw = np.empty_like(h), np.empty_like(w)

        def gemms():
            np.matmul(h, w.T, out=logits)
            np.matmul(logits, w, out=dh)
            np.matmul(logits.T, h, out=dw)
        return gemms
    if method in ("torch", "torch_chunked"):
        import torch
        F = torch.nn.functional
        torch.set_num_threads(threads)
        ht = torch.from_numpy(h).requires_grad_()
        wt = torch.from_numpy(w).requires_grad_()
        tt = torch.from_numpy(t)
        if method == "torch_chunked" and not hasattr(F, "linear_cross_entropy"):
            return None
        options = torch.nn.LinearCrossEntropyOptions() if method == "torch_chunked" else None

        def run_torch():
            ht.grad = wt.grad = None
            if method == "torch":
                loss = F.cross_entropy(F.linear(ht, wt), tt)
            else:
                loss = F.linear_cross_entropy(ht, wt, tt, options=options)
            loss.backward()
            return loss
        return run_torch
    if method == "jax":
        try:
            import jax
            import jax.numpy as jnp
        except ImportError:
            return None

        def loss_fn(hj, wj, tj):
            logits = hj @ wj.T
            lse = jax.nn.logsumexp(logits, axis=-1)
            return jnp.mean(lse - jnp.take_along_axis(logits, tj[:, None], axis=-1)[:, 0])
        step = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))
        hj, wj, tj = jnp.asarray(h), jnp.asarray(w), jnp.asarray(t)

        def run_jax():
            value, grads = step(hj, wj, tj)
            jax.block_until_ready(grads)
        run_jax()  # compile
        return run_jax
    raise ValueError(method)


def _fits(method, n, v):
    """Whether the method's N x V float32 matrices (one for the GEMMs, about
    three for the materialised losses) fit in half the available memory."""
    if method not in MATERIALISED:
        return True
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return (1 if method == "gemm" else 3) * n * v * 4 < available / 2


def _time_child(method, n, d, v, threads, repeat):
    """In this (fresh) process: the seconds of `repeat` calls after a
    warm-up (None when the method is not available)."""
    h, w, t = _inputs(n, d, v)
    runner = make_runner(method, h, w, t, threads)
    if runner is None:
        print(json.dumps(None))
        return
    runner()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        runner()
        times.append(time.perf_counter() - start)
    print(json.dumps(times))


def time_case(n, d, v, threads, repeat, methods=METHODS):
    """{method: median seconds}, each method timed in a process of its own."""
    medians = {}
    for method in methods:
        if not _fits(method, n, v):
            continue
        out = subprocess.run([sys.executable, __file__, "--time-child", method, str(n), str(d),
                              str(v), str(threads), str(repeat)],
                             capture_output=True, text=True, check=True)
        times = json.loads(out.stdout.strip().splitlines()[-1])
        if times is not None:
            medians[method] = sorted(times)[len(times) // 2]
    return medians


def _status_bytes(field):
    """VmRSS or VmHWM of this process, in bytes.  (Not getrusage's ru_maxrss:
    Linux carries it across exec, so a child would report its parent's peak.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_child(method, n, d, v, threads):
    """In this (fresh) process: peak RSS beyond the inputs and the returned
    gradients, in bytes."""
    import numpy as np
    h, w, t = _inputs(n, d, v)
    runner = make_runner(method, h, w, t, threads)
    if runner is None:
        print(json.dumps(None))
        return
    # The BLAS's own work buffers are allocated at its first GEMM, for every method alike.
    np.matmul(np.ones((2048, 2048), np.float32), np.ones((2048, 2048), np.float32))
    before = _status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    traced = method in ("crossent", "gemm")
    if traced:  # NumPy's allocations (not the BLAS's own buffers)
        tracemalloc.start()
    runner()
    peak = _status_bytes("VmHWM")
    returned = h.nbytes + w.nbytes  # dh and dW
    result = {"rss": max(0, peak - before - returned)}
    if traced:
        result["traced"] = max(0, tracemalloc.get_traced_memory()[1] - returned)
    print(json.dumps(result))


def peak_memory(method, n, d, v, threads):
    if not _fits(method, n, v):
        return None
    out = subprocess.run([sys.executable, __file__, "--peak-child", method, str(n), str(d), str(v),
                          str(threads)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _memory_text(method, measured):
    if measured is None:
        return f"{method} -"
    text = f"{method} {measured['rss'] / 2**20:.0f}"
    if "traced" in measured:
        text += f" ({measured['traced'] / 2**20:.1f})"
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default="0,1,2")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true", help="no timing")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="a subset of " + ",".join(METHODS))
    parser.add_argument("--json")
    parser.add_argument("--peak-child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--time-child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_child:
        method, *numbers = args.time_child
        _time_child(method, *map(int, numbers))
        return
    if args.peak_child:
        method, *numbers = args.peak_child
        _peak_child(method, *map(int, numbers))
        return
    rows = []
    for index in map(int, args.cases.split(",")):
        n, d, v = CASES[index]
        methods = args.methods.split(",")
        times = {} if args.memory_only else time_case(n, d, v, args.threads, args.repeat,
                                                      methods)
        row = {"N": n, "d": d, "V": v, "seconds": times}
        if args.memory or args.memory_only:
            row["peak_bytes"] = {m: peak_memory(m, n, d, v, args.threads)
                                 for m in ("crossent", "torch", "torch_chunked") if m in methods}
            row["budget_bytes"] = n * v * 4 // 16
        rows.append(row)
        floor = times.get("gemm")
        line = [f"N={n} d={d} V={v}:"]
        for method, seconds in times.items():
            ratio = f" ({seconds / floor:.2f}x floor)" if floor else ""
            line.append(f"{method} {seconds:.3f}s{ratio}")
        print("  ".join(line), flush=True)
        if args.memory or args.memory_only:
            print("  peak MB beyond inputs and gradients (RSS; NumPy's own allocations): " +
                  "  ".join(_memory_text(m, b) for m, b in row["peak_bytes"].items()),
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
