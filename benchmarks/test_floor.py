"""benchmarks/floor.py: the floor kernels compute the loss they stand for,
and a short run prints every column."""
import importlib.util
import pathlib
import shutil

import numpy as np
import pytest

import crossent

_spec = importlib.util.spec_from_file_location(
    "floor", pathlib.Path(__file__).with_name("floor.py"))
floor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(floor)

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="needs a C compiler")


@pytest.fixture(scope="module", params=[False, True], ids=["no-fma", "fma"])
def lib(request, tmp_path_factory):
    return floor.build(str(tmp_path_factory.mktemp("floor")), fma=request.param)


@pytest.mark.parametrize("rows, classes", [(7, 1), (33, 10), (4, 32), (5, 100), (3, 1000), (2, 4099)])
def test_the_floor_gives_crossent_s_loss_and_gradient(lib, rows, classes):
    rng = np.random.default_rng(classes)
    z = (rng.standard_normal((rows, classes)) * 4).astype(np.float32)
    t = rng.integers(0, classes, rows)
    loss, grad = floor.floor_loss_grad(lib, z, t)
    want, want_grad = crossent.cross_entropy(z, t, return_grad=True)
    np.testing.assert_allclose(loss, want, rtol=2e-6)
    # the target's entry p/rows - 1/rows cancels: a few ulp of 1/rows
    np.testing.assert_allclose(grad, want_grad, rtol=2e-6, atol=4e-7 / rows)
    total = lib.floor_loss(floor.address(z), floor.address(t), rows, classes)
    np.testing.assert_allclose(total, crossent.cross_entropy(z, t, reduction="sum"), rtol=2e-6)


@pytest.mark.parametrize("n", [1, 15, 16, 17, 4096, 4097, 10_000])
def test_the_exp_pass_sums_and_keeps_every_exp(lib, n):
    z = -np.abs(np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    kept = np.full(n, np.nan, np.float32)
    want = np.exp(z.astype(np.float64))
    np.testing.assert_allclose(lib.floor_exp_pass(floor.address(z), n, floor.address(kept)),
                               want.sum(), rtol=1e-6)
    np.testing.assert_allclose(kept, want, rtol=1e-6)
    np.testing.assert_allclose(lib.floor_exp_sums(floor.address(z), n), want.sum(), rtol=1e-6)


def test_a_short_run_prints_every_column(tmp_path, capsys):
    floor.main(["--cases", "65536x10", "--repeat", "1", "--threads", "1",
                "--eval-rows", "3000", "--dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "exp pass ms" in out and "65536x10" in out
    for name in ("read", "exp sums", "floor", "crossent"):
        assert f"{name} " in out
    assert list(tmp_path.iterdir()) == []


def test_unknown_cases_are_refused():
    with pytest.raises(SystemExit):
        floor.main(["--cases", "4096x1001"])
