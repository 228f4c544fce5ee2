"""A digest of every output over a fixed matrix of calls, to show that a change
to the loops leaves every bit where it was.

The matrix: every public loss and activation x float32/float64 x contiguous,
strided, Fortran-ordered, negative-stride and broadcast operands x the
options (weights, ignore_index, label smoothing, soft targets, reductions,
the gradient) x 1 and 2 threads, at sizes above the parallel threshold, with
extreme and non-finite logits mixed in.  Each case is hashed (SHA-256 of its
outputs' bytes); the digest is the hash of the case hashes in order.

    python benchmarks/digest.py                      # the digest of each backend and SIMD variant
    python benchmarks/digest.py --save FILE          # ... and the case hashes
    python benchmarks/digest.py --check FILE         # exit 1 on any case that differs from FILE

Both compiled backends and every SIMD variant must give the same digest.
Some inputs are made with NumPy's own exp, whose last bits may depend on the
CPU NumPy runs on: record the digest before a change on the machine that
checks it after.
"""
import argparse
import hashlib
import json
import sys

import numpy as np

import crossent

ROWS, CLASSES = 1500, 37         # 55 500 elements: above the parallel threshold
WIDE = (3, 20000)                # a few wide rows (the shared-row path)
SHORT = (4100, 10)               # short rows (the batched row groups)


def _logits(rng, shape, dtype):
    z = rng.standard_normal(shape) * 3
    flat = z.reshape(-1)
    flat[5] = 80.0
    flat[7] = -80.0
    flat[11] = 1e4
    z = z.astype(dtype)
    if z.ndim >= 1 and z.shape[0] > 3:
        z[3, ...] = np.inf if z.ndim == 1 else z[3, ...]
        if z.ndim == 2:
            z[2, 1] = np.nan
            z[3, 0] = np.inf
    return z


def _layouts(x):
    """The same values as contiguous, strided, Fortran, negative-stride views."""
    yield "c", np.ascontiguousarray(x)
    big = np.zeros((x.shape[0] * 2,) + x.shape[1:], x.dtype)
    big[::2] = x
    yield "strided", big[::2]
    yield "fortran", np.asfortranarray(x)
    rev = np.ascontiguousarray(x[::-1])
    yield "negative", rev[::-1]


def _index_targets(rng, n, classes, dtype, ignore=False):
    t = rng.integers(0, classes, n).astype(dtype)
    if ignore:
        t[::7] = -100
    return t


def _soft_targets(rng, shape, dtype):
    y = rng.random(shape)
    return (y / y.sum(axis=-1, keepdims=True)).astype(dtype)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cases():
    """(case id, function of no arguments returning the outputs) in a fixed order."""
    rng = np.random.default_rng(20261203)
    for dtype in ("float32", "float64"):
        for shape in ((ROWS, CLASSES), SHORT, WIDE):
            n, c = shape
            z = _logits(rng, shape, dtype)
            zf = np.where(np.isfinite(z), z, 0).astype(dtype)
            probs = _softmax(zf.astype(np.float64)).astype(dtype)
            log_probs = np.log(np.maximum(probs, 1e-30)).astype(dtype)
            t64 = _index_targets(rng, n, c, np.int64)
            t32 = t64.astype(np.int32)
            t_ign = _index_targets(rng, n, c, np.int64, ignore=True)
            soft = _soft_targets(rng, shape, dtype)
            cw = rng.random(c) + 0.5
            sw = (rng.random(n) + 0.25).astype(dtype)
            tag = f"{dtype}-{n}x{c}"
            for layout, zl in _layouts(z):
                yield f"{tag}-{layout}-softmax", lambda zl=zl: crossent.softmax(zl)
                yield f"{tag}-{layout}-log_softmax", lambda zl=zl: crossent.log_softmax(zl)
                yield f"{tag}-{layout}-logsumexp", lambda zl=zl: crossent.logsumexp(zl)
                yield f"{tag}-{layout}-sigmoid", lambda zl=zl: crossent.sigmoid(zl)
                yield f"{tag}-{layout}-log_sigmoid", lambda zl=zl: crossent.log_sigmoid(zl)
                for name, kw in (("plain", {}), ("i32", {"t": t32}), ("ignore", {"t": t_ign}),
                                 ("weights", {"weight": cw, "sample_weight": sw}),
                                 ("smooth", {"label_smoothing": 0.1, "weight": cw}),
                                 ("soft", {"t": soft, "label_smoothing": 0.05})):
                    kw = dict(kw)
                    t = kw.pop("t", t64)
                    for reduction in ("mean", "sum", "none"):
                        yield (f"{tag}-{layout}-cross_entropy-{name}-{reduction}",
                               lambda zl=zl, t=t, kw=kw, r=reduction: crossent.cross_entropy(
                                   zl, t, reduction=r, return_grad=True, **kw))
                    yield (f"{tag}-{layout}-cross_entropy-{name}-loss-only",
                           lambda zl=zl, t=t, kw=kw: crossent.cross_entropy(zl, t, **kw))
            yield f"{tag}-axis0-cross_entropy", lambda z=z, t=t64: crossent.cross_entropy(
                np.ascontiguousarray(z.T), t, axis=0, return_grad=True)
            yield f"{tag}-axis0-softmax", lambda z=z: crossent.softmax(np.ascontiguousarray(z.T),
                                                                       axis=0)
            yield f"{tag}-broadcast-cross_entropy", lambda z=z, t=t_ign: crossent.cross_entropy(
                np.broadcast_to(z[1], z.shape), t, return_grad=True, reduction="none")
            for layout, pl in _layouts(probs):
                for name, kw in (("plain", {}), ("ignore-weights",
                                                 {"weight": cw, "sample_weight": sw}),
                                 ("soft", {"t": soft, "label_smoothing": 0.1})):
                    kw = dict(kw)
                    t = kw.pop("t", t_ign if name != "plain" else t64)
                    for reduction in ("mean", "none"):
                        yield (f"{tag}-{layout}-categorical-{name}-{reduction}",
                               lambda pl=pl, t=t, kw=kw, r=reduction:
                               crossent.categorical_cross_entropy(pl, t, reduction=r,
                                                                  return_grad=True, **kw))
            for layout, ll in _layouts(log_probs):
                for name, kw in (("plain", {}), ("ignore-weights",
                                                 {"weight": cw, "sample_weight": sw})):
                    t = t_ign if kw else t64
                    for reduction in ("mean", "sum", "none"):
                        yield (f"{tag}-{layout}-nll-{name}-{reduction}",
                               lambda ll=ll, t=t, kw=kw, r=reduction: crossent.nll_loss(
                                   ll, t, reduction=r, return_grad=True, **kw))
                    yield (f"{tag}-{layout}-nll-{name}-loss-only",
                           lambda ll=ll, t=t, kw=kw: crossent.nll_loss(ll, t, **kw))
            y01 = (rng.random(shape) < 0.4).astype(dtype)
            w_el = (rng.random(shape) + 0.5).astype(dtype)
            pw = (rng.random(c) + 0.5).astype(dtype)
            sw_el = (rng.random((n, 1)) + 0.5).astype(dtype)
            for layout, zl in _layouts(z):
                for name, kw in (("plain", {}), ("weights", {"weight": w_el, "sample_weight": sw_el}),
                                 ("pos_weight", {"pos_weight": pw, "label_smoothing": 0.1})):
                    for reduction in ("mean", "sum", "none"):
                        yield (f"{tag}-{layout}-bce_logits-{name}-{reduction}",
                               lambda zl=zl, kw=kw, r=reduction, y=y01:
                               crossent.binary_cross_entropy_with_logits(
                                   zl, y, reduction=r, return_grad=True, **kw))
                    yield (f"{tag}-{layout}-bce_logits-{name}-loss-only",
                           lambda zl=zl, kw=kw, y=y01:
                           crossent.binary_cross_entropy_with_logits(zl, y, **kw))
                yield (f"{tag}-{layout}-mse", lambda zl=zl, y=y01, w=w_el:
                       crossent.mse_loss(np.where(np.isfinite(zl), zl, 0), y, weight=w,
                                         return_grad=True))
            for layout, pl in _layouts(np.clip(probs * c / 2, 0, 1).astype(dtype)):
                for reduction in ("mean", "none"):
                    yield (f"{tag}-{layout}-bce-{reduction}", lambda pl=pl, y=y01, w=w_el,
                           r=reduction: crossent.binary_cross_entropy(
                               pl, y, weight=w, reduction=r, return_grad=True))
            for layout, zl in _layouts(z):
                for name, kw in (("plain", {}), ("options", {"alpha": 0.6, "gamma": 1.5,
                                                             "weight": w_el})):
                    yield (f"{tag}-{layout}-focal-{name}", lambda zl=zl, y=y01, kw=kw:
                           crossent.focal_loss(zl, y, return_grad=True, **kw))
            for layout, ll in _layouts(log_probs):
                for reduction in ("batchmean", "mean", "none"):
                    yield (f"{tag}-{layout}-kl_div-{reduction}", lambda ll=ll, p=probs, r=reduction:
                           crossent.kl_div(ll, p, reduction=r, return_grad=True))
                yield (f"{tag}-{layout}-kl_div-log_target", lambda ll=ll, lp=log_probs, s=sw:
                       crossent.kl_div(ll, lp, log_target=True, sample_weight=s, return_grad=True))
            yield f"{tag}-broadcast-bce_logits", lambda z=z, y=y01: \
                crossent.binary_cross_entropy_with_logits(np.broadcast_to(z[1], z.shape), y,
                                                          return_grad=True, reduction="none")
        z3 = _logits(rng, (5, 300, 12), dtype)
        t3 = _index_targets(rng, 5 * 12, 300, np.int64).reshape(5, 12)
        yield f"{dtype}-3d-axis1-cross_entropy", lambda: crossent.cross_entropy(
            z3, t3, axis=1, return_grad=True, reduction="none")
        yield f"{dtype}-3d-axis1-log_softmax", lambda: crossent.log_softmax(z3, axis=1)


def _hash_result(result, h):
    items = result if isinstance(result, tuple) else (result,)
    for item in items:
        a = np.asarray(item)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())


def digest(backend, threads=(1, 2)):
    """{case id: hash} over the matrix, each case run with every thread count
    (they must agree: a case whose threads disagree is marked)."""
    out = {}
    with crossent.use_backend(backend):
        for case_id, call in cases():
            hashes = []
            for n in threads:
                previous = crossent.get_num_threads()
                crossent.set_num_threads(n)
                try:
                    h = hashlib.sha256()
                    with np.errstate(all="ignore"):
                        _hash_result(call(), h)
                    hashes.append(h.hexdigest()[:16])
                finally:
                    crossent.set_num_threads(previous)
            out[case_id] = hashes[0] if len(set(hashes)) == 1 else "threads-differ:" + ",".join(hashes)
    return out


def total(case_hashes):
    h = hashlib.sha256()
    for case_id in sorted(case_hashes):
        h.update(f"{case_id}={case_hashes[case_id]}\n".encode())
    return h.hexdigest()


def _set_simd(backend, variant):
    import importlib
    module = importlib.import_module({"cython": "crossent._cython_backend",
                                      "c": "crossent._c_backend"}[backend])
    module.set_simd(variant)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--save", help="write the case hashes of the first run to this JSON file")
    parser.add_argument("--check", help="compare every run with the case hashes in this file")
    parser.add_argument("--backends", default=",".join(b for b in crossent.backends()
                                                         if b != "numpy"))
    parser.add_argument("--variants", default=None,
                        help="SIMD variants, comma-separated (default: all this CPU has)")
    args = parser.parse_args(argv)
    info = crossent.info()
    variants = (args.variants or info["simd_available"]).split(",")
    reference = None
    if args.check:
        with open(args.check) as f:
            reference = json.load(f)["cases"]
    failed = False
    first = None
    for backend in args.backends.split(","):
        for variant in variants:
            _set_simd(backend, variant)
            hashes = digest(backend)
            first = first or hashes
            print(f"{backend:7s} {variant:9s} {total(hashes)}  ({len(hashes)} cases)")
            bad = [k for k, v in hashes.items() if v.startswith("threads-differ")]
            if bad:
                failed = True
                print(f"  thread counts disagree in {len(bad)} cases, e.g. {bad[:3]}")
            if reference is not None:
                diff = sorted(k for k in set(reference) | set(hashes)
                              if reference.get(k) != hashes.get(k))
                if diff:
                    failed = True
                    print(f"  differs from {args.check} in {len(diff)} cases, e.g. {diff[:5]}")
        _set_simd(backend, "")
    if args.save:
        with open(args.save, "w") as f:
            json.dump({"digest": total(first), "cases": first}, f, indent=0, sort_keys=True)
            f.write("\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
