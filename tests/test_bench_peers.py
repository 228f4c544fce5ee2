"""The JAX peer of ``crossent bench``: optax's formulas, crossent's values,
compiled and on the device before any call is timed; and a bench that names
what to install when a peer is missing.

The JAX tests are skipped where jax is not installed (optax's, where optax is
not: the peer transcribes its formulas and does not need it).
"""
import argparse

import numpy as np
import pytest

import crossent
from crossent import _bench, _bench_cases as cases_module

pytestmark = pytest.mark.peers

TINY_CASE = "cross_entropy[1x10-float32-contiguous]"
TINY_SETTINGS = {"repeats": 2, "min_time": 0.0, "n_threads": 1}
# Close to float rounding: the same math, summed in another order (crossent
# sums in float64, XLA in the input's precision).
RTOL = {"float32": 1e-5, "float64": 1e-12}


@pytest.fixture
def jax_peer():
    pytest.importorskip("jax")
    from crossent import _bench_jax

    return _bench_jax


def small_case(function, dtype="float64", layout="contiguous"):
    shape = (16, 7) if function in cases_module.ROW_FUNCTIONS else (33,)
    return cases_module.Case(function, shape, dtype, layout)


def jax_result(case, inputs):
    call = cases_module.prepare("jax", case, inputs, n_threads=1)
    return call.normalize(call.run())


def assert_close(ours, theirs, dtype, what):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    scale = float(np.max(np.abs(theirs), initial=0.0))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL[dtype], atol=RTOL[dtype] * scale,
                               err_msg=what)


# ------------------------------------------------------ crossent's values

@pytest.mark.parametrize("layout", cases_module.LAYOUTS)
@pytest.mark.parametrize("dtype", cases_module.DTYPES)
@pytest.mark.parametrize("function", sorted(cases_module.JAX_FUNCTIONS))
def test_the_jax_peer_gives_crossents_values(jax_peer, function, dtype, layout):
    case = small_case(function, dtype, layout)
    inputs = cases_module.make_inputs(case)
    ours = getattr(crossent, function)(*inputs.args, **inputs.kwargs)
    theirs = jax_result(case, inputs)
    if case.has_grad:
        assert_close(ours[0], theirs[0], dtype, f"{case.id}: loss")
        assert_close(ours[1], theirs[1], dtype, f"{case.id}: gradient")
    else:
        assert_close(ours, theirs, dtype, case.id)


@pytest.mark.parametrize("dtype", cases_module.DTYPES)
def test_soft_targets_take_optax_softmax_cross_entropy(jax_peer, dtype):
    rng = np.random.default_rng(1)
    logits = 3.0 * rng.standard_normal((16, 7)).astype(dtype)
    probs = crossent.softmax(rng.standard_normal((16, 7)).astype(dtype))
    ours = crossent.cross_entropy(logits, probs, return_grad=True)
    run = jax_peer.ready_call("cross_entropy", [logits, probs])
    loss, grad = run()
    assert_close(ours[0], float(loss), dtype, "soft targets: loss")
    assert_close(ours[1], np.asarray(grad), dtype, "soft targets: gradient")


def test_the_peer_covers_the_functions_the_bench_gives_it(jax_peer):
    assert jax_peer.FUNCTIONS == cases_module.JAX_FUNCTIONS


def test_the_bench_checks_the_jax_peer_against_the_reference(jax_peer, monkeypatch):
    case = cases_module.case_by_id(TINY_CASE)
    results, failures = _bench.measure_case(case, ["numpy", "jax"], TINY_SETTINGS)
    assert failures == [] and all(r["correct"] for r in results)

    off = jax_peer.LOSSES["cross_entropy"]
    monkeypatch.setitem(jax_peer.LOSSES, "cross_entropy", lambda z, t: 1.01 * off(z, t))
    results, _ = _bench.measure_case(case, ["numpy", "jax"], TINY_SETTINGS)
    assert {r["impl"]: r["correct"] for r in results} == {"numpy": True, "jax": False}


# ------------------------------------------------------- optax's formulas

OPTAX_NAMES = {"cross_entropy": "softmax_cross_entropy_with_integer_labels",
               "binary_cross_entropy_with_logits": "sigmoid_binary_cross_entropy",
               "mse_loss": "squared_error"}


@pytest.mark.parametrize("dtype", cases_module.DTYPES)
@pytest.mark.parametrize("function", sorted(OPTAX_NAMES))
def test_the_losses_are_optaxs(jax_peer, function, dtype):
    optax = pytest.importorskip("optax")
    import jax

    case = small_case(function, dtype)
    prediction, target = cases_module.make_inputs(case).args
    ours, theirs = jax_peer.LOSSES[function], getattr(optax, OPTAX_NAMES[function])
    jax.config.update("jax_enable_x64", True)
    # The same operations in the same order: the same bits, value and gradient.
    np.testing.assert_array_equal(ours(prediction, target), theirs(prediction, target))
    grads = [jax.grad(jax_peer.mean_of(loss))(prediction, target) for loss in (ours, theirs)]
    np.testing.assert_array_equal(*grads)


def test_soft_targets_are_optaxs_softmax_cross_entropy(jax_peer):
    optax = pytest.importorskip("optax")

    rng = np.random.default_rng(2)
    logits = rng.standard_normal((16, 7)).astype(np.float32)
    probs = crossent.softmax(rng.standard_normal((16, 7)).astype(np.float32))
    np.testing.assert_array_equal(jax_peer.cross_entropy(logits, probs),
                                  optax.softmax_cross_entropy(logits, probs))


# ------------------------------------------------ what a timed call does

def counting_traces(monkeypatch, jax_peer, function):
    """Make ``function``'s formula count how often JAX traces it (a Python
    side effect runs only while tracing, never in a compiled call)."""
    table = jax_peer.LOSSES if function in jax_peer.LOSSES else jax_peer.ACTIVATIONS
    formula, traces = table[function], []

    def traced(*args):
        traces.append(function)
        return formula(*args)
    monkeypatch.setitem(table, function, traced)
    return traces


@pytest.mark.parametrize("function", ["cross_entropy", "softmax"])
def test_the_compile_happens_when_the_call_is_prepared(jax_peer, monkeypatch, function):
    traces = counting_traces(monkeypatch, jax_peer, function)
    case = small_case(function, "float32")
    call = cases_module.prepare("jax", case, cases_module.make_inputs(case), n_threads=1)
    assert len(traces) == 1
    for _ in range(3):
        call.run()
    assert len(traces) == 1


def test_a_bench_run_traces_the_jax_peer_once(jax_peer, monkeypatch):
    traces = counting_traces(monkeypatch, jax_peer, "cross_entropy")
    _bench.measure_case(cases_module.case_by_id(TINY_CASE), ["jax"], TINY_SETTINGS)
    assert len(traces) == 1


def test_arrays_go_to_the_device_before_and_each_call_waits(jax_peer, monkeypatch):
    import jax

    placed, waited = [], []
    real_put, real_wait = jax.device_put, jax.block_until_ready
    monkeypatch.setattr(jax, "device_put", lambda x, *a, **k: placed.append(x) or real_put(x, *a, **k))
    case = small_case("cross_entropy", "float32")
    inputs = cases_module.make_inputs(case)
    call = cases_module.prepare("jax", case, inputs, n_threads=1)
    assert len(placed) == len(inputs.args)

    monkeypatch.setattr(jax, "block_until_ready", lambda x: waited.append(x) or real_wait(x))
    call.run()
    call.run()
    assert len(placed) == len(inputs.args) and len(waited) == 2


# --------------------------------------------------- a peer not installed

def bench_parser():
    parser = argparse.ArgumentParser(prog="crossent bench")
    _bench.add_arguments(parser)
    return parser


def without_peers(monkeypatch, *names):
    real = cases_module.peer_installed
    monkeypatch.setattr(cases_module, "peer_installed", lambda name: name not in names and real(name))


def test_asking_for_jax_without_it_says_what_to_install(monkeypatch, capsys):
    without_peers(monkeypatch, "jax")
    status = _bench.run(bench_parser().parse_args(["--quick", "--peers", "jax"]))
    captured = capsys.readouterr()
    assert status == _bench.EXIT_USAGE and captured.out == ""
    assert captured.err.count("\n") == 1
    assert "jax: pip install jax jaxlib" in captured.err
    assert cases_module.PEERS_EXTRA_INSTALL in captured.err


def test_a_run_without_peers_notes_what_to_install(monkeypatch, capsys):
    without_peers(monkeypatch, *cases_module.PEERS)
    status = _bench.run(bench_parser().parse_args(
        ["--cases", TINY_CASE, "--backends", "numpy", "--repeats", "1", "--min-time", "0",
         "--no-progress"]))
    err = capsys.readouterr().err
    assert status == _bench.EXIT_OK
    assert "peers not installed" in err
    for name, hint in cases_module.PEER_INSTALL.items():
        assert f"{name}: {hint}" in err
    assert err.count(cases_module.PEERS_EXTRA_INSTALL) == 1
    assert "torch==2.13.0" in err  # never an unpinned torch
