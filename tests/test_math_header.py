"""The C numeric layer: csrc/crossent_math.h and the row/block functions of
csrc/crossent_rows.h, through the test-only binding crossent._primitives.

* every row/block function against an independent float64 NumPy evaluation of
  the formulas of docs/kernels.md;
* every SIMD variant this CPU runs gives the baseline's bits, on every
  function;
* the primitives' error in ulps against mpmath at 50 digits.
"""
import zlib

import numpy as np
import pytest

P = pytest.importorskip("crossent._primitives")

DTYPES = (np.float32, np.float64)
# Tolerance of a C result (rounded to the row's dtype) against the float64
# evaluation: a few units of the dtype's epsilon, relative to the row's scale.
RTOL = {np.float32: 2e-6, np.float64: 1e-13}
VARIANTS = P.available()


def rng_for(*key):
    """A generator seeded by the test's parameters (stable across processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def assert_close(actual, expected, dtype, scale=None):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.max(np.abs(expected)) if scale is None else scale
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype],
                               atol=RTOL[dtype] * max(scale, 1e-300))


# ---------------------------------------------------------------- float64 oracle

def softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def sigmoid(x):
    return np.exp(-softplus(-x))


def softmax_parts(z):
    m = np.max(z)
    e = np.exp(z - m)
    return e / e.sum(), m + np.log(e.sum())


# PyTorch's gradient floor: the float constant 1e-12f, for both dtypes.
GRAD_EPS = float(np.float32(1e-12))


def clamped_log(p):
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(p), -100.0)


def oracle_row(name, z, target, y, w, eps, gs):
    """(loss, grad) of one row by the formulas of docs/kernels.md, float64."""
    n = z.size
    w = np.ones(n) if w is None else w
    if name == "softmax_xent_index":
        p, lse = softmax_parts(z)
        loss = (1 - eps) * w[target] * (lse - z[target]) + eps / n * np.sum(w * (lse - z))
        onehot = np.eye(n)[target]
        grad = (1 - eps) * w[target] * (p - onehot) + eps / n * (w.sum() * p - w)
    elif name == "softmax_xent_soft":
        p, lse = softmax_parts(z)
        ys = y * (1 - eps) + eps / n
        loss = np.sum(w * ys * (lse - z))
        grad = p * np.sum(w * ys) - w * ys
    elif name == "categorical_xent_index":
        loss = -(1 - eps) * w[target] * clamped_log(z[target]) - eps / n * np.sum(w * clamped_log(z))
        dlog = -1 / np.maximum(z, GRAD_EPS)
        grad = eps / n * w * dlog
        grad[target] += (1 - eps) * w[target] * dlog[target]
    elif name == "categorical_xent_soft":
        ys = y * (1 - eps) + eps / n
        loss = -np.sum(w * ys * clamped_log(z))
        grad = -w * ys / np.maximum(z, GRAD_EPS)
    elif name == "nll_index":
        loss = -w[target] * z[target]
        grad = -w[target] * np.eye(n)[target]
    return loss, gs * grad


def oracle_binary(name, x, y, w, pw, s, eps, gs):
    one = np.ones_like(x)
    w = one if w is None else w
    s = one if s is None else s
    if name == "bce":
        loss = -(y * clamped_log(x) + (1 - y) * clamped_log(1 - x))
        grad = (x - y) / np.maximum(x * (1 - x), GRAD_EPS)
    elif name == "bce_logits":
        pw = one if pw is None else pw
        ys = y * (1 - eps) + eps / 2
        lw = 1 + (pw - 1) * ys
        loss = (1 - ys) * x + lw * softplus(-x)
        grad = lw * sigmoid(x) - pw * ys
    else:
        loss = (x - y) ** 2
        grad = 2 * (x - y)
    return w * s * loss, gs * w * s * grad


# ---------------------------------------------------------------- row functions

ROW_LOSSES = ["softmax_xent_index", "softmax_xent_soft", "categorical_xent_index",
              "categorical_xent_soft", "nll_index"]


def row_inputs(name, n, dtype, rng):
    if name.startswith("categorical"):
        x = rng.uniform(0.01, 1.0, n)
        x /= x.sum()
    else:
        x = rng.normal(scale=3.0, size=n)
    y = rng.dirichlet(np.ones(n)) if name.endswith("soft") else None
    target = int(rng.integers(n)) if name.endswith("index") else None
    x = x.astype(dtype)
    return x, (None if y is None else y.astype(dtype)), target


ROW_LOSS_SMOOTHING = [(name, eps) for name in ROW_LOSSES
                      for eps in ([0.0] if name == "nll_index" else [0.0, 0.1])]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,eps", ROW_LOSS_SMOOTHING)
@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 100, 1000])
@pytest.mark.parametrize("weighted", [False, True])
def test_row_loss_and_grad_match_the_formulas(dtype, name, eps, n, weighted):
    rng = rng_for(name, n, weighted, eps)
    x, y, target = row_inputs(name, n, dtype, rng)
    w = rng.uniform(0.25, 2.0, n) if weighted else None
    loss, grad = P.multiclass_row(VARIANTS[-1], name, x, target=target, y=y, class_weight=w,
                                  label_smoothing=eps, grad_scale=0.5)
    assert loss.dtype == dtype and grad.dtype == dtype
    y64 = None if y is None else y.astype(np.float64)
    want_loss, want_grad = oracle_row(name, x.astype(np.float64), target, y64, w, eps, 0.5)
    assert_close(loss, want_loss, dtype)
    # p_t - 1 cancels: its error is absolute, of the order of grad_scale * w_t.
    grad_scale_of_row = 0.5 * (1.0 if w is None else np.max(w))
    if name.startswith("categorical"):
        grad_scale_of_row = np.max(np.abs(want_grad))
    assert_close(grad, want_grad, dtype, scale=grad_scale_of_row)
    _, no_grad = P.multiclass_row(VARIANTS[-1], name, x, target=target, y=y, class_weight=w,
                                  label_smoothing=eps, with_grad=False)
    assert no_grad is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 16, 33, 4096])
def test_activation_rows_match_numpy(dtype, n):
    z = (rng_for(n).normal(scale=5.0, size=n)).astype(dtype)
    p, lse = softmax_parts(z.astype(np.float64))
    variant = VARIANTS[-1]
    assert_close(P.block(variant, "softmax_row", z), p, dtype)
    assert_close(P.block(variant, "log_softmax_row", z), np.log(p), dtype)
    assert_close(P.reduce(variant, "row_logsumexp", z), lse, dtype)
    assert P.reduce(variant, "row_max", z) == np.max(z)
    assert_close(P.reduce(variant, "sum", z), np.sum(z.astype(np.float64)), np.float64,
                 scale=np.sum(np.abs(z.astype(np.float64))))
    assert_close(P.block(variant, "sigmoid", z), sigmoid(z.astype(np.float64)), dtype)
    assert_close(P.block(variant, "log_sigmoid", z), -softplus(-z.astype(np.float64)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_row_in_place_gives_the_same_bits(dtype):
    z = rng_for("inplace").normal(size=50).astype(dtype)
    expected = P.block(VARIANTS[-1], "softmax_row", z)
    P.block(VARIANTS[-1], "softmax_row", z, out=z)
    np.testing.assert_array_equal(z, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_edge_cases(dtype):
    v = VARIANTS[-1]
    inf = np.inf
    assert P.reduce(v, "row_logsumexp", np.array([-inf, -inf], dtype)) == -inf
    assert P.reduce(v, "row_logsumexp", np.array([0, inf], dtype)) == inf
    assert np.isnan(P.reduce(v, "row_logsumexp", np.array([0, np.nan, 1], dtype)))
    assert np.isnan(P.reduce(v, "row_max", np.array([0, np.nan, 1], dtype)))
    assert np.isnan(P.reduce(v, "row_max", np.arange(40, dtype=dtype) * np.where(np.arange(40) == 33, np.nan, 1)))
    # A logit far below the max contributes exp(-big) = 0, not NaN.
    loss, grad = P.multiclass_row(v, "softmax_xent_index", np.array([0, -1e30], dtype), target=0)
    assert loss == 0 and np.all(np.isfinite(grad))
    loss, grad = P.multiclass_row(v, "softmax_xent_index", np.array([1, np.nan], dtype), target=0)
    assert np.isnan(loss) and np.all(np.isnan(grad))
    loss, _ = P.multiclass_row(v, "categorical_xent_index", np.array([0, 1], dtype), target=0)
    assert loss == 100


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_single_plus_inf_logit_gives_the_one_hot_limit(dtype):
    v, inf = VARIANTS[-1], np.inf
    z = np.array([1, 0, -inf, 3] * 5, dtype)[:-3]  # 17 entries, tails in every variant
    z[1] = inf
    expected = np.zeros_like(z)
    expected[1] = 1
    np.testing.assert_array_equal(P.block(v, "softmax_row", z), expected)
    np.testing.assert_array_equal(P.block(v, "log_softmax_row", z), np.where(expected == 1, 0, -inf))
    assert P.reduce(v, "row_logsumexp", z) == inf
    loss, grad = P.multiclass_row(v, "softmax_xent_index", z, target=1)
    assert loss == 0
    np.testing.assert_array_equal(grad, np.zeros_like(z))
    loss, _ = P.multiclass_row(v, "softmax_xent_index", z, target=0)
    assert loss == inf


@pytest.mark.parametrize("dtype", DTYPES)
def test_several_plus_inf_logits_have_no_limit(dtype):
    v, inf = VARIANTS[-1], np.inf
    z = np.array([inf, 0, inf], dtype)
    assert np.all(np.isnan(P.block(v, "softmax_row", z)))
    assert P.reduce(v, "row_logsumexp", z) == inf  # the sum is +inf however many there are
    assert np.isnan(P.multiclass_row(v, "softmax_xent_index", z, target=1)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["categorical_xent_index", "nll_index"])
def test_a_nan_off_target_makes_the_index_loss_nan(dtype, name):
    x = np.array([0.2, np.nan, 0.5], dtype)
    loss, _ = P.multiclass_row(VARIANTS[-1], name, x, target=2)
    assert np.isnan(loss)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["bce", "bce_logits", "mse"])
@pytest.mark.parametrize("weights", [(), ("w",), ("s",), ("w", "pw", "s")])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_binary_blocks_match_the_formulas(dtype, name, weights, eps):
    rng = rng_for(name, weights, eps)
    n = 1000
    if name == "bce":
        x = rng.uniform(0, 1, n)
        x[:3] = [0, 1, 1e-30]
    else:
        x = rng.normal(scale=4, size=n)
    y = rng.uniform(0, 1, n) if name != "mse" else rng.normal(size=n)
    x, y = x.astype(dtype), y.astype(dtype)
    ops = {k: rng.uniform(0.5, 2, n).astype(dtype) if k in weights else None for k in ("w", "pw", "s")}
    eps = eps if name == "bce_logits" else 0.0
    loss, grad = P.binary_block(VARIANTS[-1], name, x, y, label_smoothing=eps, grad_scale=0.25, **ops)
    f64 = {k: None if a is None else a.astype(np.float64) for k, a in ops.items()}
    want_loss, want_grad = oracle_binary(name, x.astype(np.float64), y.astype(np.float64),
                                         f64["w"], f64["pw"], f64["s"], eps, 0.25)
    if name == "bce":  # the C log1p(-p) is exact where the oracle's log(1 - p) rounds
        want_loss[np.abs(x) < 1e-6] = loss[np.abs(x) < 1e-6]
    assert_close(loss, want_loss, dtype)
    assert_close(grad, want_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_logits_infinite_logits_give_the_limit(dtype):
    z = np.array([np.inf, -np.inf, np.inf, -np.inf, np.nan], dtype)
    y = np.array([1, 0, 0, 1, 1], dtype)
    loss, grad = P.binary_block(VARIANTS[-1], "bce_logits", z, y)
    np.testing.assert_array_equal(loss[:4], [0, 0, np.inf, np.inf])
    np.testing.assert_array_equal(grad[:4], [0, 0, 1, -1])
    assert np.isnan(loss[4]) and np.isnan(grad[4])


# ---------------------------------------------------------------- SIMD variants

def all_function_calls(dtype, variant, rng):
    """Every table function on awkward sizes (tails of every length)."""
    results = []
    for n in (1, 3, 15, 16, 17, 31, 64, 257):
        z = rng.normal(scale=6, size=n).astype(dtype)
        p = rng.uniform(0, 1, n).astype(dtype)
        y = rng.uniform(0, 1, n).astype(dtype)
        w = rng.uniform(0.5, 2, n)
        for name in ("exp", "log1pexp", "sigmoid", "log_sigmoid", "softmax_row", "log_softmax_row"):
            results.append(P.block(variant, name, z))
        for name in ("log", "log1p"):
            results.append(P.block(variant, name, p * 3))
        results.append(P.block(variant, "exp_moderate", -np.abs(z)))
        for name in ("sum", "row_max", "row_logsumexp"):
            results.append(P.reduce(variant, name, z))
        for name, x in (("bce", p), ("bce_logits", z), ("mse", z)):
            results += P.binary_block(variant, name, x, y, w=y, pw=p, s=p, label_smoothing=0.1,
                                      grad_scale=0.3)
        y_mixed = np.where(np.arange(n) % 2 == 0, np.round(y), y).astype(dtype)
        for alpha, gamma in ((0.25, 2.0), (-1.0, 0.5), (0.6, 0.0)):
            results += P.focal_block(variant, z, y_mixed, w=y, s=p, alpha=alpha, gamma=gamma,
                                     grad_scale=0.3)
        for log_target, t in ((False, y_mixed), (True, z)):
            results += P.kl_div_block(variant, -np.abs(z), t, w=y, s=p, log_target=log_target,
                                      grad_scale=0.3)
        target = int(rng.integers(n))
        rows = np.stack([z, np.roll(z, 1), -z])
        results += P.softmax_xent_index_rows(variant, rows, [target] * 3, class_weight=w,
                                             grad_scale=[0.7, -1.0, 2.5])
        for name in ROW_LOSSES:
            x = p if name.startswith("categorical") else z
            results += P.multiclass_row(variant, name, x, target=target, y=y, class_weight=w,
                                        label_smoothing=0.0 if name == "nll_index" else 0.1,
                                        grad_scale=0.7)
    return results


def awkward_rows(rng, n_rows, n, dtype):
    """Logit rows of every kind the row function treats apart: ordinary ones
    at several scales, and rows holding +inf (one or several), -inf (some or
    all), NaN, or huge finite values."""
    z = rng.normal(scale=rng.choice([0.1, 3.0, 60.0]), size=(n_rows, n)).astype(dtype)
    inf, specials = np.inf, [np.inf, -np.inf, np.nan, np.finfo(dtype).max / 4]
    for r in range(0, n_rows, 3):
        kind = rng.integers(6)
        if kind < 4:
            z[r, rng.integers(n, size=1 + rng.integers(2))] = specials[kind]
        elif kind == 4:
            z[r] = -inf
        else:
            z[r, :] = rng.choice([-inf, 0.0, inf], size=n)
    return z


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n", [1, 2, 10, 15, 16, 17, 40, 48, 49, 100, 104, 105, 128, 129, 160,
                               161])
def test_batched_index_rows_give_the_row_function_bits(variant, dtype, n):
    """ce_softmax_xent_index_rows (short and medium rows several per vector,
    up to 128 classes with the gradient and 160 without where the variant
    transposes by tiles, 48 and 104 where it does not) against one
    ce_softmax_xent_index_row call per row: bit for bit, for every group size
    (tails of the row groups included), weight, smoothing and grad scale."""
    rng = rng_for("batched", variant, dtype, n)
    for n_rows in (1, 15, 16, 17, 50):
        z = awkward_rows(rng, n_rows, n, dtype)
        target = rng.integers(n, size=n_rows)
        scales = rng.choice([1.0, 0.0, -0.5, 1e-3, 7.0], size=n_rows)
        for w in (None, rng.uniform(0.25, 2.0, n)):
            for eps in (0.0, 0.2):
                losses, grad = P.softmax_xent_index_rows(variant, z, target, class_weight=w,
                                                         label_smoothing=eps, grad_scale=scales)
                for r in range(n_rows):
                    loss_r, grad_r = P.multiclass_row(variant, "softmax_xent_index", z[r],
                                                      target=int(target[r]), class_weight=w,
                                                      label_smoothing=eps, grad_scale=scales[r])
                    assert losses[r].tobytes() == loss_r.tobytes(), (n_rows, r, w is None, eps)
                    assert grad[r].tobytes() == grad_r.tobytes(), (n_rows, r, w is None, eps)
                no_grad_losses, none = P.softmax_xent_index_rows(
                    variant, z, target, class_weight=w, label_smoothing=eps, with_grad=False)
                assert none is None and no_grad_losses.tobytes() == losses.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n", [1, 2, 10, 16, 17, 48, 49, 104, 105, 128, 129, 160, 161, 300])
def test_batched_activation_rows_give_the_row_function_bits(variant, dtype, n):
    """ce_softmax_rows, ce_log_softmax_rows (also in place) and
    ce_logsumexp_rows (short and medium rows several per vector) against one
    call of the row function per row: bit for bit, for every group size
    (tails included) and awkward rows (+-inf, NaN, all -inf)."""
    rng = rng_for("batched-activations", variant, dtype, n)
    for n_rows in (1, 15, 16, 17, 50):
        z = awkward_rows(rng, n_rows, n, dtype)
        for name in ("softmax", "log_softmax"):
            batched = P.activation_rows(variant, f"{name}_rows", z)
            in_place = P.activation_rows(variant, f"{name}_rows", z, in_place=True)
            for r in range(n_rows):
                row = z[r].copy()
                P.block(variant, f"{name}_row", row, out=row)
                assert batched[r].tobytes() == row.tobytes(), (name, n_rows, r)
                assert in_place[r].tobytes() == row.tobytes(), (name, n_rows, r)
        values = P.activation_rows(variant, "logsumexp_rows", z)
        for r in range(n_rows):
            expected = P.reduce(variant, "row_logsumexp", z[r])
            assert values[r].tobytes() == expected.tobytes(), (n_rows, r)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n", [1, 3, 10, 100, 1000])
def test_batched_nll_rows_give_the_row_function_bits(variant, dtype, n):
    """ce_nll_index_rows against one ce_nll_index_row call per row, bit for
    bit (NaN rows included), with gradient rows that follow each other in
    memory and with gaps between them (never written)."""
    rng = rng_for("batched-nll", variant, dtype, n)
    for n_rows in (1, 5, 17):
        x = awkward_rows(rng, n_rows, n, dtype)
        target = rng.integers(n, size=n_rows)
        scales = rng.choice([1.0, 0.0, -0.5, 7.0], size=n_rows)
        for w in (None, rng.uniform(0.25, 2.0, n)):
            for gaps in ((), (0,), tuple(range(0, n_rows, 3))):
                losses, grad = P.nll_index_rows(variant, x, target, class_weight=w,
                                                grad_scale=scales, grad_gaps=gaps)
                for r in range(n_rows):
                    loss_r, grad_r = P.multiclass_row(variant, "nll_index", x[r],
                                                      target=int(target[r]), class_weight=w,
                                                      grad_scale=scales[r])
                    assert losses[r].tobytes() == loss_r.tobytes(), (n_rows, r, gaps)
                    assert grad[r].tobytes() == grad_r.tobytes(), (n_rows, r, gaps)
            no_grad, none = P.nll_index_rows(variant, x, target, class_weight=w,
                                             with_grad=False)
            assert none is None and no_grad.tobytes() == losses.tobytes()


def rows_at_the_moderate_edge(rng, n_rows, n, dtype):
    """Logit rows whose smallest shifted entry lies just inside the range of
    exp_moderate (-87.5 float32, -708 float64), some just outside: float32
    exps there are subnormal."""
    low = 87.5 if dtype == np.float32 else 708.0
    z = rng.uniform(-low, 0, size=(n_rows, n))
    z[:, 0] = 0.0
    z[:, 1] = -low + rng.uniform(-0.3, 0.2, size=n_rows)
    return (z + rng.normal(scale=5.0, size=(n_rows, 1))).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n", [10, 100, 1000])
def test_moderate_rows_give_the_bits_of_the_general_exp(variant, dtype, n):
    """A row whose shifted logits all lie in exp_moderate's range takes the
    one-factor exp; the same row with an extra entry at -1000 (exp 0 in both
    dtypes, so the sum does not change) takes the general one.  Every output
    on the shared entries must agree bit for bit: the row functions and the
    short- and medium-row groups (n = 10, 100)."""
    rng = rng_for("moderate", variant, dtype, n)
    z = rows_at_the_moderate_edge(rng, 17, n, dtype)
    z_far = np.concatenate([z, np.full((len(z), 1), -1000, dtype)], axis=1)
    target = rng.integers(n, size=len(z))
    y = rng.dirichlet(np.ones(n), size=len(z)).astype(dtype)
    y_far = np.concatenate([y, np.zeros((len(z), 1), dtype)], axis=1)
    for name in ("softmax_row", "log_softmax_row"):
        for r in range(len(z)):
            near, far = P.block(variant, name, z[r]), P.block(variant, name, z_far[r])
            assert near.tobytes() == far[:n].tobytes(), (name, r)
    for r in range(len(z)):
        for name, kwargs, kwargs_far in (
                ("softmax_xent_index", dict(target=int(target[r])), dict(target=int(target[r]))),
                ("softmax_xent_soft", dict(y=y[r]), dict(y=y_far[r]))):
            loss, grad = P.multiclass_row(variant, name, z[r], grad_scale=0.7, **kwargs)
            loss_far, grad_far = P.multiclass_row(variant, name, z_far[r], grad_scale=0.7,
                                                  **kwargs_far)
            assert loss.tobytes() == loss_far.tobytes(), (name, r)
            assert grad.tobytes() == grad_far[:n].tobytes(), (name, r)
    losses, grad = P.softmax_xent_index_rows(variant, z, target, grad_scale=np.ones(len(z)))
    losses_far, grad_far = P.softmax_xent_index_rows(variant, z_far, target,
                                                     grad_scale=np.ones(len(z)))
    assert losses.tobytes() == losses_far.tobytes()
    assert grad.tobytes() == np.ascontiguousarray(grad_far[:, :n]).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS[1:] or [pytest.param("none", marks=pytest.mark.skip(
    reason="this CPU runs the baseline variant only"))])
def test_every_simd_variant_gives_the_baseline_bits(variant, dtype):
    baseline = all_function_calls(dtype, "baseline", np.random.default_rng(5))
    other = all_function_calls(dtype, variant, np.random.default_rng(5))
    assert len(baseline) == len(other)
    for i, (a, b) in enumerate(zip(baseline, other)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype
        assert a.tobytes() == b.tobytes(), f"result {i} differs between baseline and {variant}"


def test_simd_selection():
    assert P.available()[0] == "baseline"
    assert P.select("baseline") and P.active() == "baseline"
    assert not P.select("no-such-variant") and P.active() == "baseline"
    assert P.select(None) and P.active() == P.available()[-1]


# ---------------------------------------------------------------- ulp accuracy

mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp
DIGITS = 50  # working precision of the exact values (mpmath.workdps: no global change)

# What each primitive computes, in mpmath.
EXACT = {
    "exp": lambda x: mp.exp(x),
    "log": lambda x: mp.log(x) if x > 0 else (mp.ninf if x == 0 else mp.nan),
    "log1p": lambda x: mp.log1p(x) if x > -1 else (mp.ninf if x == -1 else mp.nan),
    "log1pexp": lambda x: mp.log1p(mp.exp(x)),
    "log_sigmoid": lambda x: -mp.log1p(mp.exp(-x)),
    "sigmoid": lambda x: 1 / (1 + mp.exp(-x)),
}
MAX_ULP = 4.0


def ulp_error(computed, exact, dtype):
    """|computed - exact| in units of the last place of the correctly rounded
    value in `dtype` (subnormal results: the subnormal spacing); 0 for a
    matching special value, inf for a wrong one."""
    info = np.finfo(dtype)
    precision, min_exponent, max_exponent = info.nmant + 1, info.minexp, info.maxexp
    computed = float(computed)
    if mpmath.isnan(exact):
        return 0.0 if np.isnan(computed) else np.inf
    overflow = (2 - mp.mpf(2) ** -precision) * mp.mpf(2) ** (max_exponent - 1)
    if mpmath.isinf(exact) or abs(exact) >= overflow:
        return 0.0 if computed == (np.inf if exact > 0 else -np.inf) else np.inf
    if not np.isfinite(computed):
        return np.inf
    exponent = mp.frexp(exact)[1] - 1 if exact != 0 else min_exponent
    ulp = mp.mpf(2) ** (max(exponent, min_exponent) - precision + 1)
    return float(abs(mp.mpf(computed) - exact) / ulp)


def special_points(dtype):
    info = np.finfo(dtype)
    return [0.0, -0.0, np.inf, -np.inf, np.nan, info.max, -info.max, info.tiny, -info.tiny,
            info.smallest_subnormal, -info.smallest_subnormal, 1.0, -1.0]


def around(points, dtype, ulps=3):
    """Each point and its neighbours a few ulps away, in dtype."""
    out = []
    for p in np.asarray(points, dtype):
        q = p
        for _ in range(ulps):
            q = np.nextafter(q, dtype(np.inf))
            out.append(q)
        q = p
        for _ in range(ulps):
            q = np.nextafter(q, dtype(-np.inf))
            out.append(q)
        out.append(p)
    return out


def sample_points(name, dtype, count, rng):
    """Arguments covering the whole finite range of `name` in `dtype`: a
    uniform sweep, log-uniform magnitudes of both signs, the overflow and
    underflow (subnormal-result) edges, the cut-offs and specials."""
    info = np.finfo(dtype)
    is64 = dtype == np.float64
    log_max = float(np.log(info.max))
    log_min_sub = float(np.log(info.smallest_subnormal))
    log_tiny = float(np.log(info.tiny))
    magnitudes = np.exp(rng.uniform(np.log(info.smallest_subnormal), np.log(info.max), count))
    signs = rng.choice([-1.0, 1.0], count)
    points = list(special_points(dtype))
    if name == "exp":
        points += list(rng.uniform(log_min_sub - 1, log_max + 1, count))
        points += list(rng.uniform(log_min_sub, log_tiny, count // 2))  # subnormal results
        points += list(signs * np.exp(rng.uniform(np.log(info.smallest_subnormal), 0, count)))
        points += around([log_max, log_min_sub, log_min_sub + np.log(2) / 2, log_tiny,
                          np.log(2) / 2, -np.log(2) / 2, 1e-300 if is64 else 1e-38], dtype)
    elif name == "log":
        points += list(magnitudes) + list(rng.uniform(0.5, 2, count // 2))
        points += list(rng.uniform(0, info.tiny, count // 4))  # subnormal arguments
        points += around([1.0, np.sqrt(0.5), np.sqrt(2), 2.0, 0.5], dtype, ulps=6)
    elif name == "log1p":
        points += list(magnitudes)
        points += list(-np.exp(rng.uniform(np.log(info.smallest_subnormal), 0, count)))
        points += list(-1 + np.exp(rng.uniform(np.log(info.eps), 0, count // 2)))  # near -1
        points += around([-1.0, -0.5, np.sqrt(0.5) - 1, np.sqrt(2) - 1, 1.0], dtype, ulps=6)
    else:  # log1pexp, log_sigmoid, sigmoid
        points += list(rng.uniform(-1.1 * log_max, 1.1 * log_max, count))
        points += list(rng.uniform(-40, 40, count))
        points += list(signs * magnitudes)
        cuts = [-37.0, -2.0, 18.0, 33.3] if is64 else [-17.0, -2.0, 15.0, 18.0]
        points += around(cuts + [-c for c in cuts] + [0.0], dtype, ulps=4)
        points += list(np.concatenate([np.linspace(c - 0.5, c + 0.5, 41) for c in cuts]))
    return np.array(points, dtype=dtype)


def max_ulp(name, dtype, count, seed=0):
    """(max ulp error, argument) of the crossent_math.h primitive `name`."""
    x = sample_points(name, dtype, count, np.random.default_rng(seed))
    computed = P.scalar(name, x)
    # The vectorised block of every variant must agree with the scalar code.
    if name in ("exp", "log", "log1p", "log1pexp", "sigmoid", "log_sigmoid"):
        for variant in VARIANTS:
            np.testing.assert_array_equal(P.block(variant, name, x), computed)
    worst, worst_x = 0.0, None
    with mpmath.workdps(DIGITS):
        for xi, ci in zip(x, computed):
            err = ulp_error(ci, EXACT[name](mp.mpf(float(xi))), dtype)
            if err > worst:
                worst, worst_x = err, float(xi)
    return worst, worst_x


PRIMITIVES = ["exp", "log", "log1p", "log1pexp", "log_sigmoid", "sigmoid"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", PRIMITIVES)
def test_primitive_is_within_4_ulp_of_mpmath(name, dtype):
    worst, where = max_ulp(name, dtype, count=1500)
    assert worst <= MAX_ULP, f"{name} {np.dtype(dtype)}: {worst:.2f} ulp at x = {where!r}"


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", PRIMITIVES)
def test_primitive_is_within_4_ulp_of_mpmath_thorough(name, dtype):
    worst, where = max_ulp(name, dtype, count=15000, seed=1)
    print(f"\nmax ulp {name} {np.dtype(dtype)}: {worst:.3f} at x = {where!r}")
    assert worst <= MAX_ULP, f"{name} {np.dtype(dtype)}: {worst:.2f} ulp at x = {where!r}"


# float64 NumPy versions of the primitives: accurate to ~1e-16, far below a
# float32 ulp, so they measure float32 errors on millions of points cheaply.
FLOAT64_REFERENCE = {
    "exp": np.exp,
    "log": np.log,
    "log1p": np.log1p,
    "log1pexp": lambda x: np.logaddexp(0, x),
    "log_sigmoid": lambda x: -np.logaddexp(0, -x),
    "sigmoid": lambda x: np.exp(-np.logaddexp(0, -x)),
}


def float32_ulp_errors(name, x):
    """ulp errors of the float32 primitive on x against its float64 value."""
    with np.errstate(all="ignore"):  # log(<0), overflow to inf: the specials checked below
        exact = FLOAT64_REFERENCE[name](x.astype(np.float64))
        rounded = exact.astype(np.float32)
    computed = P.block(VARIANTS[-1], name, x).astype(np.float64)
    finite = np.isfinite(rounded)
    # Where the correctly rounded value is inf or NaN, the result must equal it.
    assert np.array_equal(computed[~finite], rounded[~finite].astype(np.float64), equal_nan=True)
    ulp = np.spacing(np.abs(rounded[finite])).astype(np.float64)
    return np.abs(computed[finite] - exact[finite]) / ulp


@pytest.mark.parametrize("name", PRIMITIVES)
def test_float32_primitive_on_a_million_points(name):
    rng = np.random.default_rng(3)
    if name in ("log", "log1p"):
        bits = rng.integers(0, 0x7F800000, 10**6, dtype=np.uint32)  # every positive float
        x = bits.view(np.float32)
        if name == "log1p":
            x = np.concatenate([x, -x[x < 1]])
    else:
        x = rng.uniform(-110, 110, 10**6).astype(np.float32)
    assert np.max(float32_ulp_errors(name, x)) <= MAX_ULP


def restricted_domain(name, dtype):
    """Arguments of a primitive restricted to a domain: a million float32
    drawn uniformly over its bit patterns (every binade), float64 samples
    across it, and its edges."""
    rng = np.random.default_rng(11)
    if name == "log1p_unit":    # [0, 1]
        if dtype == np.float32:
            x = rng.integers(0, 0x3F800001, 10**6, dtype=np.uint32).view(np.float32)
        else:
            x = np.concatenate([rng.random(10**6), np.exp(-rng.uniform(0, 745, 10**5))])
        edges = [0.0, 1.0, np.nextafter(1, 0)]
    elif name == "exp_moderate":  # [CE_EXP_MODERATE, 0]: -87.5 float32, -708 float64
        low = 87.5 if dtype == np.float32 else 708.0
        if dtype == np.float32:
            x = -rng.integers(0, 0x42AF0001, 10**6, dtype=np.uint32).view(np.float32)
        else:
            x = -np.concatenate([rng.uniform(0, low, 10**6), np.exp(rng.uniform(-745, 6.5, 10**5))])
        # float32 results are subnormal below -87.34: the one-factor scaling
        # must round them as the two factors do
        x = np.concatenate([x, -np.linspace(low - 0.2, low, 10**4)])
        edges = [0.0, -0.0, -low]
    else:                       # exp_nonpositive: [-inf, 0]
        if dtype == np.float32:
            x = -rng.integers(0, 0x7F800001, 10**6, dtype=np.uint32).view(np.float32)
        else:
            x = -np.concatenate([rng.uniform(0, 800, 10**6), np.exp(rng.uniform(-745, 7, 10**5))])
        edges = [0.0, -0.0, -np.inf, -745.2, -745.1, -104.0, -103.9, -87.4]
    return np.concatenate([x, np.array(edges + [np.nan, -np.nan], dtype)]).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_exp_moderate_block_gives_the_scalar_bits(variant, dtype):
    """The vectorised exp_moderate (timed by benchmarks/roofline.py) is the
    scalar primitive, bit for bit, on its whole range."""
    x = restricted_domain("exp_moderate", dtype)
    x = x[~np.isnan(x)]
    want = P.scalar("exp_moderate", x)
    assert P.block(variant, "exp_moderate", x).tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, general", [("log1p_unit", "log1p"), ("exp_nonpositive", "exp"),
                                           ("exp_moderate", "exp")])
def test_restricted_primitive_gives_the_general_bits_on_its_domain(name, general, dtype):
    """log1p_unit (on exp(-|z|)) and exp_nonpositive (on max-shifted logits)
    drop selects of log1p and exp that cannot fire on their domain, and
    exp_moderate (on rows whose shifted logits all lie above -87.5 / -708)
    scales by 2^k in one factor; nothing else may change there, and NaN
    stays NaN."""
    x = restricted_domain(name, dtype)
    got, want = P.scalar(name, x), P.scalar(general, x)
    nan = np.isnan(x)
    assert np.isnan(got[nan]).all()
    bits = np.uint32 if dtype == np.float32 else np.uint64
    assert np.array_equal(got[~nan].view(bits), want[~nan].view(bits))


# ---------------------------------------------------------------- speed

def ns_per_element(function, x, repeats=5):
    """Best-of-`repeats` wall time of function(x) per element, in ns."""
    import time
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function(x)
        best = min(best, time.perf_counter() - start)
    return best / x.size * 1e9


def exp_timings(size=10**7):
    """ns/element of the vectorised exp of each variant and of libm's exp /
    expf (called per element from a C loop), on `size` arguments where the
    results are normal."""
    rows = {}
    for dtype in DTYPES:
        x = np.random.default_rng(0).uniform(-80, 80, size).astype(dtype)
        out = np.empty_like(x)
        timings = {v: ns_per_element(lambda a: P.block(v, "exp", a, out=out), x) for v in VARIANTS}
        timings["libm"] = ns_per_element(lambda a: P.scalar("libm_exp", a), x)
        rows[np.dtype(dtype).name] = timings
    return rows


@pytest.mark.slow
def test_vectorised_exp_beats_libm():
    rows = exp_timings()
    for dtype, timings in rows.items():
        print(f"\nexp {dtype} ns/element: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    # The best variant must beat a libm call per element (a lax bound: the
    # machine is shared).
    for dtype, timings in rows.items():
        assert timings[VARIANTS[-1]] < timings["libm"], (dtype, timings)


if __name__ == "__main__":
    # The numbers of docs/numerics.md:
    #   python tests/test_math_header.py          exp timings
    #   python tests/test_math_header.py ulp N    max ulp per primitive (N = 30000: ~3 min)
    import sys
    if sys.argv[1:2] == ["ulp"]:
        for name in PRIMITIVES:
            for dtype in DTYPES:
                worst, where = max_ulp(name, dtype, int(sys.argv[2]), seed=2)
                print(f"{name:12s} {np.dtype(dtype).name}: max {worst:.3f} ulp at x = {where!r}")
    else:
        for dtype, timings in exp_timings().items():
            print(f"exp {dtype:8s} ns/element: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
