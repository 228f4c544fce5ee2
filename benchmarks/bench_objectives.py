"""Gradient-boosting objectives: crossent against the NumPy objectives of the
libraries' own custom-objective demos, and against the built-in objectives.

(a) One objective call, n = 10^6 binary and 10^6 x 10 classes, float32 (the
    margins XGBoost hands a custom objective), through the same
    ``obj(predt, dtrain)`` interface on the same DMatrix:
    * crossent: ``crossent.xgboost.logistic()`` / ``softmax()``;
    * XGBoost's demo objectives, transcribed below: ``logregobj`` of
      demo/guide-python/custom_objective.py (dmlc/xgboost at b9414b6, the
      last commit that ships it) and ``softprob_obj`` of
      demo/guide-python/custom_softmax.py (dmlc/xgboost 379b29f), a loop over
      rows in Python;
    * the demo's softmax math written with whole-array NumPy operations, a
      stronger NumPy baseline.
(b) Training wall time, n = 10^6 binary, 100 rounds, for XGBoost and
    LightGBM: built-in objective, crossent objective, NumPy objective.

Calls of the compared implementations alternate, each repeated; the table
gives the best time of each.  Goals (issue 24): (a) crossent >= 20x the demo
objective; (b) crossent <= 1.1x the built-in training time.

    python benchmarks/bench_objectives.py [--threads 2] [--repeat 5]
        [--train-repeat 2] [--demo-rows 1000000] [--skip-training]
"""
import argparse
import time

import numpy as np

import crossent


# ---------------------------------------------- the demos' NumPy objectives

def logregobj(preds, dtrain):
    """demo/guide-python/custom_objective.py (dmlc/xgboost b9414b6)."""
    labels = dtrain.get_label()
    preds = 1.0 / (1.0 + np.exp(-preds))  # transform raw leaf weight
    grad = preds - labels
    hess = preds * (1.0 - preds)
    return grad, hess


def lightgbm_loglikelihood(preds, train_data):
    """LightGBM's examples/python-guide/advanced_example.py, the same math."""
    labels = train_data.get_label()
    preds = 1.0 / (1.0 + np.exp(-preds))
    grad = preds - labels
    hess = preds * (1.0 - preds)
    return grad, hess


def _demo_softmax(x):
    e = np.exp(x)
    return e / np.sum(e)


def softprob_obj(predt, data):
    """demo/guide-python/custom_softmax.py (dmlc/xgboost 379b29f), with the
    demo's module constants kRows, kClasses read from predt's shape."""
    k_rows, k_classes = predt.shape
    labels = data.get_label()
    if data.get_weight().size == 0:
        weights = np.ones(k_rows, dtype=float)
    else:
        weights = data.get_weight()
    grad = np.zeros((k_rows, k_classes), dtype=float)
    hess = np.zeros((k_rows, k_classes), dtype=float)
    eps = 1e-6
    for r in range(predt.shape[0]):
        target = int(labels[r])
        weight = float(weights[r])
        p = _demo_softmax(predt[r, :])
        for c in range(predt.shape[1]):
            assert 0 <= target < k_classes
            pc = float(p[c])
            g = pc - 1.0 if c == target else pc
            g = g * weight
            h = max(2.0 * pc * (1.0 - pc) * weight, eps)
            grad[r, c] = g
            hess[r, c] = h
    return grad, hess


def softprob_vectorised(predt, data):
    """The demo's softprob math with whole-array NumPy operations."""
    labels = data.get_label().astype(np.intp)
    e = np.exp(predt - predt.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    grad = p.copy()
    grad[np.arange(len(labels)), labels] -= 1.0
    hess = np.maximum(2.0 * p * (1.0 - p), 1e-6)
    return grad, hess


# ---------------------------------------------------------------- timing

def best_times(calls, repeat):
    """{name: best seconds}, the calls alternating round by round."""
    best = {name: float("inf") for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def objective_table(args):
    import xgboost as xgb
    import crossent.xgboost as cx

    rng = np.random.default_rng(0)
    n = 1_000_000
    rows = []
    predt = rng.normal(0, 2, n).astype(np.float32)
    dtrain = xgb.DMatrix(np.zeros((n, 1), np.float32), label=rng.integers(0, 2, n))
    ours = cx.logistic(n_threads=args.threads)
    t = best_times({"crossent": lambda: ours(predt, dtrain),
                    "demo": lambda: logregobj(predt, dtrain)}, args.repeat)
    rows.append(("binary logistic, 10^6", "XGBoost demo logregobj (NumPy)", t["demo"],
                 t["crossent"]))

    k = 10
    predt = rng.normal(0, 2, (n, k)).astype(np.float32)
    labels = rng.integers(0, k, n)
    dtrain = xgb.DMatrix(np.zeros((n, 1), np.float32), label=labels)
    ours = cx.softmax(n_threads=args.threads)
    t = best_times({"crossent": lambda: ours(predt, dtrain),
                    "numpy": lambda: softprob_vectorised(predt, dtrain)}, args.repeat)
    rows.append(("softmax, 10^6 x 10", "demo softprob math, vectorised NumPy", t["numpy"],
                 t["crossent"]))
    demo_rows = min(args.demo_rows, n)
    part = xgb.DMatrix(np.zeros((demo_rows, 1), np.float32), label=labels[:demo_rows])
    start = time.perf_counter()
    softprob_obj(predt[:demo_rows], part)
    demo = (time.perf_counter() - start) * n / demo_rows
    note = "" if demo_rows == n else f" (timed on {demo_rows} rows, x{n // demo_rows})"
    rows.append(("softmax, 10^6 x 10", "XGBoost demo softprob_obj (Python loop)" + note, demo,
                 t["crossent"]))
    return rows


def training_table(args):
    import lightgbm as lgb
    import xgboost as xgb
    import crossent.lightgbm as cl
    import crossent.xgboost as cx

    rng = np.random.default_rng(1)
    n, d, rounds = 1_000_000, 10, 100
    X = rng.normal(size=(n, d)).astype(np.float32)
    margin = X[:, 0] - 0.5 * X[:, 1] + 0.25 * X[:, 2] * X[:, 3]
    y = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(np.float32)
    rows = []

    dtrain = xgb.DMatrix(X, label=y, nthread=args.threads)
    params = {"tree_method": "hist", "max_depth": 6, "eta": 0.1, "nthread": args.threads,
              "base_score": 0.5}
    ours = cx.logistic(n_threads=args.threads)
    t = best_times({
        "builtin": lambda: xgb.train({**params, "objective": "binary:logistic"}, dtrain, rounds),
        "crossent": lambda: xgb.train({**params, "objective": "binary:logistic"}, dtrain,
                                      rounds, obj=ours),
        "numpy": lambda: xgb.train({**params, "objective": "binary:logistic"}, dtrain, rounds,
                                   obj=logregobj),
    }, args.train_repeat)
    rows.append(("XGBoost", t["builtin"], t["crossent"], t["numpy"]))

    train = lgb.Dataset(X, label=y, params={"verbose": -1}).construct()
    params = {"num_leaves": 63, "learning_rate": 0.1, "num_threads": args.threads,
              "verbose": -1, "boost_from_average": False}
    ours = cl.logistic(n_threads=args.threads)
    t = best_times({
        "builtin": lambda: lgb.train({**params, "objective": "binary"}, train, rounds),
        "crossent": lambda: lgb.train({**params, "objective": ours}, train, rounds),
        "numpy": lambda: lgb.train({**params, "objective": lightgbm_loglikelihood}, train,
                                   rounds),
    }, args.train_repeat)
    rows.append(("LightGBM", t["builtin"], t["crossent"], t["numpy"]))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--train-repeat", type=int, default=2)
    parser.add_argument("--demo-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)
    crossent.set_num_threads(args.threads)
    info = crossent.info()
    print(f"crossent {info['version']}, backend {info['default_backend']}, simd {info['simd']}, "
          f"{args.threads} threads")
    print("\n(a) One objective call (float32 margins, obj(predt, dtrain)), best of "
          f"{args.repeat}\n")
    print("| case | NumPy objective | NumPy | crossent | speed-up |")
    print("|---|---|---:|---:|---:|")
    for case, peer, peer_time, our_time in objective_table(args):
        print(f"| {case} | {peer} | {peer_time * 1e3:.1f} ms | {our_time * 1e3:.2f} ms | "
              f"{peer_time / our_time:.2g}x |")
    if args.skip_training:
        return
    print(f"\n(b) Training, 10^6 rows x 10 features, binary, 100 rounds, best of "
          f"{args.train_repeat}\n")
    print("| library | built-in | crossent objective | NumPy objective | crossent / built-in "
          "| NumPy / built-in |")
    print("|---|---:|---:|---:|---:|---:|")
    for library, builtin, ours, numpy in training_table(args):
        print(f"| {library} | {builtin:.2f} s | {ours:.2f} s | {numpy:.2f} s | "
              f"{ours / builtin:.2f}x | {numpy / builtin:.2f}x |")


if __name__ == "__main__":
    main()
