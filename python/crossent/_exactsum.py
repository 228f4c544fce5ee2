"""An exact, mergeable sum of float64 values: the accumulator behind
:func:`crossent.loss_partial`.

The sum is held as a Python int in units of 2**-UNIT_BITS (every finite
float64 is a whole number of them), plus flags for NaN and the infinities.
Adding ints is exact, so the sum of many values does not depend on their
order or on how they were grouped, and it is rounded to float64 once, when
asked (Python's int/int division is correctly rounded).

Each value is split into an exponent and an integer mantissa by its bits
(a float64's 53-bit mantissa in two halves of at most 27 bits), and the
mantissas of equal exponent are added in int64 by a compiled backend's
``exact_bins`` (csrc/crossent_pybind.h), or, without one, by
``np.bincount`` in float64, exactly as long as fewer than 2**26 values
share one call; the few non-empty exponent bins are then shifted into the
int.  Both give the same int.
"""
import math

import numpy as np

# The smallest float64 step is 2**-1074 and the float64 mantissa has 53
# bits: in units of 2**-1127 every float64 and every mantissa-sized piece of
# one is a whole number.
UNIT_BITS = 1127
# Values per slice: few enough that the temporaries stay in cache (and far
# below the 2**26 values per bincount that keep its float64 sums exact).
_SLICE = 1 << 16
# Values per call of a compiled exact_bins (whose int64 sums stay exact for
# 2**36 values).
_COMPILED_SLICE = 1 << 32
_FLOAT32_BINS = 256
_FLOAT64_BINS = 2048


class ExactSum:
    """Σ of float64 values, exactly: ``units`` (int, in 2**-UNIT_BITS) for
    the finite values, and whether a NaN, a +inf or a -inf was seen."""
    __slots__ = ("units", "nan", "pos_inf", "neg_inf")

    def __init__(self, units=0, nan=False, pos_inf=False, neg_inf=False):
        self.units, self.nan, self.pos_inf, self.neg_inf = int(units), nan, pos_inf, neg_inf

    @classmethod
    def of(cls, values):
        """The exact sum of ``values`` (any real array; converted to float64,
        which is exact for float16/float32 and integers below 2**53)."""
        total = cls()
        total.add_array(values)
        return total

    def add_array(self, values):
        values = np.asarray(values)
        # float32 (and float16, exactly widened to it) is split by its bits,
        # which is cheaper than frexp; everything else goes through float64.
        dtype = np.float32 if values.dtype in (np.float16, np.float32) else np.float64
        flat = np.ravel(values.astype(dtype, copy=False))
        if flat.size == 0:
            return self
        with np.errstate(over="ignore", invalid="ignore"):
            plain_sum = float(np.sum(flat))
        if not math.isfinite(plain_sum):   # a NaN, an inf, or just an overflow
            finite = np.isfinite(flat)
            if not finite.all():
                odd = flat[~finite]
                self.nan |= bool(np.isnan(odd).any())
                self.pos_inf |= bool((odd == np.inf).any())
                self.neg_inf |= bool((odd == -np.inf).any())
                flat = flat[finite]
        compiled = _compiled_bins()
        if compiled is not None:
            for start in range(0, flat.size, _COMPILED_SLICE):
                self.units += _units_of_bins(compiled(flat[start:start + _COMPILED_SLICE]))
            return self
        units_of = _float32_units if dtype == np.float32 else _float64_units
        for start in range(0, flat.size, _SLICE):
            self.units += units_of(flat[start:start + _SLICE])
        return self

    def add_count(self, count):
        """Add the integer ``count`` (a sum of weights that are all 1)."""
        self.units += int(count) << UNIT_BITS
        return self

    def __iadd__(self, other):
        self.units += other.units
        self.nan |= other.nan
        self.pos_inf |= other.pos_inf
        self.neg_inf |= other.neg_inf
        return self

    def __add__(self, other):
        return ExactSum(self.units + other.units, self.nan or other.nan,
                        self.pos_inf or other.pos_inf, self.neg_inf or other.neg_inf)

    def __eq__(self, other):
        return isinstance(other, ExactSum) and self.state() == other.state()

    def __hash__(self):
        return hash(self.state())

    def state(self):
        return (self.units, self.nan, self.pos_inf, self.neg_inf)

    def value(self, divisor=1):
        """The sum divided by the positive int ``divisor``, correctly rounded
        to float64 (ties to even); NaN and infinities as IEEE addition gives
        them, whatever the order."""
        if self.nan or (self.pos_inf and self.neg_inf):
            return math.nan
        if self.pos_inf or self.neg_inf:
            return math.inf if self.pos_inf else -math.inf
        try:
            return self.units / (divisor << UNIT_BITS)
        except OverflowError:   # the rounded sum is beyond the largest float64
            return math.inf if self.units > 0 else -math.inf

    def __repr__(self):
        return f"ExactSum({self.value()!r})"


def _compiled_bins():
    """The ``exact_bins`` of a compiled backend, or None (NumPy only)."""
    from . import _backends
    for name in _backends.backends():
        bins = getattr(_backends.module(name), "exact_bins", None)
        if bins is not None:
            return bins
    return None


def _units_of_bins(bins):
    """Σ in units of 2**-UNIT_BITS of integer sums by exponent, as
    ``exact_bins`` gives them (int64, or float64 holding integers)."""
    total = 0
    if bins.ndim == 1:      # float32: M * 2**(E - 150)
        for b in np.flatnonzero(bins).tolist():
            total += int(bins[b]) << (b - 150 + UNIT_BITS)
        return total
    high, low = bins        # float64: (high * 2**26 + low) * 2**(E - 1075)
    for b in np.flatnonzero((high != 0) | (low != 0)).tolist():
        total += ((int(high[b]) << 26) + int(low[b])) << (b - 1075 + UNIT_BITS)
    return total


def _float32_units(flat):
    """Σ flat (finite float32) in units of 2**-UNIT_BITS: x = ±M * 2**(E - 150)
    with E its biased exponent (1 for subnormals) and M < 2**24 its mantissa
    with the implicit bit; bincount adds the M of each E exactly."""
    bits = flat.view(np.int32)
    negative = bits < 0
    exponent = (bits >> 23) & 0xFF
    mantissa = (bits & 0x7FFFFF).astype(np.float64)
    mantissa += (exponent != 0) * 8388608.0                 # the implicit bit, 2**23
    np.negative(mantissa, out=mantissa, where=negative)
    np.maximum(exponent, 1, out=exponent)
    return _units_of_bins(np.bincount(exponent, weights=mantissa, minlength=_FLOAT32_BINS))


def _float64_units(flat):
    """Σ flat (finite float64) in units of 2**-UNIT_BITS: x = ±M * 2**(E - 1075)
    with M < 2**53, added as its high 27 and low 26 bits."""
    bits = flat.view(np.int64)      # signed: int64 -> float64 converts faster than uint64
    negative = bits < 0
    bins = (bits >> 52) & 0x7FF
    mantissa = bits & ((1 << 52) - 1)
    mantissa += (bins != 0).astype(np.int64) << 52    # the implicit bit
    high = (mantissa >> 26).astype(np.float64)
    low = (mantissa & ((1 << 26) - 1)).astype(np.float64)
    np.negative(high, out=high, where=negative)
    np.negative(low, out=low, where=negative)
    np.maximum(bins, 1, out=bins)
    return _units_of_bins(np.stack([np.bincount(bins, weights=high, minlength=_FLOAT64_BINS),
                                    np.bincount(bins, weights=low, minlength=_FLOAT64_BINS)]))
