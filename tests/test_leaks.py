"""No leaks: many calls of every public function on every backend leave the
process's memory where it was.

Each function is called through a few variants (weights, gradients, grad_out,
out=, the validation-error path) on tiny inputs, after a warm-up. Three
measures, three bounds:

Growth is judged on the steady part: the calls are split into equal
segments and the bound applies to (number of segments) × the median segment's
growth, so that a one-off allocation elsewhere in the process does not fail
the test while a leak, which grows every segment, does.

* tracemalloc (every Python and NumPy allocation): over 1 000 calls (4
  segments) the traced memory grows by less than ``TRACED_BOUND`` (64 KiB,
  i.e. < 66 bytes per call; a leaked result array of these inputs is >= 100
  bytes);
* resident set size, after ``malloc_trim`` (catches C ``malloc`` leaks in
  the kernels, which tracemalloc does not see), 8 segments: below 1 MiB for
  the default 1 000 calls (< 1 KiB per call; a kernel's staging buffer is
  kilobytes) and below 4 MiB for the 100 000 calls of the slow test (< 42
  bytes per call);
* reference counts of the input arrays: unchanged (a leaked reference to an
  input costs no memory, so only the count shows it).
"""
import ctypes
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import crossent

BACKENDS = crossent.backends()
TRACED_BOUND = 64 * 1024
SMOKE_CALLS, SMOKE_RSS_BOUND = 1_000, 1 << 20
FULL_CALLS, FULL_RSS_BOUND = 100_000, 4 << 20
WARM_UP_CALLS = 200
TRACED_CALLS = 1_000  # tracemalloc triples a call's cost: the slow test traces 1 000 too
TRACED_SEGMENTS = 4
RSS_SEGMENTS = 8
try:
    LIBC = ctypes.CDLL("libc.so.6")
    LIBC.malloc.restype = ctypes.c_void_p  # for the self-test's deliberate C leak
except OSError:  # not glibc: RSS without trimming (noisier, same bounds)
    LIBC = None

RNG = np.random.default_rng(80)
N, C = 3, 4
LOGITS = RNG.normal(size=(N, C))
LOGITS32 = LOGITS.astype(np.float32)
PROBS = RNG.uniform(0.1, 0.9, size=(N, C))
BINARY = RNG.integers(0, 2, size=(N, C)).astype(float)
LABELS = np.array([0, 3, 1])
SOFT = PROBS / PROBS.sum(axis=1, keepdims=True)
CLASS_WEIGHT = RNG.uniform(0.5, 2.0, size=C)
ROW_WEIGHT = RNG.uniform(0.5, 2.0, size=N)
BAD_LABELS = np.array([0, 9, 1])
GRAD_OUT = np.empty((N, C))
OUT = np.empty((N, C))
INPUTS = [LOGITS, LOGITS32, PROBS, BINARY, LABELS, SOFT, CLASS_WEIGHT, ROW_WEIGHT, BAD_LABELS,
          GRAD_OUT, OUT]


@pytest.fixture(autouse=True, scope="module")
def frozen_heap():
    """The objects of everything imported so far (torch, JAX, Dask, ... when
    the whole suite runs) moved out of the collector's sight: each
    measurement's gc.collect() then walks only what the calls allocate,
    instead of millions of objects."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def expect_value_error(call):
    def run():
        try:
            call()
        except ValueError:
            return
        raise AssertionError("the bad call did not raise ValueError")
    return run


def variants(backend):
    """name -> the calls that exercise one public function on ``backend``."""
    b = {"backend": backend}
    ce = crossent
    return {
        "sigmoid": [lambda: ce.sigmoid(LOGITS, **b), lambda: ce.sigmoid(LOGITS32, **b),
                    lambda: ce.sigmoid(LOGITS, out=OUT, **b)],
        "log_sigmoid": [lambda: ce.log_sigmoid(LOGITS, **b),
                        lambda: ce.log_sigmoid(LOGITS[:, ::2], **b)],
        "softmax": [lambda: ce.softmax(LOGITS, **b),
                    lambda: ce.softmax(LOGITS, axis=0, out=OUT, **b)],
        "log_softmax": [lambda: ce.log_softmax(LOGITS32, **b),
                        lambda: ce.log_softmax(LOGITS.T, **b)],
        "logsumexp": [lambda: ce.logsumexp(LOGITS, **b),
                      lambda: ce.logsumexp(LOGITS, axis=0, **b)],
        "binary_cross_entropy": [
            lambda: ce.binary_cross_entropy(PROBS, BINARY, **b),
            lambda: ce.binary_cross_entropy(PROBS, BINARY, weight=CLASS_WEIGHT, reduction="none",
                                            return_grad=True, grad_out=GRAD_OUT, **b),
            expect_value_error(lambda: ce.binary_cross_entropy(LOGITS, BINARY, **b))],
        "binary_cross_entropy_with_logits": [
            lambda: ce.binary_cross_entropy_with_logits(LOGITS, BINARY, **b),
            lambda: ce.binary_cross_entropy_with_logits(
                LOGITS32, BINARY, pos_weight=CLASS_WEIGHT, sample_weight=ROW_WEIGHT[:, None],
                label_smoothing=0.1, return_grad=True, **b)],
        "mse_loss": [lambda: ce.mse_loss(LOGITS, PROBS, **b),
                     lambda: ce.mse_loss(LOGITS, PROBS, weight=CLASS_WEIGHT, return_grad=True,
                                         reduction="sum", **b)],
        "cross_entropy": [
            lambda: ce.cross_entropy(LOGITS, LABELS, **b),
            lambda: ce.cross_entropy(LOGITS32, LABELS, weight=CLASS_WEIGHT, ignore_index=3,
                                     label_smoothing=0.2, return_grad=True, **b),
            lambda: ce.cross_entropy(LOGITS, SOFT, sample_weight=ROW_WEIGHT, reduction="none",
                                     return_grad=True, grad_out=GRAD_OUT, **b),
            expect_value_error(lambda: ce.cross_entropy(LOGITS, BAD_LABELS, **b))],
        "categorical_cross_entropy": [
            lambda: ce.categorical_cross_entropy(PROBS, LABELS, return_grad=True, **b),
            lambda: ce.categorical_cross_entropy(PROBS, SOFT, weight=CLASS_WEIGHT,
                                                 reduction="none", **b)],
        "nll_loss": [lambda: ce.nll_loss(LOGITS, LABELS, weight=CLASS_WEIGHT, return_grad=True,
                                         **b),
                     lambda: ce.nll_loss(LOGITS.T, LABELS, axis=0, reduction="sum", **b)],
        "evaluate": [lambda: ce.evaluate("cross_entropy", LOGITS, LABELS, **b),
                     lambda: ce.evaluate("binary_cross_entropy_with_logits", LOGITS, BINARY, **b)],
        "linear.logistic": [lambda: with_backend(backend, ce.linear.logistic, LOGITS, BINARY[:, 0],
                                                 PROBS[0])],
        "linear.softmax": [lambda: with_backend(backend, ce.linear.softmax, LOGITS, LABELS,
                                                PROBS.T @ PROBS)],
    }


def with_backend(backend, function, *args):
    with crossent.use_backend(backend):
        return function(*args)


FUNCTION_NAMES = list(variants("numpy"))


def resident_bytes():
    """Resident set size, after handing glibc's free heap pages back to the
    system (otherwise freed-but-cached memory makes RSS jump by ~1 MiB)."""
    gc.collect()
    if LIBC is not None:
        LIBC.malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(calls, n_calls):
    for i in range(n_calls):
        calls[i % len(calls)]()


def steady_growth(measure, calls, n_calls, n_segments):
    """Growth of ``measure()`` over ``n_calls`` calls, as n_segments × the median
    growth of n_segments equal segments: a leak grows every segment alike,
    while a one-off allocation (an OpenMP thread's stack, a cache, a list
    somewhere else in the process) shows in one segment only."""
    growths = []
    for _ in range(n_segments):
        before = measure()
        run(calls, n_calls // n_segments)
        growths.append(measure() - before)
    return n_segments * sorted(growths)[n_segments // 2], growths


def traced_bytes():
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def traced_growth(calls, n_calls):
    tracemalloc.start()
    try:
        run(calls, WARM_UP_CALLS)  # tracemalloc's own first allocations
        return steady_growth(traced_bytes, calls, n_calls, TRACED_SEGMENTS)
    finally:
        tracemalloc.stop()


def assert_no_growth(name, calls, n_calls, rss_bound):
    refcounts = [sys.getrefcount(a) for a in INPUTS]
    run(calls, WARM_UP_CALLS)
    rss_growth, rss_segments = steady_growth(resident_bytes, calls, n_calls, RSS_SEGMENTS)
    traced, traced_segments = traced_growth(calls, min(n_calls, TRACED_CALLS))
    assert traced < TRACED_BOUND, f"{name}: traced memory grew {traced_segments} per segment"
    assert rss_growth < rss_bound, f"{name}: resident memory grew {rss_segments} per segment"
    assert [sys.getrefcount(a) for a in INPUTS] == refcounts, f"{name} leaks input references"


@pytest.mark.parametrize("name", FUNCTION_NAMES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_calls_do_not_leak(backend, name):
    assert_no_growth(name, variants(backend)[name], SMOKE_CALLS, SMOKE_RSS_BOUND)


@pytest.mark.slow
@pytest.mark.parametrize("name", FUNCTION_NAMES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_100k_calls_do_not_leak(backend, name):
    assert_no_growth(name, variants(backend)[name], FULL_CALLS, FULL_RSS_BOUND)


def test_a_leak_would_be_detected():
    """The bounds can fail: holding on to each call's result trips them."""
    kept = []
    with pytest.raises(AssertionError, match="grew"):
        assert_no_growth("probe", [lambda: kept.append(crossent.softmax(LOGITS, backend="numpy"))],
                         SMOKE_CALLS, SMOKE_RSS_BOUND)


@pytest.mark.skipif(LIBC is None, reason="needs glibc's malloc")
def test_a_c_heap_leak_would_be_detected():
    """The RSS bound sees what tracemalloc cannot: C memory, touched and
    never freed, one 4 KiB page a call.  The page comes from mmap, not
    malloc, so that the leak shows whatever free heap the process already
    holds (after the whole suite, malloc would first hand out that)."""
    mmap = LIBC.mmap
    mmap.restype = ctypes.c_void_p
    mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                     ctypes.c_long]
    prot_read_write, map_private_anonymous = 0x1 | 0x2, 0x02 | 0x20

    def leak_c_memory():
        page = mmap(None, 4096, prot_read_write, map_private_anonymous, -1, 0)
        ctypes.memset(page, 1, 4096)
        crossent.sigmoid(LOGITS, backend="numpy")

    with pytest.raises(AssertionError, match="resident memory grew"):
        assert_no_growth("probe", [leak_c_memory], SMOKE_CALLS, SMOKE_RSS_BOUND)
