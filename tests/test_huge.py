"""More than 2^31 elements: no 32-bit index overflows anywhere in the kernels.

Shape (2^16, 2^15 + 1) float32 holds 2^31 + 2^16 elements. Broadcast
(zero-stride) views cost no memory; one real 8.6 GB array (peak < 10 GB)
checks the elementwise kernels on a real allocation. Every expected value is
known without a huge computation: all rows are equal, so the answer is one
row's answer (computed by the same backend on that row alone), or it is
known analytically (softmax over identical logits). Compiled backends only:
the NumPy reference would need several 8 GB temporaries.

Timings (2 cores shared with other jobs, so upper bounds): each broadcast
test 12-22 s per backend; the real-array test 125-245 s per backend, of which
the three kernels take 50-90 s and the rest is allocating, paging in and
verifying 8.6 GB. ``pytest -m slow tests/test_huge.py -s --durations=0``
prints them.
"""
import time

import numpy as np
import pytest

import crossent

pytestmark = pytest.mark.slow

COMPILED = [name for name in crossent.backends() if name != "numpy"]
ROWS, COLS = 2**16, 2**15 + 1
assert ROWS * COLS > 2**31
REAL_ARRAY_BYTES = ROWS * COLS * 4
RNG = np.random.default_rng(100)
ROW = RNG.normal(scale=2.0, size=COLS).astype(np.float32)
ROW_LABELS = RNG.integers(0, 2, size=COLS).astype(np.float32)


def available_bytes():
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    return int(fields["MemAvailable"].split()[0]) * 1024


def timed(label, call):
    started = time.perf_counter()
    result = call()
    print(f"{label}: {time.perf_counter() - started:.1f} s")
    return result


@pytest.mark.parametrize("backend", COMPILED)
def test_cross_entropy_over_broadcast_rows(backend):
    """2^16 equal rows of 2^15 + 1 classes: every per-row loss is the loss of
    the one row, and the float64 mean of 2^16 equal float32 values is exact."""
    logits = np.broadcast_to(ROW, (ROWS, COLS))
    labels = np.full(ROWS, 12345)
    one_row = crossent.cross_entropy(ROW[None], labels[:1], reduction="none", backend=backend)[0]
    losses = timed(f"{backend} cross_entropy none", lambda: crossent.cross_entropy(
        logits, labels, reduction="none", backend=backend))
    np.testing.assert_array_equal(losses, np.full(ROWS, one_row, dtype=np.float32))
    mean = timed(f"{backend} cross_entropy mean", lambda: crossent.cross_entropy(
        logits, labels, backend=backend))
    assert mean == one_row


@pytest.mark.parametrize("backend", COMPILED)
def test_cross_entropy_over_a_zero_stride_class_axis(backend):
    """Class axis 0 (2^16 classes, stride 0): each of the 2^15 + 1 rows holds
    one repeated logit, so its loss is log(2^16) = 16·ln 2 whatever the label."""
    logits = np.broadcast_to(ROW, (ROWS, COLS))
    labels = RNG.integers(0, ROWS, size=COLS)
    losses = timed(f"{backend} cross_entropy axis=0", lambda: crossent.cross_entropy(
        logits, labels, axis=0, reduction="none", backend=backend))
    np.testing.assert_allclose(losses, np.full(COLS, 16 * np.log(2.0)), rtol=2e-7)


@pytest.mark.parametrize("backend", COMPILED)
def test_bce_with_logits_over_broadcast_rows(backend):
    """Sum of 2^31 + 2^16 elementwise losses = 2^16 × the row's sum (float64
    accumulation, rounded once to float32: 1 ulp)."""
    z = np.broadcast_to(ROW, (ROWS, COLS))
    y = np.broadcast_to(ROW_LABELS, (ROWS, COLS))
    row_losses = crossent.binary_cross_entropy_with_logits(ROW, ROW_LABELS, reduction="none",
                                                           backend=backend)
    expected = np.float32(ROWS * np.sum(row_losses, dtype=np.float64))
    total = timed(f"{backend} bce_with_logits broadcast sum", lambda:
                  crossent.binary_cross_entropy_with_logits(z, y, reduction="sum",
                                                            backend=backend))
    assert total.dtype == np.float32
    np.testing.assert_allclose(total, expected, rtol=2**-23)


@pytest.mark.parametrize("backend", COMPILED)
def test_real_array_of_more_than_2_31_elements(backend):
    """One real 8.6 GB float32 array: sigmoid writes 2^31 + 2^16 outputs (from
    a broadcast input), then binary_cross_entropy_with_logits and
    binary_cross_entropy read them all."""
    if available_bytes() < REAL_ARRAY_BYTES + (3 << 30):
        pytest.skip(f"needs {REAL_ARRAY_BYTES / 2**30:.1f} GiB + 3 GiB headroom free, "
                    f"{available_bytes() / 2**30:.1f} GiB available")
    p = np.empty((ROWS, COLS), dtype=np.float32)
    timed(f"{backend} sigmoid into 8.6 GB", lambda: crossent.sigmoid(
        np.broadcast_to(ROW, p.shape), out=p, backend=backend))
    row_p = crossent.sigmoid(ROW, backend=backend)
    for start in range(0, ROWS, 4096):  # bitwise: the same element function on every element
        assert (p[start:start + 4096] == row_p).all(), f"rows {start}.. differ"
    y = np.broadcast_to(ROW_LABELS, p.shape)
    for name in ("binary_cross_entropy_with_logits", "binary_cross_entropy"):
        function = getattr(crossent, name)
        row_mean = np.mean(function(row_p, ROW_LABELS, reduction="none", backend=backend),
                           dtype=np.float64)
        mean = timed(f"{backend} {name} on 8.6 GB", lambda: function(p, y, backend=backend))
        assert mean.dtype == np.float32
        np.testing.assert_allclose(mean, np.float32(row_mean), rtol=2**-23, err_msg=name)
