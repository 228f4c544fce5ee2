"""``crossent.evaluate`` and ``crossent eval``: the chunked loss of stored
arrays equals the exact rule of ``crossent.loss_partial`` over the whole
arrays bit for bit (within rounding of the one-shot call), memory is mapped a
chunk at a time, and every bad file gives one clear error line."""
import json
import os
import math
import mmap
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import crossent
from crossent import __main__ as cli
from crossent import _eval, _readers

MULTICLASS = ("cross_entropy", "categorical_cross_entropy", "nll_loss")
ELEMENTWISE = ("binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss")

# Rows of the small files: several kernel blocks (64 rows / 4096 elements)
# and a ragged last block, so that chunking matters.
N_ROWS, N_CLASSES = 300, 5
N_ELEM_ROWS, N_ELEM_COLS = 5000, 4


def multiclass_inputs(loss, rng, shape=(N_ROWS, N_CLASSES), axis=-1):
    n_classes = shape[axis]
    lead = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    logits = rng.normal(scale=2.0, size=shape)
    if loss == "cross_entropy":
        pred = logits
    else:
        e = np.exp(logits - logits.max(axis=axis, keepdims=True))
        probs = e / e.sum(axis=axis, keepdims=True)
        pred = probs if loss == "categorical_cross_entropy" else np.log(probs)
    return pred, rng.integers(0, n_classes, size=lead)


def elementwise_inputs(loss, rng, shape=(N_ELEM_ROWS, N_ELEM_COLS)):
    if loss == "binary_cross_entropy":
        return rng.uniform(0.01, 0.99, size=shape), rng.integers(0, 2, size=shape).astype(float)
    if loss == "binary_cross_entropy_with_logits":
        return rng.normal(scale=3.0, size=shape), rng.integers(0, 2, size=shape).astype(float)
    return rng.normal(size=shape), rng.normal(size=shape)


def inputs(loss, rng):
    return multiclass_inputs(loss, rng) if loss in MULTICLASS else elementwise_inputs(loss, rng)


def save(tmp_path, name, array):
    path = tmp_path / f"{name}.npy"
    np.save(path, array)
    return str(path)


def assert_same_bits(got, expected):
    assert got.dtype == expected.dtype
    assert np.asarray(got).tobytes() == np.asarray(expected).tobytes(), (got, expected)


def one_shot(loss, pred, target, backend, reduction=None, **kwargs):
    """What evaluate must give: the exact rule of crossent.loss_partial
    (docs/guarantees.md) over the whole arrays at once; checked here to be
    within rounding of the one-shot loss call, which folds block sums in order."""
    options = {} if reduction is None else {"reduction": reduction}
    direct = getattr(crossent, loss)(pred, target, backend=backend, **options, **kwargs)
    kwargs.pop("n_threads", None)
    expected = crossent.loss_partial(loss, pred, target, backend=backend, **kwargs).result(reduction)
    assert expected.dtype == direct.dtype
    assert expected == pytest.approx(direct, rel=1e-13 if direct.dtype == np.float64 else 1e-6)
    return expected


# ---------------------------------------------------------------- exactness

@pytest.mark.parametrize("loss", MULTICLASS + ELEMENTWISE)
@pytest.mark.parametrize("chunk_rows", [1, 64, 100, 1000, None])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_chunked_mean_is_the_one_shot_mean_bit_for_bit(tmp_path, backend, loss, chunk_rows,
                                                       n_threads):
    pred, target = inputs(loss, np.random.default_rng(1))
    got = crossent.evaluate(loss, save(tmp_path, "pred", pred), save(tmp_path, "target", target),
                            chunk_rows=chunk_rows, backend=backend, n_threads=n_threads)
    assert_same_bits(got, one_shot(loss, pred, target, backend, n_threads=1))


def test_several_chunks_are_used(tmp_path):
    pred, target = inputs("cross_entropy", np.random.default_rng(2))
    report = _eval.evaluate_report("cross_entropy", save(tmp_path, "p", pred),
                                   save(tmp_path, "t", target), chunk_rows=64)
    assert report.chunks == math.ceil(N_ROWS / 64)
    assert report.rows == report.samples == N_ROWS


MULTICLASS_OPTIONS = [(loss, option) for loss in MULTICLASS
                      for option in ("weight", "sample_weight", "ignore_index", "label_smoothing",
                                     "soft_target", "sum")
                      if loss != "nll_loss" or option not in ("label_smoothing", "soft_target")]
ELEMENTWISE_OPTIONS = [(loss, option) for loss in ELEMENTWISE
                       for option in ("weight", "sample_weight", "pos_weight", "label_smoothing",
                                      "one_dimensional", "sum")
                       if loss == "binary_cross_entropy_with_logits"
                       or option not in ("pos_weight", "label_smoothing")]


@pytest.mark.parametrize("loss, option", MULTICLASS_OPTIONS)
def test_multiclass_options_match_the_one_shot_call(tmp_path, backend, loss, option):
    rng = np.random.default_rng(3)
    pred, target = multiclass_inputs(loss, rng)
    kwargs, files = {}, {}
    if option == "weight":
        kwargs["weight"] = rng.uniform(0.2, 2.0, N_CLASSES)
    elif option == "sample_weight":
        kwargs["sample_weight"] = rng.uniform(0.2, 2.0, N_ROWS)
    elif option == "ignore_index":
        kwargs["ignore_index"] = 2          # about a fifth of the targets
    elif option == "label_smoothing":
        kwargs["label_smoothing"] = 0.1
    elif option == "soft_target":
        target = rng.dirichlet(np.ones(N_CLASSES), N_ROWS)
    elif option == "sum":
        kwargs["reduction"] = "sum"
    for name in ("weight", "sample_weight"):
        if name in kwargs:
            files[name] = save(tmp_path, name, kwargs[name])
    got = crossent.evaluate(loss, save(tmp_path, "p", pred), save(tmp_path, "t", target),
                            chunk_rows=64, backend=backend, **{**kwargs, **files})
    assert_same_bits(got, one_shot(loss, pred, target, backend, **kwargs))


@pytest.mark.parametrize("loss, option", ELEMENTWISE_OPTIONS)
def test_elementwise_options_match_the_one_shot_call(tmp_path, backend, loss, option):
    rng = np.random.default_rng(4)
    pred, target = elementwise_inputs(loss, rng)
    kwargs = {}
    if option == "weight":
        kwargs["weight"] = rng.uniform(0.2, 2.0, N_ELEM_COLS)           # broadcast along rows
    elif option == "sample_weight":
        kwargs["sample_weight"] = rng.uniform(0.2, 2.0, (N_ELEM_ROWS, 1))  # cut with the rows
    elif option == "pos_weight":
        kwargs["pos_weight"] = rng.uniform(0.5, 3.0, N_ELEM_COLS)     # along the last axis
    elif option == "label_smoothing":
        kwargs["label_smoothing"] = 0.2
    elif option == "one_dimensional":
        pred, target = pred.ravel(), target.ravel()
    elif option == "sum":
        kwargs["reduction"] = "sum"
    got = crossent.evaluate(loss, pred, target, chunk_rows=1, backend=backend, **kwargs)
    assert_same_bits(got, one_shot(loss, pred, target, backend, **kwargs))


@pytest.mark.parametrize("shape, axis", [((N_CLASSES, N_ROWS), 0), ((30, N_CLASSES, 7), 1),
                                         ((30, 7, N_CLASSES), -1), ((N_CLASSES,), 0)])
def test_any_class_axis_matches_the_one_shot_call(tmp_path, backend, shape, axis):
    pred, target = multiclass_inputs("cross_entropy", np.random.default_rng(5), shape, axis)
    got = crossent.evaluate("cross_entropy", save(tmp_path, "p", pred),
                            save(tmp_path, "t", target), axis=axis, chunk_rows=1, backend=backend)
    assert_same_bits(got, one_shot("cross_entropy", pred, target, backend, axis=axis))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int16, np.dtype(">f8")],
                         ids=["float16", "float32", "int16", "big-endian-float64"])
def test_result_dtype_follows_the_predictions(tmp_path, backend, dtype):
    pred, target = elementwise_inputs("mse_loss", np.random.default_rng(6))
    pred = (pred * 4).astype(dtype)
    got = crossent.evaluate("mse_loss", save(tmp_path, "p", pred), save(tmp_path, "t", target),
                            chunk_rows=1024, backend=backend)
    assert_same_bits(got, one_shot("mse_loss", pred, target, backend))


def test_fortran_ordered_file_gives_the_same_bits(tmp_path, backend):
    pred, target = inputs("cross_entropy", np.random.default_rng(7))
    got = crossent.evaluate("cross_entropy", save(tmp_path, "p", np.asfortranarray(pred)),
                            save(tmp_path, "t", target), chunk_rows=64, backend=backend)
    assert_same_bits(got, one_shot("cross_entropy", pred, target, backend))


@pytest.mark.parametrize("reduction, expected", [("sum", 0.0), ("mean", math.nan)])
def test_empty_files_follow_the_empty_input_rule(tmp_path, reduction, expected):
    pred, target = np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    got = crossent.evaluate("cross_entropy", save(tmp_path, "p", pred),
                            save(tmp_path, "t", target), reduction=reduction)
    assert got.dtype == np.float32
    assert got == expected or math.isnan(expected) and math.isnan(got)


# ---------------------------------------------------------------- .npz

@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "compressed"])
def test_npz_members_give_the_npy_bits(tmp_path, backend, compressed):
    pred, target = inputs("cross_entropy", np.random.default_rng(8))
    path = tmp_path / "data.npz"
    (np.savez_compressed if compressed else np.savez)(path, logits=pred, labels=target)
    got = crossent.evaluate("cross_entropy", f"{path}:logits", f"{path}:labels", chunk_rows=64,
                            backend=backend)
    assert_same_bits(got, one_shot("cross_entropy", pred, target, backend))


def test_npz_with_one_array_needs_no_key(tmp_path):
    pred, target = inputs("cross_entropy", np.random.default_rng(9))
    np.savez(tmp_path / "p.npz", pred)
    got = crossent.evaluate("cross_entropy", str(tmp_path / "p.npz"), target)
    assert_same_bits(got, one_shot("cross_entropy", pred, target, None))


def test_compressed_member_is_streamed_not_loaded(tmp_path, monkeypatch):
    pred, target = inputs("cross_entropy", np.random.default_rng(10))
    np.savez_compressed(tmp_path / "d.npz", p=pred, t=target)
    monkeypatch.setattr(_readers.StreamedNpy, "whole", lambda self: pytest.fail("loaded whole"))
    report = _eval.evaluate_report("cross_entropy", f"{tmp_path}/d.npz:p", f"{tmp_path}/d.npz:t",
                                   chunk_rows=64)
    assert report.chunks == math.ceil(N_ROWS / 64)


# ------------------------------------------------------------ bounded memory

def test_files_are_mapped_one_chunk_at_a_time(tmp_path, monkeypatch):
    pred, target = inputs("cross_entropy", np.random.default_rng(11))
    lengths = []
    real_mmap = mmap.mmap

    def recording_mmap(fileno, length, *args, **kwargs):
        lengths.append(length)
        return real_mmap(fileno, length, *args, **kwargs)

    monkeypatch.setattr(_readers.mmap, "mmap", recording_mmap)
    crossent.evaluate("cross_entropy", save(tmp_path, "p", pred), save(tmp_path, "t", target),
                      chunk_rows=64)
    assert len(lengths) == 2 * math.ceil(N_ROWS / 64)
    chunk_bytes = 64 * N_CLASSES * pred.itemsize
    assert max(lengths) <= chunk_bytes + mmap.ALLOCATIONGRANULARITY


def test_arrays_in_memory_are_one_chunk_unless_asked():
    pred, target = inputs("cross_entropy", np.random.default_rng(17))
    assert _eval.evaluate_report("cross_entropy", pred, target).chunks == 1
    assert _eval.evaluate_report("cross_entropy", pred, target, chunk_rows=64).chunks == 5


def test_chunk_rows_round_down_to_whole_blocks(tmp_path):
    pred, target = elementwise_inputs("mse_loss", np.random.default_rng(12))
    # 4 elements a row: a 4096-element block is 1024 rows
    report = _eval.evaluate_report("mse_loss", pred, target, chunk_rows=2047)
    assert report.chunks == math.ceil(N_ELEM_ROWS / 1024)


# ---------------------------------------------------------------- errors

def run_cli(capsys, *argv):
    status = cli.main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(capsys, argv, *fragments):
    status, out, err = run_cli(capsys, *argv)
    assert status != 0
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("crossent eval: error: ")
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture
def good_files(tmp_path):
    pred, target = inputs("cross_entropy", np.random.default_rng(13))
    return save(tmp_path, "p", pred.astype(np.float32)), save(tmp_path, "t", target)


def test_missing_file(capsys, tmp_path, good_files):
    assert_one_line_error(capsys, ["cross_entropy", tmp_path / "nope.npy", good_files[1]],
                          "PRED", "no such file", "nope.npy")


def test_not_a_npy_file(capsys, tmp_path, good_files):
    text = tmp_path / "notes.npy"
    text.write_text("these are not numbers\n")
    assert_one_line_error(capsys, ["cross_entropy", good_files[0], text],
                          "TARGET", "not a .npy file")


def test_truncated_file(capsys, tmp_path, good_files):
    data = open(good_files[0], "rb").read()
    cut = tmp_path / "cut.npy"
    cut.write_bytes(data[:len(data) // 2])
    assert_one_line_error(capsys, ["cross_entropy", cut, good_files[1]], "PRED", "truncated")


def test_corrupt_header(capsys, tmp_path, good_files):
    data = bytearray(open(good_files[0], "rb").read())
    data[10:20] = b"@@@@@@@@@@"
    bad = tmp_path / "bad.npy"
    bad.write_bytes(bytes(data))
    assert_one_line_error(capsys, ["cross_entropy", bad, good_files[1]], "PRED", "corrupt")


def test_object_dtype(capsys, tmp_path, good_files):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([None, 1.0] * 150, dtype=object), allow_pickle=True)
    assert_one_line_error(capsys, ["cross_entropy", good_files[0], path], "TARGET", "object")


def test_complex_dtype(capsys, tmp_path, good_files):
    path = save(tmp_path, "c", np.ones((N_ROWS, N_CLASSES), np.complex64))
    assert_one_line_error(capsys, ["cross_entropy", path, good_files[1]], "complex64")


def test_shapes_that_disagree_along_the_rows(capsys, tmp_path, good_files):
    short = save(tmp_path, "short", np.zeros(N_ROWS - 1, np.int64))
    assert_one_line_error(capsys, ["cross_entropy", good_files[0], short], "TARGET",
                          str(N_ROWS - 1), str(N_ROWS))


def test_shapes_that_disagree_across_the_rows(capsys, tmp_path, good_files):
    wide = save(tmp_path, "wide", np.zeros((N_ROWS, 2), np.int64))
    assert_one_line_error(capsys, ["cross_entropy", good_files[0], wide], "target", "(300, 2)")


def test_label_out_of_range_names_its_row_in_the_whole_file(capsys, tmp_path, good_files):
    labels = np.load(good_files[1])
    labels[250] = N_CLASSES          # in the fourth chunk of 64 rows
    path = save(tmp_path, "labels", labels)
    assert_one_line_error(capsys, ["cross_entropy", good_files[0], path, "--chunk-rows", 64],
                          "TARGET", "row 250", f"[0, {N_CLASSES})")


def test_label_out_of_range_is_caught_before_any_kernel_reads_it(tmp_path, monkeypatch):
    pred, labels = inputs("cross_entropy", np.random.default_rng(14))
    labels[-1] = -7
    monkeypatch.setattr(_eval, "chunk_partial", lambda *a, **k: pytest.fail("kernel ran"))
    with pytest.raises(ValueError, match=f"row {N_ROWS - 1}"):
        crossent.evaluate("cross_entropy", pred, labels, chunk_rows=N_ROWS * 2)


def test_bad_probability_is_named_at_its_position_in_the_whole_file(capsys, tmp_path):
    pred, target = elementwise_inputs("binary_cross_entropy", np.random.default_rng(16))
    pred[3000, 2] = 1.5              # in the third chunk of 1024 rows
    assert_one_line_error(capsys, ["binary_cross_entropy", save(tmp_path, "p", pred),
                                   save(tmp_path, "t", target), "--chunk-rows", 1024],
                          "position (3000, 2)", "1.5")


def test_npz_key_absent(capsys, tmp_path, good_files):
    path = tmp_path / "d.npz"
    np.savez(path, logits=np.load(good_files[0]))
    assert_one_line_error(capsys, ["cross_entropy", f"{path}:scores", good_files[1]],
                          "PRED", "'scores'", "logits")


def test_corrupt_compressed_member(capsys, tmp_path, good_files):
    path = tmp_path / "d.npz"
    np.savez_compressed(path, t=np.load(good_files[1]))
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("t.npy")
    middle = info.header_offset + 30 + len("t.npy") + info.compress_size // 2
    data[middle:middle + 16] = bytes(16)
    path.write_bytes(bytes(data))
    assert_one_line_error(capsys, ["cross_entropy", good_files[0], f"{path}:t"], "TARGET")


def test_option_the_loss_does_not_take(capsys, tmp_path, good_files):
    weights = save(tmp_path, "pw", np.ones(N_CLASSES))
    assert_one_line_error(capsys, ["cross_entropy", *good_files, "--pos-weight", weights],
                          "--pos-weight", "cross_entropy")


def test_unknown_loss(capsys, good_files):
    assert_one_line_error(capsys, ["softmax", *good_files], "loss", "cross_entropy")


def test_reduction_none_is_refused():
    with pytest.raises(ValueError, match="reduction"):
        crossent.evaluate("cross_entropy", np.zeros((2, 3)), np.zeros(2, int), reduction="none")


# ---------------------------------------------------------------- CLI

def table_loss(out):
    """The loss of `crossent eval`'s table: its first line, "LOSS (REDUCTION)  VALUE"."""
    return out.splitlines()[0].split()[-1]


def test_cli_prints_a_table(capsys, good_files):
    status, out, err = run_cli(capsys, "cross_entropy", *good_files)
    assert status == 0 and err == ""   # stderr is not a terminal: no progress bar
    expected = one_shot("cross_entropy", np.load(good_files[0]), np.load(good_files[1]), None)
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["cross_entropy", "(mean)"]
    # the shortest digits that give back the float32 value
    assert table_loss(out) == str(expected) and np.float32(table_loss(out)) == expected
    assert [line.split()[0] for line in lines[1:]] == ["rows", "rows/s", "read"]
    assert lines[1].split()[1] == f"{N_ROWS:,}"
    size = sum(np.load(path).nbytes for path in good_files)
    assert lines[3].split()[1:3] == [f"{size / 1000:.3g}", "kB"]


def test_cli_json_report(capsys, tmp_path, good_files):
    labels = np.load(good_files[1])
    labels[:10] = -100
    path = save(tmp_path, "labels", labels)
    status, out, _ = run_cli(capsys, "cross_entropy", good_files[0], path, "--json",
                             "--threads", 1, "--backend", "numpy", "--chunk-rows", 128)
    report = json.loads(out)
    assert status == 0
    expected = one_shot("cross_entropy", np.load(good_files[0]), labels, "numpy")
    assert report["loss"] == float(expected)
    assert report["samples"] == N_ROWS and report["weight_sum"] == N_ROWS - 10
    assert report["dtype"] == "float32" and report["backend"] == "numpy"
    assert report["chunks"] == 3 and report["rows_per_second"] > 0


def test_cli_options_reach_the_loss(capsys, tmp_path):
    rng = np.random.default_rng(15)
    pred, target = elementwise_inputs("binary_cross_entropy_with_logits", rng)
    pos_weight, sample_weight = rng.uniform(1, 3, N_ELEM_COLS), rng.uniform(0, 1, (N_ELEM_ROWS, 1))
    status, out, _ = run_cli(
        capsys, "binary_cross_entropy_with_logits", save(tmp_path, "p", pred),
        save(tmp_path, "t", target), "--pos-weight", save(tmp_path, "pw", pos_weight),
        "--sample-weight", save(tmp_path, "sw", sample_weight), "--label-smoothing", 0.1,
        "--reduction", "sum")
    expected = one_shot("binary_cross_entropy_with_logits", pred, target, None,
                        pos_weight=pos_weight, sample_weight=sample_weight, label_smoothing=0.1,
                        reduction="sum")
    assert status == 0 and table_loss(out) == str(expected)


def test_python_dash_m_crossent_eval(good_files):
    done = subprocess.run([sys.executable, "-m", "crossent", "eval", "cross_entropy",
                           *good_files, "--json", "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["samples"] == N_ROWS


def test_a_closed_pipe_ends_the_command_quietly(good_files):
    """`crossent eval ... | head -1`: the reader has gone when the table is
    written; exit status 1, no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "crossent", "eval", "cross_entropy",
                               *good_files, "--quiet"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True)
    finally:
        os.close(write_end)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr


def test_progress_fallback_without_tqdm(capsys, monkeypatch, good_files):
    monkeypatch.setitem(sys.modules, "tqdm", None)   # import tqdm now fails
    crossent.evaluate("cross_entropy", *good_files, chunk_rows=64, progress=True)
    err = capsys.readouterr().err
    assert "100.0%" in err and f"{N_ROWS}/{N_ROWS} rows" in err


def test_progress_uses_tqdm_when_installed(capsys, good_files):
    pytest.importorskip("tqdm")
    crossent.evaluate("cross_entropy", *good_files, chunk_rows=64, progress=True)
    assert "crossent eval" in capsys.readouterr().err


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_progress_on_a_terminal_unless_quiet(capsys, monkeypatch, good_files, quiet):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status, out, err = run_cli(capsys, "cross_entropy", *good_files, *(["--quiet"] if quiet else []))
    assert status == 0 and out
    assert ("rows" in err) != quiet


# ------------------------------------------------------ focal_loss and kl_div

def kl_inputs(rng, shape):
    logits, other = rng.normal(size=shape), rng.normal(size=shape)
    log_q = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    p = np.exp(other) / np.exp(other).sum(axis=-1, keepdims=True)
    return log_q, p


@pytest.mark.parametrize("chunk_rows", [1, 64, 1000, None])
def test_focal_loss_options_reach_every_chunk(tmp_path, backend, chunk_rows):
    pred, target = elementwise_inputs("binary_cross_entropy_with_logits", np.random.default_rng(4))
    got = crossent.evaluate("focal_loss", save(tmp_path, "pred", pred),
                            save(tmp_path, "target", target), alpha=0.6, gamma=1.5,
                            chunk_rows=chunk_rows, backend=backend)
    assert_same_bits(got, one_shot("focal_loss", pred, target, backend, alpha=0.6, gamma=1.5))


@pytest.mark.parametrize("shape", [(N_ROWS, N_CLASSES), (N_ROWS, 3, 7)])
@pytest.mark.parametrize("reduction", [None, "batchmean", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("chunk_rows", [1, 100, None])
def test_kl_div_chunks_give_the_one_shot_bits(tmp_path, backend, shape, reduction, weighted,
                                              chunk_rows):
    """kl_div's kernel runs over elements while its batch mean counts samples:
    chunks hold whole blocks of both."""
    rng = np.random.default_rng(5)
    log_q, p = kl_inputs(rng, shape)
    options = {"sample_weight": rng.uniform(0.5, 2.0, size=shape[:-1])} if weighted else {}
    files = {k: save(tmp_path, k, v) for k, v in options.items()}
    got = crossent.evaluate("kl_div", save(tmp_path, "pred", log_q), save(tmp_path, "target", p),
                            reduction=reduction, chunk_rows=chunk_rows, backend=backend, **files)
    expected = one_shot("kl_div", log_q, p, backend, reduction=reduction or "batchmean", **options)
    assert_same_bits(got, expected)


def test_kl_div_along_the_first_axis_is_one_chunk(tmp_path):
    log_q, p = kl_inputs(np.random.default_rng(6), (N_CLASSES, N_ROWS))
    report = _eval.evaluate_report("kl_div", save(tmp_path, "pred", log_q.T.copy().T),
                                   save(tmp_path, "target", p), axis=0, chunk_rows=10)
    assert report.chunks == 1
    assert_same_bits(report.loss, one_shot("kl_div", log_q, p, None, axis=0))


def test_batchmean_is_only_kl_divs(tmp_path):
    pred, target = inputs("cross_entropy", np.random.default_rng(7))
    with pytest.raises(ValueError, match="'mean' or 'sum' for cross_entropy"):
        crossent.evaluate("cross_entropy", pred, target, reduction="batchmean")
    with pytest.raises(TypeError, match=r"alpha \(--alpha\) does not apply to cross_entropy"):
        crossent.evaluate("cross_entropy", pred, target, alpha=0.5)


def test_command_line_takes_the_new_losses_options(tmp_path, capsys):
    rng = np.random.default_rng(8)
    pred, target = elementwise_inputs("binary_cross_entropy_with_logits", rng)
    assert cli.main(["eval", "focal_loss", save(tmp_path, "pred", pred),
                     save(tmp_path, "target", target), "--alpha", "0.3", "--gamma", "1",
                     "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["loss"] == float(one_shot("focal_loss", pred, target, None, alpha=0.3, gamma=1.0))
    log_q, p = kl_inputs(rng, (N_ROWS, N_CLASSES))
    log_p = np.log(p)
    assert cli.main(["eval", "kl_div", save(tmp_path, "logq", log_q), save(tmp_path, "logp", log_p),
                     "--log-target", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reduction"] == "batchmean"
    assert out["loss"] == float(one_shot("kl_div", log_q, log_p, None, log_target=True))
