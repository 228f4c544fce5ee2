"""linear_cross_entropy (SPEC §7): cross_entropy(h @ W.T + b, ...) without the
N × V logits.

* the value and all three gradients equal the materialised computation
  (crossent.cross_entropy on h @ W.T + b, its gradient taken to h, W, b by
  the chain rule) for chunk sizes 1, a prime and >= N, with and without
  ignored rows, weights, smoothing, z_loss, softcap, index and soft targets,
  every reduction, every backend;
* torch parity (F.linear + F.cross_entropy with autograd, and
  F.linear_cross_entropy where this torch has it);
* per-token lse and z-loss terms; determinism; layouts; bad input.
"""
import warnings

import numpy as np
import pytest

import crossent
from crossent._linear_ce import default_chunk_size

RTOL = {np.float32: 2e-5, np.float64: 1e-11}


def _problem(rng, dtype, n=23, d=9, v=17, soft=False, ignored=True):
    h = rng.standard_normal((n, d)).astype(dtype)
    w = (rng.standard_normal((v, d)) / 2).astype(dtype)
    b = rng.standard_normal(v).astype(dtype)
    if soft:
        y = rng.random((n, v))
        return h, w, b, (y / y.sum(axis=1, keepdims=True)).astype(dtype)
    t = rng.integers(0, v, n)
    if ignored:
        t[[0, 5, 6, n - 1]] = -100
    return h, w, b, t


def _materialised(h, w, b, target, **kwargs):
    """cross_entropy on the full logits; (loss, (dh, dW, db)) by the chain rule."""
    logits = h @ w.T + (0 if b is None else b)
    loss, g = crossent.cross_entropy(logits, target, return_grad=True, **kwargs)
    g = g.astype(np.float64)
    return loss, (g @ w, g.T @ h, g.sum(axis=0))


def _close(actual, expected, dtype):
    expected = np.asarray(expected, np.float64)
    atol = RTOL[dtype] * max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=RTOL[dtype],
                               atol=atol)


OPTION_SETS = {
    "plain": {},
    "weights": dict(weight="class", sample_weight="sample"),
    "smoothing": dict(label_smoothing=0.15),
    "z_loss": dict(z_loss=1e-2),
    "softcap": dict(softcap=3.0),
    "all": dict(weight="class", sample_weight="sample", label_smoothing=0.1, z_loss=1e-3,
                softcap=5.0),
}


def _options(name, rng, n, v, dtype):
    options = dict(OPTION_SETS[name])
    if options.get("weight") == "class":
        options["weight"] = rng.random(v) + 0.5
    if options.get("sample_weight") == "sample":
        options["sample_weight"] = (rng.random(n) + 0.5).astype(dtype)
    return options


@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.slow)])
@pytest.mark.parametrize("chunk_size", [1, 7, 64])
@pytest.mark.parametrize("options", list(OPTION_SETS))
@pytest.mark.parametrize("target_kind", ["index", "ignored", "soft"])
@pytest.mark.parametrize("reduction", ["mean", pytest.param("sum", marks=pytest.mark.slow), "none"])
def test_equals_the_materialised_loss_and_gradients(backend, dtype, chunk_size, options,
                                                    target_kind, reduction):
    rng = np.random.default_rng(1)
    h, w, b, target = _problem(rng, dtype, soft=target_kind == "soft",
                               ignored=target_kind == "ignored")
    kwargs = _options(options, rng, len(h), len(w), dtype)
    kwargs.update(reduction=reduction, backend=backend)
    loss, (dh, dw, db) = crossent.linear_cross_entropy(h, w, target, bias=b, return_grad=True,
                                                       chunk_size=chunk_size, **kwargs)
    expected, (edh, edw, edb) = _materialised(h, w, b, target, **kwargs)
    assert np.asarray(loss).dtype == dtype and dh.dtype == dw.dtype == db.dtype == dtype
    assert dh.shape == h.shape and dw.shape == w.shape and db.shape == b.shape
    _close(loss, expected, dtype)
    _close(dh, edh, dtype)
    _close(dw, edw, dtype)
    _close(db, edb, dtype)


@pytest.mark.parametrize("chunk_size", [None, 1, 5, 1000])
def test_loss_only_and_without_bias(backend, chunk_size):
    rng = np.random.default_rng(2)
    h, w, _, target = _problem(rng, np.float64)
    loss = crossent.linear_cross_entropy(h, w, target, chunk_size=chunk_size, backend=backend)
    assert loss == pytest.approx(float(crossent.cross_entropy(h @ w.T, target)), rel=1e-12)
    _, (dh, dw, db) = crossent.linear_cross_entropy(h, w, target, return_grad=True,
                                                    chunk_size=chunk_size, backend=backend)
    _, (edh, edw, _) = _materialised(h, w, None, target)
    assert db is None
    _close(dh, edh, np.float64)
    _close(dw, edw, np.float64)


def test_leading_dimensions_and_transposed_weight(backend):
    rng = np.random.default_rng(3)
    h = rng.standard_normal((3, 5, 8)).astype(np.float32)
    w_t = rng.standard_normal((8, 30)).astype(np.float32)  # (d, V): its .T is (V, d)
    target = rng.integers(0, 30, (3, 5))
    loss, (dh, dw, _) = crossent.linear_cross_entropy(h, w_t.T, target, return_grad=True,
                                                      reduction="none", backend=backend)
    expected, (edh, edw, _) = _materialised(h.reshape(15, 8), w_t.T, None, target.reshape(15),
                                            reduction="none")
    assert loss.shape == (3, 5) and dh.shape == h.shape and dw.shape == (30, 8)
    _close(loss.reshape(15), expected, np.float32)
    _close(dh.reshape(15, 8), edh, np.float32)
    _close(dw, edw, np.float32)


@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_any_layout_of_h_and_w(backend, layout):
    rng = np.random.default_rng(13)
    h, w, b, target = _problem(rng, np.float32, ignored=False)
    if layout == "fortran":
        h_view, w_view = np.asfortranarray(h), np.asfortranarray(w)
    else:
        h_view = np.repeat(h, 2, axis=1)[:, ::2]
        w_view = np.repeat(w, 3, axis=0)[::3]
    expected = crossent.linear_cross_entropy(h, w, target, bias=b, return_grad=True,
                                             chunk_size=5, backend=backend)
    got = crossent.linear_cross_entropy(h_view, w_view, target, bias=b, return_grad=True,
                                        chunk_size=5, backend=backend)
    _close(got[0], expected[0], np.float32)
    for ours, theirs in zip(got[1], expected[1]):
        _close(ours, theirs, np.float32)


def test_ignored_rows_cost_no_gemm_and_get_zero_gradient(backend):
    rng = np.random.default_rng(4)
    h, w, b, target = _problem(rng, np.float64)
    ignored = target == -100
    h_nan = h.copy()
    h_nan[ignored] = np.nan  # never read: a GEMM over them would spread NaN
    loss, (dh, dw, db) = crossent.linear_cross_entropy(h_nan, w, target, bias=b,
                                                       return_grad=True, backend=backend)
    assert np.isfinite(loss) and np.isfinite(dw).all() and np.isfinite(db).all()
    assert (dh[ignored] == 0).all()
    expected, _ = _materialised(h, w, b, target)
    assert loss == pytest.approx(float(expected), rel=1e-12)


def test_all_rows_ignored(backend):
    h, w = np.ones((3, 4)), np.ones((5, 4))
    target = np.full(3, -100)
    loss, (dh, dw, db) = crossent.linear_cross_entropy(h, w, target, bias=np.zeros(5),
                                                       return_grad=True, backend=backend)
    assert np.isnan(loss) and not dh.any() and not dw.any() and not db.any()
    assert crossent.linear_cross_entropy(h, w, target, reduction="sum", backend=backend) == 0


def test_per_token_lse_and_z_loss_terms(backend):
    rng = np.random.default_rng(5)
    h, w, b, target = _problem(rng, np.float64)
    sample_weight = rng.random(len(h)) + 0.5
    kwargs = dict(bias=b, z_loss=1e-2, softcap=4.0, sample_weight=sample_weight,
                  weight=rng.random(len(w)) + 0.5, backend=backend)
    losses, terms = crossent.linear_cross_entropy(h, w, target, reduction="none",
                                                  return_lse=True, chunk_size=4, **kwargs)
    v = 4.0 * np.tanh((h @ w.T + b) / 4.0)
    lse = np.log(np.exp(v).sum(axis=1))
    kept = target != -100
    np.testing.assert_allclose(terms.lse[kept], lse[kept], rtol=1e-12)
    assert np.isnan(terms.lse[~kept]).all() and (terms.z_loss[~kept] == 0).all()
    sample_w = kwargs["weight"][np.where(kept, target, 0)] * sample_weight
    np.testing.assert_allclose(terms.z_loss[kept], (1e-2 * sample_w * lse ** 2)[kept],
                               rtol=1e-12)
    # the loss less the z-term is the plain cross-entropy of the capped logits
    plain = crossent.cross_entropy(v, target, reduction="none", weight=kwargs["weight"],
                                   sample_weight=sample_weight)
    np.testing.assert_allclose(losses - terms.z_loss, plain, rtol=1e-10, atol=1e-12)


def test_return_lse_without_transforms_keeps_the_values(backend):
    rng = np.random.default_rng(6)
    h, w, b, target = _problem(rng, np.float32)
    loss = crossent.linear_cross_entropy(h, w, target, bias=b, backend=backend, chunk_size=5)
    loss2, terms = crossent.linear_cross_entropy(h, w, target, bias=b, backend=backend,
                                                 return_lse=True, chunk_size=5)
    _close(loss2, loss, np.float32)
    assert (terms.z_loss == 0).all()


@pytest.mark.parametrize("soft", [False, True])
def test_same_bits_from_call_to_call_and_for_every_n_threads(backend, soft):
    """The row kernel's bits do not depend on its threads; the GEMMs run on
    the BLAS's own threads, unchanged here, so every call gives the same bits."""
    rng = np.random.default_rng(7)
    h, w, b, target = _problem(rng, np.float32, n=300, d=32, v=500, soft=soft)
    results = []
    for n_threads in (1, 2, 1, 2):
        loss, grads = crossent.linear_cross_entropy(h, w, target, bias=b, z_loss=1e-3,
                                                    return_grad=True, chunk_size=37,
                                                    n_threads=n_threads, backend=backend)
        results.append((loss.tobytes(),) + tuple(g.tobytes() for g in grads))
    assert all(r == results[0] for r in results)


def test_the_blas_keeps_its_thread_count(backend):
    """linear_cross_entropy leaves NumPy's BLAS as it found it: a thread
    count left at 1 would make every later GEMM of the process single-threaded."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(8)
    h, w, b, target = _problem(rng, np.float32, n=400, d=64, v=900, soft=False)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = [p["num_threads"] for p in threadpoolctl.threadpool_info()
                  if p["user_api"] == "blas"]
        for n_threads in (2, 1, 2):
            crossent.linear_cross_entropy(h, w, target, bias=b, return_grad=True,
                                          chunk_size=16, n_threads=n_threads, backend=backend)
        after = [p["num_threads"] for p in threadpoolctl.threadpool_info()
                 if p["user_api"] == "blas"]
    assert before and after == before


def test_default_chunk_size_bounds_extra_memory():
    n, v, d = 8192, 128256, 256
    rows = default_chunk_size(n, v, d, np.float32)
    assert rows * (v + 2 * d) * 4 + v * 4 <= n * v * 4 / 16
    assert rows >= 256
    assert default_chunk_size(3, 10, 4, np.float64) == 1
    # 10-class rows of 4 features: 1/16 of 10 float32 per row (less one row of
    # column sums), over 10 + 2·4 floats per row
    assert default_chunk_size(10**6, 10, 4, np.float32) == int((10**6 * 40 / 16 - 40) // 72)


@pytest.mark.parametrize("h_dtype, w_dtype, computed", [
    ("float16", "float16", np.float32), ("bfloat16", "bfloat16", np.float32),
    ("float16", "float32", np.float32), ("float32", "float64", np.float64),
    ("int32", "float16", np.float64)])
def test_dtypes_are_computed_and_returned_as_the_contract_says(backend, h_dtype, w_dtype,
                                                                computed):
    """float16 and bfloat16 operands are computed and returned in float32,
    bit for bit what their exactly widened arrays give (SPEC §1.2, §7)."""
    if "bfloat16" in (h_dtype, w_dtype):
        ml_dtypes = pytest.importorskip("ml_dtypes")
        h_dtype, w_dtype = (ml_dtypes.bfloat16 if d == "bfloat16" else d for d in (h_dtype, w_dtype))
    rng = np.random.default_rng(12)
    h, w, b, target = _problem(rng, np.float64)
    h, w = (h * 4).astype(h_dtype), w.astype(w_dtype)
    loss, grads = crossent.linear_cross_entropy(h, w, target, bias=b, return_grad=True,
                                                backend=backend)
    expected, expected_grads = crossent.linear_cross_entropy(
        h.astype(computed), w.astype(computed), target, bias=b, return_grad=True,
        backend=backend)
    assert loss.dtype == computed and loss.tobytes() == expected.tobytes()
    for ours, theirs in zip(grads, expected_grads):
        assert ours.dtype == computed and ours.tobytes() == theirs.tobytes()


def test_inputs_are_not_modified(backend):
    rng = np.random.default_rng(8)
    h, w, b, target = _problem(rng, np.float32)
    copies = [x.copy() for x in (h, w, b, target)]
    crossent.linear_cross_entropy(h, w, target, bias=b, return_grad=True, softcap=2.0,
                                  backend=backend)
    for x, c in zip((h, w, b, target), copies):
        assert x.tobytes() == c.tobytes()


def test_torch_parity(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(9)
    h, w, b, target = _problem(rng, np.float64)
    weight = rng.random(len(w)) + 0.5
    loss, (dh, dw, db) = crossent.linear_cross_entropy(h, w, target, bias=b, weight=weight,
                                                       label_smoothing=0.1, return_grad=True)
    ht, wt, bt = (torch.tensor(x, requires_grad=True) for x in (h, w, b))
    expected = F.cross_entropy(F.linear(ht, wt, bt), torch.tensor(target),
                               weight=torch.tensor(weight), label_smoothing=0.1)
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    for ours, theirs in ((dh, ht), (dw, wt), (db, bt)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunked", [False, True], ids=["reference", "chunked"])
@pytest.mark.parametrize("options", [{}, dict(label_smoothing=0.1), dict(reduction="sum")])
def test_torch_linear_cross_entropy_parity(torch, chunked, options):
    """F.linear_cross_entropy (torch 2.13), its reference path and its chunked
    one (LinearCrossEntropyOptions), with the options it has."""
    F = torch.nn.functional
    if not hasattr(F, "linear_cross_entropy"):
        pytest.skip("this torch has no F.linear_cross_entropy")
    rng = np.random.default_rng(10)
    h, w, b, target = _problem(rng, np.float32, n=40, d=16, v=50)
    loss, (dh, dw, db) = crossent.linear_cross_entropy(h, w, target, bias=b, return_grad=True,
                                                       **options)
    ht, wt, bt = (torch.tensor(x, requires_grad=True) for x in (h, w, b))
    torch_options = torch.nn.LinearCrossEntropyOptions() if chunked else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unsupported configuration falls back, saying so
        expected = F.linear_cross_entropy(ht, wt, torch.tensor(target), linear_bias=bt,
                                          ignore_index=-100, options=torch_options, **options)
    expected.backward()
    _close(db, bt.grad.numpy(), np.float32)
    assert float(loss) == pytest.approx(expected.item(), rel=1e-5)
    _close(dh, ht.grad.numpy(), np.float32)
    _close(dw, wt.grad.numpy(), np.float32)


@pytest.mark.parametrize("args, kwargs, error, words", [
    ((np.ones((2, 3)), np.ones((4, 5)), np.zeros(2, int)), {}, ValueError, "linear_weight"),
    ((np.ones((2, 3)), np.ones(3), np.zeros(2, int)), {}, ValueError, "linear_weight"),
    ((np.ones((2, 3)), np.ones((4, 3)), np.zeros(3, int)), {}, ValueError, "target"),
    ((np.ones((2, 3)), np.ones((4, 3)), np.array([0, 4])), {}, ValueError, "outside"),
    ((np.ones((2, 3)), np.ones((4, 3)), np.ones((2, 5))), {}, ValueError, "target"),
    ((np.ones((2, 3)), np.ones((4, 3)), np.zeros(2, int)), dict(bias=np.ones(3)), ValueError,
     "bias"),
    ((np.ones((2, 3)), np.ones((4, 3)), np.zeros(2, int)), dict(chunk_size=0), ValueError,
     "chunk_size"),
    ((np.ones((2, 3)), np.ones((4, 3)), np.zeros(2, int)), dict(chunk_size=2.5), TypeError,
     "chunk_size"),
    ((np.ones((2, 3)), np.ones((4, 3)), np.zeros(2, int)), dict(softcap=-1.0), ValueError,
     "softcap"),
    ((np.ones((2, 3)), np.ones((4, 3)), np.zeros(2, int)), dict(reduction="avg"), ValueError,
     "reduction"),
    ((np.ones((2, 3)), np.ones((0, 3)), np.zeros(2, int)), {}, ValueError, "linear_weight"),
    ((np.ones((2, 3)), np.ones((4, 3)), np.zeros(2, int)), dict(weight=np.ones(3)), ValueError,
     "weight"),
])
def test_bad_input_raises_naming_the_argument(backend, args, kwargs, error, words):
    with pytest.raises(error, match=words):
        crossent.linear_cross_entropy(*args, backend=backend, **kwargs)


def test_without_numpys_cblas_dw_is_accumulated_through_a_buffer(monkeypatch):
    """Where NumPy's BLAS library is not found, dW += gᵀh goes through a
    chunk-sized buffer: the same values."""
    from crossent import _linear_ce
    rng = np.random.default_rng(12)
    h, w, b, target = _problem(rng, np.float64)
    expected = crossent.linear_cross_entropy(h, w, target, bias=b, return_grad=True,
                                             chunk_size=4)
    monkeypatch.setattr(_linear_ce, "_GEMM", {})
    fallback = crossent.linear_cross_entropy(h, w, target, bias=b, return_grad=True,
                                             chunk_size=4)
    _close(fallback[0], expected[0], np.float64)
    for ours, theirs in zip(fallback[1], expected[1]):
        _close(ours, theirs, np.float64)


def test_numpys_blas_is_found():
    from crossent import _linear_ce
    gemms = _linear_ce._load_cblas_gemm()
    if not glob_openblas():
        pytest.skip("this NumPy does not bundle OpenBLAS")
    assert {np.dtype(np.float32), np.dtype(np.float64)} <= set(gemms)


def glob_openblas():
    import glob
    import os
    return glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs",
                                  "libscipy_openblas*"))
