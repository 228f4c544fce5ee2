"""``crossent.loss_partial``: exact, mergeable loss sums.  The rule
(docs/guarantees.md): the merged sum is the correctly rounded sum of every
per-sample loss of ``reduction="none"`` (``math.fsum`` is the oracle), the
mean divides it by the correctly rounded sum of the per-sample weights, and
neither depends on how the samples were split or in what order the pieces
were merged."""
import json
import math
import pickle
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

import crossent
from crossent import _api
from crossent._exactsum import ExactSum

N_CLASSES = 5


def make_inputs(loss, rng, n, dtype=np.float64, n_classes=N_CLASSES):
    """Valid predictions and targets of loss ``loss`` with ``n`` samples
    (rows, or elements of an (n,) array for an elementwise loss)."""
    kinds = _api.FUNCTIONS[loss]
    shape = (n, n_classes) if kinds.over == "rows" else (n,)
    logits = rng.normal(scale=2.0, size=shape)
    if kinds.pred == "logits":
        pred = logits
    elif kinds.over == "rows":
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        pred = np.exp(log_probs) if kinds.pred == "probs" else log_probs
    else:
        pred = rng.uniform(0.01, 0.99, size=shape)
    if kinds.target == "labels":
        target = rng.integers(0, n_classes, size=n)
    elif kinds.target == "binary":
        target = rng.integers(0, 2, size=shape).astype(dtype)
    elif kinds.target == "probs":
        target = rng.dirichlet(np.ones(n_classes), size=n)
    else:
        target = rng.normal(size=shape)
    return pred.astype(dtype), target.astype(target.dtype if target.dtype.kind in "iu" else dtype)


def per_sample_options(loss, rng, n, dtype=np.float64):
    """Weights that vary by sample (and class weights / ignored rows for the
    multiclass losses that take them)."""
    options = {"sample_weight": rng.uniform(0.25, 2.0, size=n).astype(dtype)}
    if loss in ("cross_entropy", "categorical_cross_entropy", "nll_loss"):
        options["weight"] = rng.uniform(0.5, 1.5, size=N_CLASSES)
        options["ignore_index"] = 3
    elif _api.FUNCTIONS[loss].over == "elements":
        options["weight"] = rng.uniform(0.5, 1.5, size=n).astype(dtype)
    return options


def take(options, start, stop):
    """The options of samples start:stop (per-sample arrays sliced)."""
    n_classes_weight = {"weight"} if "ignore_index" in options else set()
    return {k: v[start:stop] if isinstance(v, np.ndarray) and k not in n_classes_weight else v
            for k, v in options.items()}


def piece(loss, pred, target, options, start, stop, **kwargs):
    return crossent.loss_partial(loss, pred[start:stop], target[start:stop],
                                 **take(options, start, stop), **kwargs)


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


# ------------------------------------------------------------ the rule

@pytest.mark.parametrize("loss", _api.LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_is_the_correctly_rounded_sum_of_the_per_sample_losses(backend, loss, weighted, dtype):
    rng = np.random.default_rng(1)
    pred, target = make_inputs(loss, rng, 700, dtype)
    options = per_sample_options(loss, rng, 700, dtype) if weighted else {}
    partial = crossent.loss_partial(loss, pred, target, backend=backend, **options)
    losses = getattr(crossent, loss)(pred, target, reduction="none", backend=backend, **options)
    assert same_bits(partial.result("sum"), dtype(math.fsum(losses.astype(np.float64).ravel())))


@pytest.mark.parametrize("loss", _api.LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_mean_is_within_rounding_of_the_one_shot_call(backend, loss, weighted):
    rng = np.random.default_rng(2)
    pred, target = make_inputs(loss, rng, 900)
    options = per_sample_options(loss, rng, 900) if weighted else {}
    partial = crossent.loss_partial(loss, pred, target, backend=backend, **options)
    for reduction in tuple(partial.denominators) + ("sum",):
        one_shot = getattr(crossent, loss)(pred, target, reduction=reduction, backend=backend,
                                           **options)
        assert partial.result(reduction) == pytest.approx(one_shot, rel=1e-13, abs=0)


@pytest.mark.parametrize("transforms", [{"z_loss": 0.05}, {"softcap": 3.0},
                                        {"z_loss": 1e-3, "softcap": 2.0}])
@pytest.mark.parametrize("weighted", [False, True])
def test_logit_transforms_keep_the_loss_s_denominator(backend, transforms, weighted):
    rng = np.random.default_rng(4)
    logits, labels = make_inputs("cross_entropy", rng, 300)
    options = per_sample_options("cross_entropy", rng, 300) if weighted else {"ignore_index": 3}
    options.update(transforms)
    one_shot = crossent.cross_entropy(logits, labels, backend=backend, **options)
    whole = crossent.loss_partial("cross_entropy", logits, labels, backend=backend, **options)
    assert whole.result() == pytest.approx(one_shot, rel=1e-13, abs=0)
    split = sum(piece("cross_entropy", logits, labels, options, a, b, backend=backend)
                for a, b in [(0, 100), (100, 101), (101, 300)])
    assert same_bits(split.result(), whole.result())


def test_weighted_mean_divides_by_the_exact_sum_of_the_per_sample_weights(backend):
    rng = np.random.default_rng(3)
    logits, labels = make_inputs("cross_entropy", rng, 1000)
    options = per_sample_options("cross_entropy", rng, 1000)
    kept = labels != options["ignore_index"]
    weights = [options["weight"][t] * s
               for t, s, k in zip(labels, options["sample_weight"], kept) if k]
    losses = crossent.cross_entropy(logits, labels, reduction="none", backend=backend, **options)
    partial = crossent.loss_partial("cross_entropy", logits, labels, backend=backend, **options)
    assert partial.result() == math.fsum(losses) / math.fsum(weights)
    assert partial.samples == 1000


def test_mse_mean_divides_by_sample_times_element_weights(backend):
    rng = np.random.default_rng(4)
    pred, target = make_inputs("mse_loss", rng, 3000)
    s, w = rng.uniform(0.1, 2.0, size=(2, 3000))
    partial = crossent.loss_partial("mse_loss", pred, target, weight=w, sample_weight=s,
                                    backend=backend)
    losses = crossent.mse_loss(pred, target, weight=w, sample_weight=s, reduction="none",
                               backend=backend)
    assert partial.result() == math.fsum(losses) / math.fsum(s * w)
    assert partial.denominators["mean"].value() == math.fsum(s * w)


@pytest.mark.parametrize("axis", [-1, 1])
def test_kl_div_has_both_means(backend, axis):
    rng = np.random.default_rng(5)
    log_q, p = make_inputs("kl_div", rng, 400)
    s = rng.uniform(0.5, 2.0, size=400)
    if axis == 1:
        log_q, p = log_q[:, :, None], p[:, :, None]
        s = s[:, None]
    partial = crossent.loss_partial("kl_div", log_q, p, sample_weight=s, axis=axis, backend=backend)
    assert partial.denominators["batchmean"].value() == math.fsum(s.ravel())
    exact_sum = sum(Fraction(float(v)) for v in s.ravel())
    assert partial.denominators["mean"].value() == float(exact_sum * N_CLASSES)
    for reduction in ("batchmean", "mean", "sum"):
        expected = crossent.kl_div(log_q, p, sample_weight=s, axis=axis, reduction=reduction,
                                   backend=backend)
        assert partial.result(reduction) == pytest.approx(expected, rel=1e-13)
    assert partial.result() == partial.result("batchmean")


# ------------------------------------------------------------ merging

@st.composite
def splits(draw):
    loss = draw(st.sampled_from(_api.LOSSES))
    n = draw(st.integers(0, 300))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=8)))
    order = draw(st.permutations(range(len(cuts) + 1)))
    pairs = draw(st.lists(st.integers(0, 10**6), min_size=len(cuts), max_size=len(cuts)))
    return loss, n, cuts, order, pairs, draw(st.booleans()), draw(st.sampled_from([np.float32,
                                                                                   np.float64]))


@given(splits())
def test_any_split_and_merge_order_give_the_same_bits(case):
    loss, n, cuts, order, pairs, weighted, dtype = case
    rng = np.random.default_rng(n)
    pred, target = make_inputs(loss, rng, n, dtype)
    options = per_sample_options(loss, rng, n, dtype) if weighted else {}
    whole = crossent.loss_partial(loss, pred, target, **options)
    bounds = list(zip([0] + cuts, cuts + [n]))
    pieces = [piece(loss, pred, target, options, *bounds[i]) for i in order]
    # a random merge tree: merge two random pieces until one is left
    for choice in pairs:
        i, j = choice % len(pieces), (choice // 7) % (len(pieces) - 1)
        a = pieces.pop(i)
        b = pieces.pop(j)
        pieces.append(b + a if choice % 2 else a.merge(b))
    (merged,) = pieces
    assert merged == whole
    for reduction in tuple(whole.denominators) + ("sum",):
        assert same_bits(merged.result(reduction), whole.result(reduction))


def test_merging_is_associative_and_commutative():
    rng = np.random.default_rng(6)
    logits, labels = make_inputs("cross_entropy", rng, 300)
    a, b, c = (crossent.loss_partial("cross_entropy", logits[i:i + 100], labels[i:i + 100])
               for i in (0, 100, 200))
    assert (a + b) + c == a + (b + c) == c + (b + a) == sum([b, c, a])
    assert crossent.merge_partials([c, a, b]) == a + b + c
    assert (a + b).samples == 200


def test_partials_of_different_computations_do_not_merge():
    rng = np.random.default_rng(7)
    logits, labels = make_inputs("cross_entropy", rng, 100)
    base = crossent.loss_partial("cross_entropy", logits, labels)
    others = {"another loss": crossent.loss_partial("nll_loss", logits, labels),
              "another dtype": crossent.loss_partial("cross_entropy", logits.astype(np.float32),
                                                     labels),
              "another option": crossent.loss_partial("cross_entropy", logits, labels,
                                                      label_smoothing=0.1),
              "a z-loss": crossent.loss_partial("cross_entropy", logits, labels, z_loss=0.1),
              "a softcap": crossent.loss_partial("cross_entropy", logits, labels, softcap=5.0),
              "other class weights": crossent.loss_partial("cross_entropy", logits, labels,
                                                           weight=np.arange(1.0, 6.0))}
    same = [crossent.loss_partial("cross_entropy", logits, labels, ignore_index=-100, axis=1,
                                  label_smoothing=0.0, z_loss=0.0, softcap=None)]
    assert all(base.merge(p) == base + base for p in same)   # the defaults, spelled out
    for what, other in others.items():
        with pytest.raises(ValueError, match="partials of different computations cannot merge"):
            base.merge(other)
    with pytest.raises(TypeError, match="other: expected a LossPartial, got float"):
        base.merge(1.0)


# ------------------------------------------------------------ storage

def test_pickle_and_json_keep_the_exact_sums():
    rng = np.random.default_rng(8)
    logits, labels = make_inputs("cross_entropy", rng, 500, np.float32)
    options = per_sample_options("cross_entropy", rng, 500, np.float32)
    partial = crossent.loss_partial("cross_entropy", logits, labels, **options)
    for copy in (pickle.loads(pickle.dumps(partial)),
                 crossent.LossPartial.from_json(partial.to_json()),
                 crossent.LossPartial.from_json(json.dumps(json.loads(partial.to_json())))):
        assert copy == partial
        assert same_bits(copy.result(), partial.result())
        assert copy + partial == partial + partial
    assert len(pickle.dumps(partial)) < 2000


def test_json_that_is_not_a_partial_is_refused():
    with pytest.raises(ValueError, match="expected the JSON of LossPartial.to_json()"):
        crossent.LossPartial.from_json('{"loss": "cross_entropy"}')
    with pytest.raises(ValueError, match="expected the JSON of LossPartial.to_json()"):
        crossent.LossPartial.from_json("not json")


# ------------------------------------------------------------ edge values

def test_nan_prediction_gives_nan_whatever_the_split():
    rng = np.random.default_rng(9)
    logits, labels = make_inputs("cross_entropy", rng, 200)
    logits[150, 2] = np.nan
    a = crossent.loss_partial("cross_entropy", logits[:100], labels[:100])
    b = crossent.loss_partial("cross_entropy", logits[100:], labels[100:])
    assert math.isnan((a + b).result()) and math.isnan((b + a).result("sum"))
    assert not math.isnan(a.result())


def test_infinities_of_both_signs_sum_to_nan_in_any_order():
    pos, neg = ExactSum.of([np.inf, 1.0]), ExactSum.of([-np.inf])
    assert math.isnan((pos + neg).value()) and math.isnan((neg + pos).value())
    assert pos.value() == math.inf and neg.value() == -math.inf


def test_zero_denominator_gives_nan_and_empty_input_sums_to_zero():
    logits = np.zeros((3, N_CLASSES))
    ignored = crossent.loss_partial("cross_entropy", logits, np.full(3, -100))
    assert math.isnan(ignored.result()) and ignored.result("sum") == 0
    empty = crossent.loss_partial("cross_entropy", np.zeros((0, N_CLASSES)), np.zeros(0, int))
    assert math.isnan(empty.result()) and empty.result("sum") == 0 and empty.samples == 0
    rng = np.random.default_rng(10)
    logits, labels = make_inputs("cross_entropy", rng, 50)
    whole = crossent.loss_partial("cross_entropy", logits, labels)
    together = crossent.loss_partial("cross_entropy", np.concatenate([logits, np.zeros((3, 5))]),
                                     np.concatenate([labels, np.full(3, -100)]))
    assert same_bits((empty + whole + ignored).result("sum"), together.result("sum"))


@pytest.mark.parametrize("seed", range(6))
def test_exact_sum_is_the_correctly_rounded_sum(seed):
    """Against fractions.Fraction: values over the whole float64 range,
    subnormals, cancellations, and sums beyond the largest float64."""
    rng = np.random.default_rng(seed)
    n = 2000
    values = rng.standard_normal(n) * np.exp2(rng.integers(-1074, 1000, size=n).astype(float))
    values[::5] = rng.integers(-50, 50, size=values[::5].size) * 5e-324   # subnormals
    values[1::7] = -values[0::7][: values[1::7].size]                       # cancellations
    if seed == 5:
        values[:4] = [1.7e308, 1.7e308, -1e308, 1e-300]
    exact = sum(Fraction(float(v)) for v in values)
    total = ExactSum.of(values)
    try:
        expected = float(exact)
    except OverflowError:
        expected = math.inf if exact > 0 else -math.inf
    assert total.value() == expected
    halves = ExactSum.of(values[n // 3:]) + ExactSum.of(values[: n // 3])
    assert halves == total


def test_exact_sum_float32_values_and_many_per_exponent():
    rng = np.random.default_rng(11)
    values = rng.uniform(1.0, 2.0, size=3 * 2**20).astype(np.float32)
    assert ExactSum.of(values).value() == math.fsum(values.astype(np.float64))


# ------------------------------------------------------------ errors

def test_bad_calls_say_what_was_expected():
    logits, labels = make_inputs("cross_entropy", np.random.default_rng(12), 10)
    with pytest.raises(ValueError, match="name: expected one of cross_entropy"):
        crossent.loss_partial("softmax", logits, labels)
    with pytest.raises(TypeError, match="reduction: a partial gives every reduction"):
        crossent.loss_partial("cross_entropy", logits, labels, reduction="mean")
    partial = crossent.loss_partial("cross_entropy", logits, labels)
    with pytest.raises(ValueError, match="reduction: expected 'mean' or 'sum' for cross_entropy"):
        partial.result("batchmean")
    with pytest.raises(ValueError, match="target: class index 7"):
        crossent.loss_partial("cross_entropy", logits, np.full(10, 7))


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy_with_logits", "kl_div"])
def test_every_simd_variant_gives_the_same_partial(compiled_backend, loss):
    module = __import__(f"crossent._{compiled_backend}_backend", fromlist=["info"])
    rng = np.random.default_rng(13)
    pred, target = make_inputs(loss, rng, 3000, np.float32)
    best = module.info()["simd"]
    partials = {}
    try:
        for variant in module.info()["simd_available"].split(","):
            module.set_simd(variant)
            partials[variant] = crossent.loss_partial(loss, pred, target, backend=compiled_backend)
    finally:
        module.set_simd(best)
    assert len(set(partials.values())) == 1 and partials[best] == list(partials.values())[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_exact_bins_give_the_numpy_sum(dtype, monkeypatch):
    """The compiled exact_bins and the NumPy bincount path are the same
    exact int, over signs, subnormals, zeros and a wide range of exponents."""
    from crossent import _exactsum
    if _exactsum._compiled_bins() is None:
        pytest.skip("no compiled backend")
    rng = np.random.default_rng(21)
    info = np.finfo(dtype)
    values = (rng.standard_normal(50_000) * np.exp2(rng.integers(-60, 60, 50_000))).astype(dtype)
    values[:8] = [0.0, -0.0, info.smallest_subnormal, -info.smallest_subnormal, info.max,
                  -info.max, info.tiny, 1.0]
    compiled = _exactsum.ExactSum.of(values)
    monkeypatch.setattr(_exactsum, "_compiled_bins", lambda: None)
    assert compiled == _exactsum.ExactSum.of(values)
    exact = sum(Fraction(float(v)) for v in values.tolist())
    assert compiled.units == exact * 2**_exactsum.UNIT_BITS
