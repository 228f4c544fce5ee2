"""The metrics of ``crossent.evaluate(..., metrics=...)`` and ``crossent eval
--metrics``: equal to scikit-learn's on in-memory data, on every backend;
the per-row ranks of the ``*_eval`` kernels equal the reference's on every
SIMD variant; chunked results equal the one-shot results bit for bit; and
the loss-only kernels give the loss kernels' bits."""
import json
import math

import numpy as np
import pytest

import crossent
from crossent import __main__ as cli
from crossent import _backends, _reference

sklearn_metrics = pytest.importorskip("sklearn.metrics")

RANKED = ("cross_entropy", "categorical_cross_entropy", "nll_loss")
BINARY = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
COMPILED = [name for name in ("cython", "c") if name in crossent.backends()]


def multiclass_data(loss, rng, rows=700, classes=7, dtype=np.float64, ties=False):
    logits = rng.normal(scale=2.0, size=(rows, classes))
    if ties:   # few distinct values: many tied maxima and tied targets
        logits = np.round(logits)
    logits = logits.astype(dtype)
    if loss == "cross_entropy":
        pred = logits
    else:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = (e / e.sum(axis=1, keepdims=True)).astype(dtype)
        pred = probs if loss == "categorical_cross_entropy" else np.log(probs)
    return pred, rng.integers(0, classes, rows)


def sklearn_top_k(pred, target, k, sample_weight=None):
    """scikit-learn's accuracy (of numpy.argmax) or top-k accuracy.  Its
    top-k breaks ties toward the highest index (a stable ascending sort,
    reversed), so ties are compared with `stable_top_k` instead."""
    classes = pred.shape[1]
    if k == 1:
        return sklearn_metrics.accuracy_score(target, np.argmax(pred, axis=1),
                                              sample_weight=sample_weight)
    if k >= classes:
        return 1.0
    return sklearn_metrics.top_k_accuracy_score(target, pred, k=k, labels=np.arange(classes),
                                                sample_weight=sample_weight)


def stable_top_k(pred, target, k):
    """Top-k accuracy with ties to the lowest index, as numpy.argmax: the
    target's place in a stable sort by decreasing score."""
    order = np.argsort(-pred, axis=1, kind="stable")
    place = np.argmax(order == target[:, None], axis=1)
    return float(np.mean(place < k))


@pytest.mark.parametrize("loss", RANKED)
@pytest.mark.parametrize("ties", [False, True])
def test_ranked_metrics_equal_sklearn(backend, loss, ties):
    rng = np.random.default_rng(1)
    pred, target = multiclass_data(loss, rng, ties=ties)
    got = crossent.evaluate(loss, pred, target, backend=backend,
                            metrics=("accuracy", "top2", "top5", "top9", "perplexity"))
    assert list(got) == ["loss", "accuracy", "top2", "top5", "top9", "perplexity"]
    assert got["accuracy"] == sklearn_top_k(pred, target, 1)
    for k in (2, 5):
        expected = stable_top_k(pred, target, k) if ties else sklearn_top_k(pred, target, k)
        assert got[f"top{k}"] == pytest.approx(expected, abs=1e-15)
    if ties:   # scikit-learn's top-k ranks a tie above the target when it comes later
        assert stable_top_k(pred, target, 2) != sklearn_top_k(pred, target, 2)
    assert got["top9"] == 1.0
    # the loss of the exact rule (docs/guarantees.md, promise 17)
    assert got["loss"] == crossent.loss_partial(loss, pred, target, backend=backend).result()
    assert got["perplexity"] == pytest.approx(math.exp(got["loss"]), rel=1e-14)


def test_perplexity_is_exp_of_sklearn_log_loss(backend):
    rng = np.random.default_rng(2)
    probs, target = multiclass_data("categorical_cross_entropy", rng)
    got = crossent.evaluate("categorical_cross_entropy", probs, target, backend=backend,
                            metrics="perplexity")
    expected = math.exp(sklearn_metrics.log_loss(target, probs, labels=np.arange(7)))
    assert got["perplexity"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("loss", RANKED)
def test_weights_and_ignored_rows_follow_the_loss(backend, loss):
    rng = np.random.default_rng(3)
    pred, target = multiclass_data(loss, rng, rows=500, classes=6)
    class_weight = rng.uniform(0.2, 3.0, 6)
    sample_weight = rng.uniform(0.0, 2.0, 500)
    target[::7] = -1
    got = crossent.evaluate(loss, pred, target, weight=class_weight, sample_weight=sample_weight,
                            ignore_index=-1, backend=backend, metrics="accuracy,top3")
    kept = target != -1
    row_weight = class_weight[target[kept]] * sample_weight[kept]
    for name, k in (("accuracy", 1), ("top3", 3)):
        expected = sklearn_top_k(pred[kept], target[kept], k, sample_weight=row_weight)
        assert got[name] == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("loss", RANKED)
def test_float32_predictions_keep_the_weights_float64(backend, loss):
    """The metrics weigh rows by the weights given, not by their float32
    roundings: equal to scikit-learn's, and 1 when every row is correct."""
    rng = np.random.default_rng(12)
    pred, target = multiclass_data(loss, rng, rows=1000, classes=10, dtype=np.float32)
    class_weight = np.linspace(0.5, 2.0, 10)
    sample_weight = rng.uniform(0.1, 2.0, 1000)
    got = crossent.evaluate(loss, pred, target, weight=class_weight, sample_weight=sample_weight,
                            backend=backend, metrics="accuracy,top3,top10")
    row_weight = class_weight[target] * sample_weight
    for name, k in (("accuracy", 1), ("top3", 3)):   # (the sums' order apart: 1e-16)
        expected = sklearn_top_k(pred, target, k, sample_weight=row_weight)
        assert got[name] == pytest.approx(expected, rel=1e-14, abs=0), name
    assert got["top10"] == 1.0


@pytest.mark.parametrize("transforms", [{"z_loss": 0.01}, {"softcap": 2.5},
                                        {"z_loss": 0.01, "softcap": 2.5}])
def test_logit_transforms_change_the_loss_not_the_predictions_ranks(backend, transforms):
    rng = np.random.default_rng(5)
    pred, target = multiclass_data("cross_entropy", rng, rows=400, classes=6)
    class_weight = rng.uniform(0.2, 3.0, 6)
    target[::9] = -1
    options = dict(weight=class_weight, ignore_index=-1, backend=backend)
    got = crossent.evaluate("cross_entropy", pred, target, metrics="accuracy,top2,perplexity",
                            chunk_rows=150, **options, **transforms)
    plain = crossent.evaluate("cross_entropy", pred, target, metrics="accuracy,top2", **options)
    loss = crossent.cross_entropy(pred, target, **options, **transforms)
    assert got["loss"] == pytest.approx(loss, rel=1e-13)
    assert got["perplexity"] == pytest.approx(math.exp(loss), rel=1e-12)
    assert got["accuracy"] == plain["accuracy"] and got["top2"] == plain["top2"]


@pytest.mark.parametrize("loss", RANKED)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("chunk_rows", [64, 128, 320])
def test_chunked_metrics_equal_one_shot_bit_for_bit(tmp_path, backend, loss, weighted,
                                                    chunk_rows):
    rng = np.random.default_rng(4)
    pred, target = multiclass_data(loss, rng, rows=1000, classes=11, dtype=np.float32)
    options = {}
    if weighted:
        options = {"weight": rng.uniform(0.1, 2, 11),
                   "sample_weight": rng.uniform(0, 1, 1000).astype(np.float32)}
    metrics = ("accuracy", "top3", "perplexity")
    one_shot = crossent.evaluate(loss, pred, target, backend=backend, metrics=metrics, **options)
    np.save(tmp_path / "p.npy", pred)
    np.save(tmp_path / "t.npy", target)
    chunked = crossent.evaluate(loss, str(tmp_path / "p.npy"), str(tmp_path / "t.npy"),
                                chunk_rows=chunk_rows, backend=backend, metrics=metrics,
                                **options)
    assert chunked["loss"].tobytes() == one_shot["loss"].tobytes()
    for name in metrics:
        assert chunked[name] == one_shot[name] or (math.isnan(chunked[name])
                                                   and math.isnan(one_shot[name])), name


def test_a_row_holding_a_nan_is_never_correct(backend):
    pred = np.array([[np.nan, 0.0, 1.0], [3.0, np.nan, 1.0], [0.0, 5.0, 1.0], [2.0, 1.0, 0.0]])
    target = np.array([0, 0, 1, 0])
    got = crossent.evaluate("cross_entropy", pred, target, backend=backend,
                            metrics=("accuracy", "top3"))
    assert got["accuracy"] == 0.5 and got["top3"] == 0.5 and math.isnan(got["loss"])


def test_infinities_and_ties_rank_as_numpy_argmax(backend):
    inf = np.inf
    pred = np.array([[inf, inf, 0.0], [inf, inf, 0.0], [-inf, -inf, -inf], [-inf, -inf, -inf],
                     [1.0, 1.0, 1.0], [0.0, -inf, 2.0]])
    target = np.array([0, 1, 0, 2, 1, 1])
    got = crossent.evaluate("nll_loss", pred, target, backend=backend, metrics="accuracy,top2")
    argmax_hits = np.argmax(pred, axis=1) == target
    assert got["accuracy"] == argmax_hits.mean()
    assert got["top2"] == 4 / 6   # rows 0, 1, 2 and 4 (the second of three equal entries)


@pytest.mark.parametrize("loss", RANKED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_eval_kernels_give_the_loss_kernels_bits_and_the_reference_ranks(loss, dtype, simd):
    rng = np.random.default_rng(5)
    modules = [_backends.module(name) for name in COMPILED]
    if not modules:
        pytest.skip("no compiled backend")
    if simd not in modules[0].info()["simd_available"].split(","):
        pytest.skip(f"{simd} is not available here")
    for classes in (1, 3, 10, 16, 17, 100, 161, 1000):
        pred, target = multiclass_data(loss, rng, rows=150, classes=classes, dtype=dtype,
                                       ties=classes in (10, 100))
        pred[3, 0] = np.nan
        target[::9] = -100
        kernel = {"cross_entropy": "softmax_xent_index", "categorical_cross_entropy":
                  "categorical_xent_index", "nll_loss": "nll_index"}[loss]
        z3, t2 = pred[None], target[None]
        smoothing = () if loss == "nll_loss" else (0.0,)
        expected_ranks = _reference.target_ranks(z3, t2, -100)
        for module in modules:
            saved = module.info()["simd"]
            module.set_simd(simd)   # each compiled module has its own dispatcher
            try:
                ranks = np.empty(t2.shape, dtype)
                total = getattr(module, kernel + "_eval")(z3, t2, None, None, -100, *smoothing,
                                                          None, ranks, 1, 0.0)
                plain = getattr(module, kernel)(z3, t2, None, None, -100, *smoothing, None,
                                                None, 1.0, 1, 0.0)
                # With the per-sample losses (what a partial sums): the same ones.
                losses, ranks_too = np.empty(t2.shape, dtype), np.empty(t2.shape, dtype)
                total_too = getattr(module, kernel + "_eval")(z3, t2, None, None, -100,
                                                              *smoothing, losses, ranks_too, 1,
                                                              0.0)
                plain_losses = np.empty(t2.shape, dtype)
                getattr(module, kernel)(z3, t2, None, None, -100, *smoothing, plain_losses,
                                        None, 1.0, 1, 0.0)
            finally:
                module.set_simd(saved)
            assert np.array_equal(ranks, expected_ranks, equal_nan=True), (module.NAME, classes)
            assert np.array_equal(ranks_too, expected_ranks, equal_nan=True)
            assert np.array_equal(losses, plain_losses, equal_nan=True), (module.NAME, classes)
            for got in (total, total_too):
                assert got == plain or (math.isnan(got) and math.isnan(plain))


def test_ranks_of_a_strided_class_axis(backend):
    rng = np.random.default_rng(6)
    pred, target = multiclass_data("cross_entropy", rng, rows=200, classes=9)
    fortran = np.asfortranarray(pred)
    got = crossent.evaluate("cross_entropy", fortran.T, target, axis=0, backend=backend,
                            metrics=("accuracy", "top4"))
    assert got["accuracy"] == sklearn_top_k(pred, target, 1)
    assert got["top4"] == pytest.approx(sklearn_top_k(pred, target, 4), abs=1e-15)


@pytest.mark.parametrize("loss", BINARY)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_metrics_equal_sklearn(backend, loss, weighted):
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=2.0, size=(400, 3))
    y = rng.integers(0, 2, size=(400, 3)).astype(float)
    probs = 1 / (1 + np.exp(-logits))
    pred = logits if loss == "binary_cross_entropy_with_logits" else probs
    options, sample_weight = {}, None
    if weighted:
        options = {"weight": rng.uniform(0.5, 2, (400, 3)),
                   "sample_weight": rng.uniform(0, 1, (400, 1))}
        sample_weight = (options["weight"] * options["sample_weight"]).ravel()
    got = crossent.evaluate(loss, pred, y, backend=backend,
                            metrics=("accuracy", "brier", "perplexity"), **options)
    expected_accuracy = sklearn_metrics.accuracy_score(y.ravel(), probs.ravel() > 0.5,
                                                       sample_weight=sample_weight)
    expected_brier = sklearn_metrics.brier_score_loss(y.ravel(), probs.ravel(),
                                                      sample_weight=sample_weight)
    assert got["accuracy"] == pytest.approx(expected_accuracy, rel=1e-13)
    assert got["brier"] == pytest.approx(expected_brier, rel=1e-12)
    assert got["perplexity"] == pytest.approx(math.exp(got["loss"]), rel=1e-14)


def test_binary_metrics_chunked_equal_one_shot(tmp_path, backend):
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(5000, 4)).astype(np.float32)
    y = rng.integers(0, 2, size=(5000, 4)).astype(np.float32)
    sample_weight = rng.uniform(size=(5000, 1)).astype(np.float32)
    np.save(tmp_path / "z.npy", logits)
    np.save(tmp_path / "y.npy", y)
    metrics = ("accuracy", "brier")
    one_shot = crossent.evaluate("binary_cross_entropy_with_logits", logits, y,
                                 sample_weight=sample_weight, backend=backend, metrics=metrics)
    chunked = crossent.evaluate("binary_cross_entropy_with_logits", str(tmp_path / "z.npy"),
                                str(tmp_path / "y.npy"), sample_weight=sample_weight,
                                chunk_rows=1024, backend=backend, metrics=metrics)
    assert chunked == one_shot


@pytest.mark.parametrize("loss, metrics, message", [
    ("cross_entropy", "brier", "'brier' is not a metric of cross_entropy"),
    ("binary_cross_entropy", "top5", "'top5' is not a metric of binary_cross_entropy"),
    ("mse_loss", "accuracy", "it offers: none"),
    ("cross_entropy", "top0", "'top0'"),
])
def test_metrics_a_loss_does_not_offer_are_refused(loss, metrics, message):
    with pytest.raises(ValueError, match=message):
        crossent.evaluate(loss, np.zeros((2, 3)), np.zeros(2 if loss == "cross_entropy" else
                                                           (2, 3), int if loss ==
                                                           "cross_entropy" else float),
                          metrics=metrics)


def test_metrics_must_be_names():
    with pytest.raises(TypeError, match="metrics"):
        crossent.evaluate("cross_entropy", np.zeros((2, 3)), np.zeros(2, int), metrics=5)
    with pytest.raises(TypeError, match="metric names"):
        crossent.evaluate("cross_entropy", np.zeros((2, 3)), np.zeros(2, int), metrics=[1])


def test_soft_targets_have_no_ranks():
    with pytest.raises(ValueError, match="class-index targets"):
        crossent.evaluate("cross_entropy", np.zeros((2, 3)), np.full((2, 3), 1 / 3),
                          metrics="accuracy")
    got = crossent.evaluate("cross_entropy", np.zeros((2, 3)), np.full((2, 3), 1 / 3),
                            metrics="perplexity")
    assert got["perplexity"] == pytest.approx(3.0)


def test_cli_metrics_table_and_json(capsys, tmp_path):
    rng = np.random.default_rng(9)
    pred, target = multiclass_data("cross_entropy", rng, rows=300, classes=8, dtype=np.float32)
    np.save(tmp_path / "p.npy", pred)
    np.save(tmp_path / "t.npy", target)
    files = [str(tmp_path / "p.npy"), str(tmp_path / "t.npy")]
    expected = crossent.evaluate("cross_entropy", pred, target, metrics="accuracy,top5")
    assert cli.main(["eval", "cross_entropy", *files, "--metrics", "accuracy,top5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = dict(line.split(None, 1) if not line.startswith("cross_entropy") else
                 ("loss", line.split()[-1]) for line in lines)
    assert np.float32(table["loss"]) == expected["loss"]
    assert float(table["accuracy"]) == pytest.approx(expected["accuracy"], abs=1e-6)
    assert float(table["top5"]) == pytest.approx(expected["top5"], abs=1e-6)
    assert table["rows"] == "300" and "rows/s" in table and "kB" in table["read"]
    assert cli.main(["eval", "cross_entropy", *files, "--metrics", "accuracy,top5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"] == {"accuracy": expected["accuracy"], "top5": expected["top5"]}
    assert report["bytes_read"] == pred.nbytes + target.nbytes


def test_cli_refuses_an_unknown_metric(capsys, tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((4, 3)))
    np.save(tmp_path / "t.npy", np.zeros(4, int))
    status = cli.main(["eval", "cross_entropy", str(tmp_path / "p.npy"), str(tmp_path / "t.npy"),
                       "--metrics", "acuracy"])
    err = capsys.readouterr().err
    assert status == 1 and "metrics" in err and "acuracy" in err


@pytest.mark.parametrize("loss", RANKED)
def test_ranks_of_a_few_wide_rows_shared_by_the_threads(backend, loss):
    rng = np.random.default_rng(10)
    pred, target = multiclass_data(loss, rng, rows=9, classes=20000, dtype=np.float32)
    target[4] = -100
    got = crossent.evaluate(loss, pred, target, backend=backend, n_threads=2,
                            metrics=("accuracy", "top100", "top5000"))
    kept = target != -100
    for name, k in (("accuracy", 1), ("top100", 100), ("top5000", 5000)):
        assert got[name] == stable_top_k(pred[kept], target[kept], k), name


def test_empty_input_gives_nan_metrics(backend):
    got = crossent.evaluate("cross_entropy", np.zeros((0, 5), np.float32), np.zeros(0, int),
                            backend=backend, metrics="accuracy,top2,perplexity")
    assert all(math.isnan(value) for value in got.values())


def test_a_middle_class_axis_with_sample_weights(backend):
    rng = np.random.default_rng(11)
    z, t, sw = rng.normal(size=(4, 6, 7)), rng.integers(0, 6, (4, 7)), rng.uniform(size=7)
    got = crossent.evaluate("cross_entropy", z, t, axis=1, sample_weight=sw, backend=backend,
                            metrics="accuracy,top3")
    rows = np.moveaxis(z, 1, -1).reshape(-1, 6)
    weights = np.broadcast_to(sw, (4, 7)).ravel()
    for name, k in (("accuracy", 1), ("top3", 3)):
        expected = sklearn_top_k(rows, t.ravel(), k, sample_weight=weights)
        assert got[name] == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("loss", RANKED)
def test_a_partial_with_ranks_is_the_partial_without(loss, backend):
    """The metrics' ranks come from the partial's own kernel call (the
    evaluation kernel): the partial is the same, ignored rows, weights and
    NaN rows included."""
    from crossent._partial import partial_and_ranks
    rng = np.random.default_rng(8)
    pred, target = multiclass_data(loss, rng, rows=300, classes=40, dtype=np.float32)
    pred[7, 3] = np.nan
    target[::11] = -100
    options = {"weight": rng.random(40) + 0.5, "sample_weight": rng.random(300).astype(np.float32)}
    partial, ranks, _ = partial_and_ranks(loss, pred, target, backend, 2, options, "ranks")
    assert partial == crossent.loss_partial(loss, pred, target, backend=backend, n_threads=2,
                                            **options)
    expected = _reference.target_ranks(pred[None], target[None], -100)[0]
    assert np.array_equal(ranks, expected, equal_nan=True)


def test_ranks_need_class_index_targets(backend):
    from crossent._partial import partial_and_ranks
    pred = np.random.default_rng(9).random((20, 4))
    soft = pred / pred.sum(axis=1, keepdims=True)
    with pytest.raises(ValueError, match="class-index targets"):
        partial_and_ranks("cross_entropy", pred, soft, backend, 1, {}, "ranks")
    with pytest.raises(ValueError, match="class-index targets"):
        crossent.evaluate("cross_entropy", pred, soft, metrics="top2", backend=backend)
