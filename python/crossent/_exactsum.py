"""An exact, mergeable sum of float64 values: the accumulator behind
:func:`crossent.loss_partial`.

The sum is held as a Python int in units of 2**-UNIT_BITS (every finite
float64 is a whole number of them), plus flags for NaN and the infinities.
Adding ints is exact, so the sum of many values does not depend on their
order or on how they were grouped, and it is rounded to float64 once, when
asked (Python's int/int division is correctly rounded).

Vectorised: each value is split by ``np.frexp`` into an exponent and a
53-bit integer mantissa, the mantissa into two halves of at most 27 bits;
``np.bincount`` adds the halves of equal exponent in float64, exactly as long
as fewer than 2**26 values share one call; the few non-empty exponent bins
are then shifted into the int.
"""
import math

import numpy as np

# frexp gives x = m * 2**e, 0.5 <= |m| < 1, e >= -1073 for every non-zero
# float64; with M = m * 2**53 an integer, x = M * 2**(e - 53).  In units of
# 2**-1127 that is M << (e + 1074), a non-negative shift.
UNIT_BITS = 1127
_EXPONENT_OFFSET = 1074
_BINS = 1024 + _EXPONENT_OFFSET + 1
# Values per bincount call: the halves (|h| < 2**27) then sum below 2**53.
_SLICE = 1 << 24


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
        flat = np.ravel(np.asarray(values, dtype=np.float64))
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
        for start in range(0, flat.size, _SLICE):
            self.units += _exact_units(flat[start:start + _SLICE])
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


def _exact_units(flat):
    """Σ flat (finite float64, fewer than 2**26 values) in units of 2**-UNIT_BITS."""
    mantissa, exponent = np.frexp(flat)
    mantissa *= 2.0 ** 27                      # exact: a power of two
    high = np.floor(mantissa)                  # |high| < 2**27, an integer
    mantissa -= high
    mantissa *= 2.0 ** 26                      # the low 26 bits, an integer in [0, 2**26)
    bins = exponent.astype(np.intp)
    bins += _EXPONENT_OFFSET
    high_sums = np.bincount(bins, weights=high, minlength=_BINS)
    low_sums = np.bincount(bins, weights=mantissa, minlength=_BINS)
    total = 0
    for b in np.flatnonzero(high_sums.astype(bool) | low_sums.astype(bool)).tolist():
        total += ((int(high_sums[b]) << 26) + int(low_sums[b])) << b
    return total
