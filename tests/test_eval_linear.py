"""``crossent eval linear_cross_entropy HIDDEN TARGET --linear-weight W``, and
``--z-loss``/``--softcap`` of ``crossent eval cross_entropy``: the chunked
loss of stored hidden states equals the in-memory linear_cross_entropy, the
JSON adds the perplexity, and misuse gives one error line."""
import json
import math

import numpy as np
import pytest

import crossent
from crossent import __main__ as cli


def _files(tmp_path, rng, n=300, d=8, v=40, dtype=np.float32):
    h = rng.standard_normal((n, d)).astype(dtype)
    w = (rng.standard_normal((v, d)) / 2).astype(dtype)
    b = rng.standard_normal(v).astype(dtype)
    t = rng.integers(0, v, n)
    t[::7] = -100
    paths = {}
    for name, array in (("h", h), ("w", w), ("b", b), ("t", t)):
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], array)
    return (h, w, b, t), paths


def run_cli(capsys, *argv):
    status = cli.main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("chunk_rows", [None, 64, 7])
def test_equals_the_in_memory_loss_with_perplexity(tmp_path, capsys, backend, chunk_rows):
    (h, w, b, t), paths = _files(tmp_path, np.random.default_rng(1))
    argv = ["linear_cross_entropy", paths["h"], paths["t"], "--linear-weight", paths["w"],
            "--bias", paths["b"], "--z-loss", "1e-3", "--softcap", "5", "--json", "--quiet",
            "--backend", backend]
    if chunk_rows:
        argv += ["--chunk-rows", chunk_rows]
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    report = json.loads(out)
    expected = crossent.linear_cross_entropy(h, w, t, bias=b, z_loss=1e-3, softcap=5.0,
                                             backend=backend)
    assert report["loss"] == pytest.approx(float(expected), rel=2e-6)
    # from the float64 mean, of which the float32 loss is the rounding
    assert report["perplexity"] == pytest.approx(math.exp(report["loss"]), rel=1e-6)
    assert report["weight_sum"] == np.sum(t != -100) and report["dtype"] == "float32"
    assert report["bytes_read"] == h.nbytes + w.nbytes + b.nbytes + t.nbytes
    if chunk_rows == 7:
        assert report["chunks"] == math.ceil(300 / 7)


def test_sum_and_sample_weights(tmp_path, capsys):
    (h, w, b, t), paths = _files(tmp_path, np.random.default_rng(2), dtype=np.float64)
    s = np.random.default_rng(3).random(len(h))
    np.save(tmp_path / "s.npy", s)
    status, out, err = run_cli(capsys, "linear_cross_entropy", paths["h"], paths["t"],
                               "--linear-weight", paths["w"], "--sample-weight",
                               tmp_path / "s.npy", "--reduction", "sum", "--chunk-rows", 50,
                               "--quiet")
    assert status == 0, err
    expected = crossent.linear_cross_entropy(h, w, t, sample_weight=s, reduction="sum")
    # the human-readable table, as the other losses print it
    table = dict(line.split(None, 1) for line in out.splitlines()[1:])
    name, value = out.splitlines()[0].rsplit(None, 1)
    assert name == "linear_cross_entropy (sum)"
    assert float(value) == pytest.approx(float(expected), rel=1e-12)
    assert table["rows"] == "300" and float(table["perplexity"]) > 0
    assert table["read"].startswith(f"{(h.size + w.size + t.size + s.size) * 8 / 1000:.3g} kB")


def test_cross_entropy_takes_z_loss_and_softcap(tmp_path, capsys):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((200, 6))
    t = rng.integers(0, 6, 200)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "t.npy", t)
    status, out, err = run_cli(capsys, "cross_entropy", tmp_path / "z.npy", tmp_path / "t.npy",
                               "--z-loss", "0.01", "--softcap", "2", "--chunk-rows", 64,
                               "--quiet")
    assert status == 0, err
    expected = crossent.cross_entropy(z, t, z_loss=0.01, softcap=2.0)
    loss = out.splitlines()[0].split()[-1]   # the table's first line: "LOSS (REDUCTION)  VALUE"
    assert float(loss) == pytest.approx(float(expected), rel=1e-13)


@pytest.mark.parametrize("extra, words", [
    ([], "--linear-weight"),
    (["--alpha", "0.5"], "--alpha"),
    (["--metrics", "top5"], "--metrics"),
])
def test_misuse_is_one_error_line(tmp_path, capsys, extra, words):
    _, paths = _files(tmp_path, np.random.default_rng(5))
    argv = ["linear_cross_entropy", paths["h"], paths["t"], *extra]
    if words != "--linear-weight":
        argv += ["--linear-weight", paths["w"]]
    status, out, err = run_cli(capsys, *argv)
    assert status == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("crossent eval: error: ") and words in err


def test_linear_weight_with_another_loss_is_an_error(tmp_path, capsys):
    _, paths = _files(tmp_path, np.random.default_rng(6))
    status, _, err = run_cli(capsys, "cross_entropy", paths["h"], paths["t"], "--linear-weight",
                             paths["w"])
    assert status == 1 and "linear_cross_entropy only" in err


def test_z_loss_on_a_loss_without_it_is_an_error(tmp_path, capsys):
    _, paths = _files(tmp_path, np.random.default_rng(7))
    np.save(tmp_path / "y.npy", np.zeros((300, 8)))
    status, _, err = run_cli(capsys, "mse_loss", paths["h"], tmp_path / "y.npy", "--z-loss", "1")
    assert status == 1 and "--z-loss" in err
