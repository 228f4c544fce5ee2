"""What is specific to the C backend (crossent._c_backend): its CPython
binding (argument checking, writing through strided outputs), info() and
set_simd(), and that it builds with a C compiler and NumPy alone.

The kernels' numbers are checked for both compiled backends in
test_compiled_loops.py."""
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

C = pytest.importorskip("crossent._c_backend")

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_name_and_info():
    info = C.info()
    assert C.NAME == "c"
    assert set(info) >= {"simd", "simd_available", "openmp", "build_flags", "max_threads", "binding"}
    assert info["simd"] in info["simd_available"].split(",")
    assert info["openmp"] == ("-fopenmp" in info["build_flags"])
    assert isinstance(info["max_threads"], int) and info["max_threads"] >= 1
    assert info["max_threads"] == 1 or info["openmp"]
    assert info["binding"] == "cpython-fastcall"


def test_set_simd_selects_each_available_variant():
    best = C.info()["simd"]
    try:
        for variant in C.info()["simd_available"].split(","):
            C.set_simd(variant)
            assert C.info()["simd"] == variant
    finally:
        C.set_simd(best)
    assert C.info()["simd"] == best


@pytest.mark.parametrize("variant, error", [("no-such-variant", ValueError), (3, TypeError)])
def test_set_simd_rejects(variant, error):
    before = C.info()["simd"]
    with pytest.raises(error, match="variant"):
        C.set_simd(variant)
    assert C.info()["simd"] == before


# ------------------------------------------------------------ argument errors

def softmax_xent_index_args(dtype=np.float32, rows=4, n_classes=5):
    """Valid positional arguments of softmax_xent_index, as a mutable list."""
    rng = np.random.default_rng(0)
    z3 = rng.normal(size=(1, rows, n_classes)).astype(dtype)
    target2 = rng.integers(0, n_classes, size=(1, rows))
    return [z3, target2, np.ones(n_classes), np.ones((1, rows), dtype), -100, 0.1,
            np.empty((1, rows), dtype), np.empty_like(z3), 1.0, 1, 0.0]


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def misaligned(a):
    raw = np.zeros(a.nbytes + 1, np.uint8)
    view = np.frombuffer(raw.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    assert not view.flags.aligned
    return view


# (position, replacement(valid argument) -> bad argument, exception, message fragment)
BAD_ARGUMENTS = {
    "z3 not an array": (0, lambda a: a.tolist(), TypeError, "'z3' must be a numpy.ndarray"),
    "z3 None": (0, lambda a: None, TypeError, "'z3' must be a numpy.ndarray"),
    "z3 2-D": (0, lambda a: a[0], ValueError, "'z3' must be 3-D"),
    "z3 int32": (0, lambda a: a.astype(np.int32), TypeError, "'z3' must be a float32 or float64"),
    "z3 byte-swapped": (0, lambda a: a.astype(a.dtype.newbyteorder()), ValueError, "native byte order"),
    "z3 misaligned": (0, misaligned, ValueError, "aligned"),
    "target2 float": (1, lambda a: a.astype(np.float32), TypeError, "'target2' must be an int32 or int64"),
    "target2 int16": (1, lambda a: a.astype(np.int16), TypeError, "'target2' must be an int32 or int64"),
    "target2 shape": (1, lambda a: a[:, :-1], ValueError, "'target2' must have shape"),
    "class_weight float32": (2, lambda a: a.astype(np.float32), TypeError, "'class_weight'"),
    "class_weight strided": (2, lambda a: np.ones(2 * a.size)[::2], TypeError, "'class_weight'"),
    "class_weight length": (2, lambda a: a[:-1], ValueError, "'class_weight' must have shape"),
    "sample_weight2 other dtype": (3, lambda a: a.astype(np.float64), TypeError, "float32 like the first"),
    "ignore_index float": (4, lambda a: 1.5, TypeError, "'ignore_index' must be an int"),
    "label_smoothing str": (5, lambda a: "0.1", TypeError, "'label_smoothing' must be a float"),
    "losses_out2 read-only": (6, read_only, ValueError, "'losses_out2' must be a writable"),
    "grad_out3 shape": (7, lambda a: a[:, :, :-1], ValueError, "'grad_out3' must have shape"),
    "grad_out3 read-only": (7, read_only, ValueError, "'grad_out3' must be a writable"),
    "n_threads zero": (9, lambda a: 0, ValueError, "'n_threads' must be an int >= 1"),
    "n_threads float": (9, lambda a: 2.0, TypeError, "'n_threads' must be an int"),
    "acc None": (10, lambda a: None, TypeError, "'acc' must be a float"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_argument_raises_naming_it(case):
    position, replace, error, fragment = BAD_ARGUMENTS[case]
    args = softmax_xent_index_args()
    args[position] = replace(args[position])
    with pytest.raises(error, match=fragment):
        C.softmax_xent_index(*args)


def test_valid_arguments_of_the_error_table_pass():
    """The table above breaks one argument at a time of a call that works."""
    assert np.isfinite(C.softmax_xent_index(*softmax_xent_index_args()))


@pytest.mark.parametrize("n_args", [0, 10, 12])
def test_wrong_argument_count(n_args):
    args = (softmax_xent_index_args() * 2)[:n_args]
    with pytest.raises(TypeError, match=f"takes 11 positional arguments but {n_args} were given"):
        C.softmax_xent_index(*args)


def test_elementwise_operands_must_share_the_shape():
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"'y2' must have shape \(3, 4\), got \(3, 5\)"):
        C.bce_with_logits(z, np.zeros((3, 5), np.float32), None, None, None, 0.0, None, None, 1.0, 1, 0.0)
    with pytest.raises(ValueError, match="'out2' must have shape"):
        C.sigmoid(z, np.zeros((4, 3), np.float32), 1)


def test_index_weight_sum_takes_its_dtype_from_sample_weight():
    target2 = np.array([[0, 1, -100, 2]])
    class_weight = np.array([1.0, 2.0, 3.0])
    for dtype in (np.float32, np.float64):
        sample_weight2 = np.array([[0.5, 1.0, 7.0, 2.0]], dtype)
        assert C.index_weight_sum(target2, class_weight, sample_weight2, -100, 1, 1.0) == 1.0 + 0.5 + 2.0 + 6.0
    assert C.index_weight_sum(target2, None, None, -100, 1, 0.0) == 3.0


# ------------------------------------------------------- no copy of operands

def test_strided_outputs_are_written_in_place_and_nowhere_else():
    args = softmax_xent_index_args(np.float64, rows=6)
    z3 = args[0]
    expected_losses, expected_grad = np.empty_like(args[6]), np.empty_like(z3)
    args[6], args[7] = expected_losses, expected_grad
    expected = C.softmax_xent_index(*args)

    losses_parent = np.full((2, 12), -7.0)
    grad_parent = np.full((1, 12, 3 * z3.shape[2]), -7.0)
    args[6] = losses_parent[:1, ::-2]             # negative stride
    args[7] = grad_parent[:, ::2, ::-3]           # strided rows and classes
    assert C.softmax_xent_index(*args) == expected
    np.testing.assert_array_equal(args[6], expected_losses)
    np.testing.assert_array_equal(args[7], expected_grad)
    losses_parent[:1, ::-2] = -7.0
    grad_parent[:, ::2, ::-3] = -7.0
    assert np.all(losses_parent == -7.0) and np.all(grad_parent == -7.0)


# ------------------------------------------------------- building without Cython

def copy_sources(destination):
    for name in ("setup.py", "pyproject.toml"):
        shutil.copy(REPO / name, destination / name)
    for name in ("csrc", "python", "pyx"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, destination / name,
                            ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.c", "*.html")
                            if name == "pyx" else shutil.ignore_patterns("*.so", "__pycache__"))


@pytest.mark.slow
def test_builds_and_runs_without_cython(tmp_path):
    """setup.py with Cython made unimportable still builds crossent._c_backend
    (C compiler + NumPy headers only), and the result computes losses."""
    source = tmp_path / "src"
    source.mkdir()
    copy_sources(source)
    hide_cython = tmp_path / "hide_cython" / "Cython"
    hide_cython.mkdir(parents=True)
    (hide_cython / "__init__.py").write_text("raise ImportError('Cython hidden by test_c_backend')\n")
    env = dict(os.environ, PYTHONPATH=str(hide_cython.parent))
    lib = tmp_path / "lib"
    build = subprocess.run([sys.executable, "setup.py", "build", "--build-lib", str(lib),
                            "--build-temp", str(tmp_path / "tmp")],
                           cwd=source, env=env, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    assert "Cython is not installed" in build.stderr
    built = sorted(p.name for p in (lib / "crossent").glob("*.so"))
    assert len(built) == 1 and built[0].startswith("_c_backend"), built

    check = textwrap.dedent("""
        import sys
        import numpy as np
        import crossent._c_backend as C
        from crossent import _reference as R
        z = np.random.default_rng(0).normal(size=(1, 100, 7))
        t = np.arange(100).reshape(1, 100) % 7
        args = [z, t, None, None, -100, 0.0, None, None, 1.0, 2, 0.0]
        assert C.__file__.startswith(sys.argv[1]), C.__file__
        assert abs(C.softmax_xent_index(*args) - R.softmax_xent_index(*args)) < 1e-9
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", check, str(lib)], cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(lib)), capture_output=True, text=True)
    assert run.stdout.strip() == "ok", run.stderr[-3000:]
