"""``crossent.dask.evaluate`` and ``crossent eval`` on Dask: the same bits as
``crossent.evaluate`` for every chunking, shards paired and checked, Zarr
arrays read; on a real ``dask.distributed`` cluster (tests marked slow), the
same answer with 2 worker processes, after a worker is killed mid-run, and
clear errors naming a bad shard."""
import glob
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import crossent
from crossent import __main__ as cli
from crossent import _api

da = pytest.importorskip("dask.array")
import crossent.dask as crossent_dask  # noqa: E402

from test_partial import make_inputs, per_sample_options  # noqa: E402

CHUNKINGS = [None, 1000, 333, 64, 1]


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


def chunked(array, rows):
    if rows is None:
        return da.from_array(array, chunks=-1)
    return da.from_array(array, chunks=(rows,) + tuple(max(1, n // 2) for n in array.shape[1:]))


def chunked_options(options, rows):
    return {k: (da.from_array(v, chunks=rows or -1) if k == "sample_weight" or
                k == "weight" and v.shape[0] > 10 else v) for k, v in options.items()}


# ------------------------------------------------------------ crossent.dask.evaluate

@pytest.mark.parametrize("loss", _api.LOSSES)
@pytest.mark.parametrize("rows", [None, 333, 64])
def test_every_chunking_gives_the_evaluate_bits(loss, rows):
    rng = np.random.default_rng(1)
    pred, target = make_inputs(loss, rng, 1000, np.float32)
    options = per_sample_options(loss, rng, 1000, np.float32)
    expected = crossent.evaluate(loss, pred, target, **options)
    got = crossent_dask.evaluate(loss, chunked(pred, rows), chunked(target, rows and rows + 17),
                                 scheduler="synchronous", **chunked_options(options, rows))
    assert same_bits(got, expected)


def test_threads_scheduler_and_one_row_chunks_agree():
    rng = np.random.default_rng(2)
    logits, labels = make_inputs("cross_entropy", rng, 100)
    expected = crossent.evaluate("cross_entropy", logits, labels, label_smoothing=0.2)
    for rows, scheduler in [(1, "synchronous"), (7, "threads"), (64, "threads")]:
        got = crossent_dask.evaluate("cross_entropy", chunked(logits, rows), labels,
                                     label_smoothing=0.2, scheduler=scheduler)
        assert same_bits(got, expected)


def test_class_axis_first_and_3d_predictions():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(5, 200, 3))          # classes first: rows are axis 1
    labels = rng.integers(0, 5, size=(200, 3))
    expected = crossent.evaluate("cross_entropy", logits, labels, axis=0)
    got = crossent_dask.evaluate("cross_entropy", da.from_array(logits, chunks=(2, 50, 1)),
                                 da.from_array(labels, chunks=(30, 3)), axis=0,
                                 scheduler="synchronous")
    assert same_bits(got, expected)


def test_partial_on_request_and_every_reduction():
    rng = np.random.default_rng(4)
    log_q, p = make_inputs("kl_div", rng, 500)
    loss, partial = crossent_dask.evaluate("kl_div", chunked(log_q, 77), chunked(p, 50),
                                           reduction="mean", return_partial=True,
                                           scheduler="synchronous")
    assert partial == crossent.loss_partial("kl_div", log_q, p)
    assert same_bits(loss, partial.result("mean"))
    assert same_bits(partial.result(), crossent.evaluate("kl_div", log_q, p))


def test_numpy_inputs_are_taken_too():
    rng = np.random.default_rng(5)
    z, y = make_inputs("binary_cross_entropy_with_logits", rng, 5000)
    assert same_bits(crossent_dask.evaluate("binary_cross_entropy_with_logits", z, y,
                                            scheduler="synchronous"),
                     crossent.evaluate("binary_cross_entropy_with_logits", z, y))


def test_a_bad_label_names_the_rows_of_its_block():
    rng = np.random.default_rng(6)
    logits, labels = make_inputs("cross_entropy", rng, 300)
    labels[250] = 9
    with pytest.raises(ValueError, match=r"rows 200:300 of the predictions: target: class index 9"):
        crossent_dask.evaluate("cross_entropy", chunked(logits, 100), labels,
                               scheduler="synchronous")


def test_operands_of_the_wrong_length_are_refused():
    rng = np.random.default_rng(7)
    logits, labels = make_inputs("cross_entropy", rng, 300)
    with pytest.raises(ValueError, match=r"target: shape \(299,\) does not match"):
        crossent_dask.evaluate("cross_entropy", chunked(logits, 100), labels[:299],
                               scheduler="synchronous")
    with pytest.raises(TypeError, match=r"alpha \(--alpha\) does not apply to cross_entropy"):
        crossent_dask.evaluate("cross_entropy", logits, labels, alpha=0.5)


@pytest.mark.parametrize("missing", ["dask", "dask.array"])
def test_without_dask_the_message_says_what_to_install(monkeypatch, capsys, tmp_path, missing):
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(ImportError, match=r"pip install crossent\[dask\]"):
        crossent_dask.evaluate("cross_entropy", np.zeros((2, 3)), np.zeros(2, int))
    preds, labels = write_shards(tmp_path)
    status, _, err = run_cli(capsys, "cross_entropy", preds, labels)
    assert status == 1 and "pip install crossent[dask]" in err


def test_the_package_exposes_the_dask_module_and_partials():
    assert crossent.dask is crossent_dask
    assert crossent.loss_partial is crossent._partial.loss_partial
    assert {"loss_partial", "LossPartial", "merge_partials"} <= set(crossent.__all__)


# ------------------------------------------------------------ shards and Zarr on the command line

def write_shards(tmp_path, rows=(700, 0, 1300, 555), n_classes=7, seed=8):
    rng = np.random.default_rng(seed)
    (tmp_path / "preds").mkdir()
    (tmp_path / "labels").mkdir()
    for i, n in enumerate(rows):
        np.save(tmp_path / "preds" / f"part-{i:03d}.npy",
                rng.normal(size=(n, n_classes)).astype(np.float32))
        np.save(tmp_path / "labels" / f"part-{i:03d}.npy", rng.integers(0, n_classes, size=n))
    return str(tmp_path / "preds" / "*.npy"), str(tmp_path / "labels" / "*.npy")


def concatenated(pattern):
    return np.concatenate([np.load(f) for f in sorted(glob.glob(pattern))])


def run_cli(capsys, *args):
    status = cli.main(["eval", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("chunk_rows", [None, 100])
def test_cli_on_shards_equals_evaluate_on_their_concatenation(capsys, tmp_path, chunk_rows):
    preds, labels = write_shards(tmp_path)
    args = ["--chunk-rows", chunk_rows] if chunk_rows else []
    status, out, err = run_cli(capsys, "cross_entropy", preds, labels, "--json", *args)
    assert status == 0, err
    report = json.loads(out)
    expected = crossent.evaluate("cross_entropy", concatenated(preds), concatenated(labels))
    assert report["loss"] == float(expected) and report["samples"] == 2555
    partial = crossent.LossPartial.from_json(json.dumps(report["partial"]))
    assert same_bits(partial.result(), expected)


def test_cli_on_zarr_arrays(capsys, tmp_path):
    zarr = pytest.importorskip("zarr")
    rng = np.random.default_rng(9)
    logits, labels = make_inputs("cross_entropy", rng, 1000, np.float32)
    group = zarr.open_group(str(tmp_path / "run.zarr"), mode="w")
    for name, array, chunks in (("logits", logits, (128, 5)), ("labels", labels, (300,))):
        group.create_array(name, shape=array.shape, chunks=chunks, dtype=array.dtype)[...] = array
    store = tmp_path / "run.zarr"
    status, out, err = run_cli(capsys, "cross_entropy", f"{store}:logits", f"{store}:labels")
    assert status == 0, err
    first = out.splitlines()[0]
    assert first.startswith("cross_entropy (mean)") and "rows  " in out and "workers" in out
    assert np.float32(first.split()[-1]) == crossent.evaluate("cross_entropy", logits, labels)
    status, _, err = run_cli(capsys, "cross_entropy", f"{store}:nothing", f"{store}:labels")
    assert status == 1 and "PRED: cannot open the Zarr array" in err and "nothing" in err
    status, _, err = run_cli(capsys, "cross_entropy", str(store), f"{store}:labels")
    assert status == 1 and "is a Zarr group; name one of its arrays" in err


def test_a_missing_shard_is_named(capsys, tmp_path):
    preds, labels = write_shards(tmp_path)
    os.remove(tmp_path / "labels" / "part-002.npy")
    status, _, err = run_cli(capsys, "cross_entropy", preds, labels)
    assert status == 1
    assert "part-003.npy is paired with PRED shard" in err and "a shard is missing" in err
    os.remove(tmp_path / "labels" / "part-003.npy")
    os.remove(tmp_path / "preds" / "part-003.npy")
    os.remove(tmp_path / "preds" / "part-002.npy")
    os.remove(tmp_path / "labels" / "part-001.npy")
    status, _, err = run_cli(capsys, "cross_entropy", preds, labels)
    assert status == 1 and "PRED shard" in err and "part-001.npy has no TARGET shard" in err


def test_a_shard_of_the_wrong_shape_is_named(capsys, tmp_path):
    preds, labels = write_shards(tmp_path)
    np.save(tmp_path / "labels" / "part-002.npy", np.zeros(1299, dtype=np.int64))
    status, _, err = run_cli(capsys, "cross_entropy", preds, labels)
    assert status == 1 and "labels/part-002.npy: 1299 rows, expected 1300" in err
    np.save(tmp_path / "preds" / "part-001.npy", np.zeros((0, 6), dtype=np.float32))
    status, _, err = run_cli(capsys, "cross_entropy", preds, labels)
    assert status == 1 and "PRED shard" in err and "part-001.npy: shape (0, 6) float32" in err
    (tmp_path / "preds" / "part-001.npy").write_bytes(b"not a npy file")
    status, _, err = run_cli(capsys, "cross_entropy", preds, labels)
    assert status == 1 and "part-001.npy: cannot be read as a .npy array" in err


def test_a_bad_label_names_its_shard_and_rows(capsys, tmp_path):
    preds, labels = write_shards(tmp_path)
    bad = np.load(tmp_path / "labels" / "part-002.npy")
    bad[1234] = 70
    np.save(tmp_path / "labels" / "part-002.npy", bad)
    status, _, err = run_cli(capsys, "cross_entropy", preds, labels, "--chunk-rows", 1000)
    assert status == 1
    assert "rows 1000:1300 of PRED shard" in err and "labels/part-002.npy" in err
    assert "class index 70 at position (234,)" in err


def test_no_shard_matches(capsys, tmp_path):
    status, _, err = run_cli(capsys, "cross_entropy", str(tmp_path / "none-*.npy"),
                             str(tmp_path / "x-*.npy"))
    assert status == 1 and "PRED: no file matches" in err


# ------------------------------------------------------------ a real cluster

@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0",
                                  silence_logs=40) as local, \
            distributed.Client(local) as client:
        yield local, client


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy_with_logits", "kl_div"])
def test_cluster_agrees_with_one_process_for_several_chunkings(cluster, loss):
    _, client = cluster
    rng = np.random.default_rng(10)
    pred, target = make_inputs(loss, rng, 20000, np.float32)
    options = per_sample_options(loss, rng, 20000, np.float32)
    expected = crossent.evaluate(loss, pred, target, **options)
    for rows in (20000, 4096, 1000, 777):
        got = crossent_dask.evaluate(loss, chunked(pred, rows), chunked(target, rows),
                                     n_threads=1, **chunked_options(options, rows))
        assert same_bits(got, expected), rows
    assert len(client.scheduler_info()["workers"]) == 2


def killed_once(flag):
    """A block function that kills its worker process the first time it runs
    (the flag file remembers), as a crash or an OOM kill would."""
    def kill_once(block):
        if block.size and not os.path.exists(flag):
            open(flag, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return block
    return kill_once


@pytest.mark.slow
def test_a_worker_killed_mid_run_leaves_the_answer_exact(cluster, tmp_path):
    local, client = cluster
    rng = np.random.default_rng(11)
    logits, labels = make_inputs("cross_entropy", rng, 50000, np.float32)
    expected = crossent.evaluate("cross_entropy", logits, labels)
    flag = str(tmp_path / "killed")
    pred = chunked(logits, 5000).map_blocks(killed_once(flag), dtype=logits.dtype,
                                            meta=np.empty((0, 0), logits.dtype))
    got = crossent_dask.evaluate("cross_entropy", pred, labels, n_threads=1)
    assert os.path.exists(flag)          # a worker did die
    assert same_bits(got, expected)
    client.wait_for_workers(2, timeout=60)


@pytest.mark.slow
def test_cli_on_the_cluster_and_bad_shards(capsys, cluster, tmp_path):
    local, _ = cluster
    preds, labels = write_shards(tmp_path, rows=(3000, 2000, 4000))
    status, out, err = run_cli(capsys, "cross_entropy", preds, labels, "--scheduler",
                               local.scheduler_address, "--json", "--chunk-rows", 1000)
    assert status == 0, err
    report = json.loads(out)
    assert report["workers"] == 2 and report["chunks"] == 9
    assert report["loss"] == float(crossent.evaluate("cross_entropy", concatenated(preds),
                                                     concatenated(labels)))
    np.save(tmp_path / "labels" / "part-001.npy", np.zeros(1999, dtype=np.int64))
    status, _, err = run_cli(capsys, "cross_entropy", preds, labels, "--scheduler",
                             local.scheduler_address)
    assert status == 1 and "labels/part-001.npy: 1999 rows, expected 2000" in err
    os.remove(tmp_path / "labels" / "part-001.npy")
    status, _, err = run_cli(capsys, "cross_entropy", preds, labels, "--scheduler",
                             local.scheduler_address)
    assert status == 1 and "labels/part-002.npy is paired with PRED shard" in err


@pytest.mark.slow
def test_a_task_that_always_kills_its_worker_fails_clearly(tmp_path):
    """Past ``allowed-failures`` Dask gives up with KilledWorker naming the
    task: an error, never a loss computed without that block."""
    distributed = pytest.importorskip("distributed")
    import dask

    def always_kill(block):
        if block.size:
            os.kill(os.getpid(), signal.SIGKILL)
        return block

    logits, labels = make_inputs("cross_entropy", np.random.default_rng(12), 4000, np.float32)
    pred = chunked(logits, 1000).map_blocks(always_kill, dtype=logits.dtype,
                                            meta=np.empty((0, 0), logits.dtype))
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=":0",
                                     silence_logs=50) as local, distributed.Client(local):
        with pytest.raises(distributed.KilledWorker, match="all those workers died while running"):
            crossent_dask.evaluate("cross_entropy", pred, labels, n_threads=1)


@pytest.mark.slow
def test_cli_with_a_local_cluster_of_its_own(tmp_path):
    """--dask-workers 2 starts, uses and stops its own cluster (in a fresh
    process, as users run it)."""
    pytest.importorskip("distributed")
    preds, labels = write_shards(tmp_path)
    done = subprocess.run([sys.executable, "-m", "crossent", "eval", "cross_entropy", preds, labels,
                           "--dask-workers", "2", "--chunk-rows", "500", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["workers"] == 2 and len(report["worker_peak_mb"]) == 2
    assert report["loss"] == float(crossent.evaluate("cross_entropy", concatenated(preds),
                                                     concatenated(labels)))


def test_a_use_backend_block_reaches_the_tasks_threads(monkeypatch):
    """use_backend holds for its own thread; the threaded scheduler's
    workers are others, so the block's choice travels with the tasks."""
    seen = []
    real = crossent_dask.loss_partial
    monkeypatch.setattr(crossent_dask, "loss_partial",
                        lambda *args, backend=None, **kwargs:
                        seen.append(backend) or real(*args, backend=backend, **kwargs))
    rng = np.random.default_rng(8)
    logits, labels = make_inputs("cross_entropy", rng, 300)
    with crossent.use_backend("numpy"):
        got = crossent_dask.evaluate("cross_entropy", chunked(logits, 100), labels,
                                     scheduler="threads")
    assert seen == ["numpy"] * 3
    assert got == crossent.loss_partial("cross_entropy", logits, labels,
                                        backend="numpy").result()


def test_the_dask_path_takes_the_logit_transforms_and_refuses_metrics(capsys, tmp_path):
    preds, labels = write_shards(tmp_path)
    logits, targets = concatenated(preds), concatenated(labels)
    status, out, err = run_cli(capsys, "cross_entropy", preds, labels, "--z-loss", "1e-3",
                               "--softcap", "3", "--json")
    assert status == 0, err
    want = crossent.evaluate("cross_entropy", logits, targets, z_loss=1e-3, softcap=3.0)
    assert json.loads(out)["loss"] == float(want)
    status, out, err = run_cli(capsys, "cross_entropy", preds, labels, "--metrics", "accuracy")
    assert status == 1 and "--metrics: not on the Dask path" in err and out == ""


def test_an_option_no_loss_has_is_a_type_error():
    rng = np.random.default_rng(3)
    logits, labels = make_inputs("cross_entropy", rng, 200)
    for keyword in ("bogus", "metrics", "chunk_rows"):
        with pytest.raises(TypeError, match=f"{keyword}: not an option of a loss"):
            crossent_dask.evaluate("cross_entropy", chunked(logits, 100), labels,
                                   **{keyword: 1})
