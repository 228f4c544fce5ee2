"""float16 and bfloat16 predictions (SPEC §1.2, §7): read as they are, a
block at a time, computed in float32 and returned in float32, bit for bit
what the exactly upcast float32 array gives -- in every layout, on every
backend and SIMD variant -- without a full copy."""
import tracemalloc

import numpy as np
import pytest

import crossent
from arrays import layouts

try:
    import ml_dtypes
except ImportError:     # bfloat16 is an optional extra; float16 is NumPy's own
    ml_dtypes = None
HALF_DTYPES = [pytest.param(np.dtype(np.float16), id="float16"),
               pytest.param(np.dtype(ml_dtypes.bfloat16) if ml_dtypes else None, id="bfloat16",
                            marks=pytest.mark.skipif(ml_dtypes is None, reason="needs ml_dtypes"))]

LOSSES = ["cross_entropy", "categorical_cross_entropy", "nll_loss", "kl_div",
          "binary_cross_entropy_with_logits", "binary_cross_entropy", "mse_loss", "focal_loss"]
ACTIVATIONS = ["sigmoid", "log_sigmoid", "softmax", "log_softmax", "logsumexp"]


def prediction(name, shape, rng):
    """float32 predictions of the kind ``name`` takes (in range for the
    probability losses)."""
    z = rng.normal(size=shape).astype(np.float32) * 3
    if name == "categorical_cross_entropy":
        return crossent.softmax(z)
    if name == "binary_cross_entropy":
        return crossent.sigmoid(z)
    if name in ("nll_loss", "kl_div"):
        return crossent.log_softmax(z)
    return z


def target(name, shape, rng):
    if name in ("cross_entropy", "categorical_cross_entropy", "nll_loss"):
        t = rng.integers(0, shape[-1], shape[:-1])
        t.reshape(-1)[::5] = -100          # some ignored rows
        return t
    if name == "kl_div":
        return crossent.softmax(rng.normal(size=shape)).astype(np.float32)
    if name == "mse_loss":
        return rng.normal(size=shape).astype(np.float32)
    return (rng.random(shape) < 0.5).astype(np.float32)


def run(name, x, y, backend, **options):
    function = getattr(crossent, name)
    if name in ACTIVATIONS:
        return function(x, backend=backend)
    return function(x, y, backend=backend, return_grad=True, **options)


def assert_same_bits(got, expected, what):
    for g, e in zip(got if isinstance(got, tuple) else (got,),
                    expected if isinstance(expected, tuple) else (expected,)):
        g, e = np.asarray(g), np.asarray(e)
        assert g.dtype == np.float32 and e.dtype == np.float32, what
        np.testing.assert_array_equal(g, e, err_msg=what)


def check_every_layout(name, dtype, backend, shape=(37, 11), **options):
    rng = np.random.default_rng(0)
    exact = prediction(name, shape, rng).astype(dtype)      # values dtype can hold
    y = target(name, shape, rng)
    for layout, x in layouts(exact, broadcast=False):
        expected = run(name, np.ascontiguousarray(x).astype(np.float32), y, backend, **options)
        assert_same_bits(run(name, x, y, backend, **options), expected,
                         f"{name} {dtype.name} {layout} {options}")


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("name", LOSSES + ACTIVATIONS)
def test_half_predictions_give_the_bits_of_their_float32_upcast(name, dtype, backend):
    check_every_layout(name, dtype, backend)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("options", [{"reduction": "none"}, {"reduction": "sum"},
                                     {"sample_weight": "rows", "label_smoothing": 0.1},
                                     {"weight": "classes"}], ids=["none", "sum", "weighted", "class"])
def test_half_logits_with_options(dtype, options, compiled_backend):
    rng = np.random.default_rng(1)
    options = dict(options)
    if options.get("sample_weight") == "rows":
        options["sample_weight"] = rng.random(37).astype(np.float32)
    if options.get("weight") == "classes":
        options["weight"] = rng.random(11) + 0.5
    check_every_layout("cross_entropy", dtype, compiled_backend, **options)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("shape", [(1, 40_000), (3000, 3), (5, 1), (0, 4), (2, 3, 7), (6, 8),
                                   (6, 9), (70, 100)],
                         ids=["one-wide-row", "narrow-rows", "one-class", "empty", "3d", "8-wide",
                              "9-wide", "100-wide"])
def test_half_logits_of_every_shape(dtype, shape, compiled_backend):
    for name in ("cross_entropy", "softmax", "binary_cross_entropy_with_logits"):
        rng = np.random.default_rng(2)
        x = prediction(name, shape, rng).astype(dtype)
        y = target(name, shape, rng)
        assert_same_bits(run(name, x, y, compiled_backend),
                         run(name, x.astype(np.float32), y, compiled_backend), f"{name} {shape}")


def every_bit_pattern(dtype):
    return np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(dtype)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_every_half_value_is_widened_exactly(dtype, compiled_backend):
    """All 65 536 values, subnormals, ±0, ±inf and NaNs included, through
    activations whose results tell the values apart."""
    x = every_bit_pattern(dtype).reshape(256, 256)
    wide = x.astype(np.float32)
    for name in ("sigmoid", "log_sigmoid", "log_softmax"):
        function = getattr(crossent, name)
        np.testing.assert_array_equal(function(x, backend=compiled_backend),
                                      function(wide, backend=compiled_backend), err_msg=name)
    loss, grad = crossent.mse_loss(x, np.zeros(x.shape, np.float32), reduction="none",
                                   return_grad=True, backend=compiled_backend)
    with np.errstate(over="ignore", invalid="ignore"):
        twice = 2 * wide          # exact (or inf): the widened values themselves
    np.testing.assert_array_equal(grad, twice)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_every_half_value_widens_to_the_same_bits_in_every_simd_variant(dtype):
    """The vector widening (F16C) of the AVX2/AVX-512 variants and the
    portable loop of the baseline agree on every bit, NaN payloads included
    (x − 0 and 2·x carry a NaN's payload through)."""
    backends = pytest.importorskip("crossent._cython_backend")
    best = backends.info()["simd"]
    x = every_bit_pattern(dtype)
    zeros = np.zeros(x.shape, np.float32)
    bits = {}
    try:
        for variant in backends.info()["simd_available"].split(","):
            backends.set_simd(variant)
            _, grad = crossent.mse_loss(x, zeros, reduction="none", return_grad=True,
                                        backend="cython")
            bits[variant] = grad.view(np.uint32)
    finally:
        backends.set_simd(best)
    for variant, got in bits.items():
        np.testing.assert_array_equal(got, bits["baseline"], err_msg=variant)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_every_simd_variant_gives_the_same_bits(dtype):
    backends = pytest.importorskip("crossent._cython_backend")
    best = backends.info()["simd"]
    rng = np.random.default_rng(3)
    x = prediction("cross_entropy", (300, 37), rng).astype(dtype)
    y = target("cross_entropy", (300, 37), rng)
    results = {}
    try:
        for variant in backends.info()["simd_available"].split(","):
            backends.set_simd(variant)
            results[variant] = (crossent.cross_entropy(x, y, return_grad=True, backend="cython"),
                                crossent.cross_entropy(x.astype(np.float32), y, return_grad=True,
                                                       backend="cython"))
    finally:
        backends.set_simd(best)
    for variant, (half, wide) in results.items():
        assert_same_bits(half, wide, variant)
        assert_same_bits(half, results["baseline"][0], variant)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("name", ["cross_entropy", "binary_cross_entropy_with_logits", "softmax"])
def test_no_full_copy_of_half_predictions(name, dtype, compiled_backend):
    """tracemalloc sees every NumPy allocation: a float32 copy of the input
    would be twice its size; the staging buffers are a few blocks."""
    shape = (100_000, 40)                                # 8 MB of 2-byte floats
    rng = np.random.default_rng(4)
    x = rng.normal(size=shape).astype(dtype)
    y = target(name, shape, rng)
    run(name, x[:64], y[:64], compiled_backend)          # warm up
    tracemalloc.start()
    try:
        if name == "softmax":
            crossent.logsumexp(x, backend=compiled_backend)   # output of one value per row
        else:
            getattr(crossent, name)(x, y, backend=compiled_backend)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 8, f"peak {peak} bytes for {x.nbytes} bytes of input"


def test_half_results_and_outputs_are_float32():
    x = np.linspace(-3, 3, 12, dtype=np.float16).reshape(3, 4)
    assert crossent.softmax(x).dtype == np.float32
    assert crossent.cross_entropy(x, np.array([0, 1, 3])).dtype == np.float32
    out = np.empty((3, 4), np.float32)
    assert crossent.softmax(x, out=out) is out
    np.testing.assert_array_equal(out, crossent.softmax(x.astype(np.float32)))
    with pytest.raises(ValueError, match="out: expected dtype float32"):
        crossent.softmax(x, out=np.empty((3, 4), np.float16))
    with pytest.raises(ValueError, match="grad_out: expected dtype float32"):
        crossent.cross_entropy(x, np.array([0, 1, 3]), return_grad=True,
                               grad_out=np.empty((3, 4), np.float16))


def test_half_file_evaluates_as_its_upcast(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(5000, 9)).astype(np.float16)
    t = rng.integers(0, 9, 5000)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    got = crossent.evaluate("cross_entropy", str(tmp_path / "x.npy"), str(tmp_path / "t.npy"),
                            chunk_rows=640)
    assert got.dtype == np.float32
    assert got == crossent.cross_entropy(x.astype(np.float32), t)


def test_bfloat16_torch_tensor_is_read_without_a_copy():
    torch = pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    from crossent._validate import as_array
    tensor = torch.randn(64, 10).to(torch.bfloat16)
    array = as_array(tensor, "logits")
    assert array.dtype == np.dtype(ml_dtypes.bfloat16) and array.ctypes.data == tensor.data_ptr()
    labels = torch.randint(0, 10, (64,))
    assert (crossent.cross_entropy(tensor, labels)
            == crossent.cross_entropy(tensor.float().numpy(), labels.numpy()))
