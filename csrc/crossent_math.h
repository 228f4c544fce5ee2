/*
 * crossent_math.h -- the scalar numeric primitives every crossent kernel uses.
 *
 * static inline, plain C99, no Python.h, no libm calls: each function is
 * straight-line code (selects, no branches), so that GCC vectorises a loop
 * calling it at -O3 without -ffast-math, and every SIMD variant rounds
 * exactly like the scalar code (the build has -ffp-contract=off: no FMA).
 *
 * Vectorising a loop over these needs -fno-trapping-math (the row
 * functions set it by pragma, see crossent_rows_impl.h): otherwise GCC will
 * not if-convert a select whose arm computes floating-point arithmetic.
 * Every arm and condition is still computed into a variable first and the
 * ?: only picks between ready values, which keeps the selects simple.
 *
 *   ce_math_exp_{f32,f64}        exp, Cody-Waite reduction + polynomial
 *   ce_math_exp_nonpositive_{...} exp of x <= 0, as softmax shifts give it
 *   ce_math_exp_moderate_{...}    exp of x <= 0 whose 2^k is normal
 *   ce_math_log_{f32,f64}        log   } fdlibm/musl's log kernel
 *   ce_math_log1p_{f32,f64}      log1p }
 *   ce_math_log1p_unit_{...}     log1p of [0, 1], as exp(-|x|) gives it
 *   ce_math_log1pexp_{f32,f64}   log(1 + exp(x)) = softplus(x)
 *   ce_math_log_sigmoid_{...}    log(sigmoid(x)) = -softplus(-x)
 *   ce_math_sigmoid_{f32,f64}    1 / (1 + exp(-x))
 *
 * Accuracy (tests/test_math_header.py, against mpmath at 50 digits, over the
 * whole finite range incl. subnormal results): see docs/numerics.md; every
 * function is within 4 ulp of the correctly rounded value.
 */
#ifndef CROSSENT_MATH_H
#define CROSSENT_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- bit access (memcpy: no aliasing UB, compiles to a register move) -- */

static inline uint64_t ce_math_bits_f64(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline double ce_math_from_bits_f64(uint64_t u)
{
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static inline uint32_t ce_math_bits_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float ce_math_from_bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* ---- exp ---------------------------------------------------------------
 * exp(x) = 2^k * exp(r), k = round(x / ln 2), r = x - k ln 2 in
 * [-ln2/2, ln2/2] (Cody-Waite: ln 2 split in a high part whose product with
 * k is exact and a low part), exp(r) by a polynomial, 2^k built in the
 * exponent bits.  2^k is applied as two factors 2^k1 * 2^(k-k1), each a
 * normal number, so that results down in the subnormal range round once and
 * results just past the overflow threshold become inf by themselves.  Far
 * outside, the reduction gives garbage (never UB: the bit arithmetic is
 * unsigned) and a final select returns inf or 0; NaN propagates through the
 * arithmetic.  No clamp of the input: GCC would fold the clamp constant into
 * the multiply on one path, leaving a branch that blocks vectorisation. */

/* exp(x) overflows above log(DBL_MAX) = 709.78 and rounds to 0 below
 * log(2^-1075) = -745.13; the selects sit just outside, and between them
 * the arithmetic itself gives inf or 0. */
#define CE_EXP_OVERFLOW_F64 709.8
#define CE_EXP_UNDERFLOW_F64 (-745.2)
/* float32: log(FLT_MAX) = 88.72, log(2^-150) = -103.97. */
#define CE_EXP_OVERFLOW_F32 88.8f
#define CE_EXP_UNDERFLOW_F32 (-104.0f)

/* 1.5 * 2^52: adding it rounds to an integer held in the low mantissa
 * bits (round to nearest even, valid for |value| < 2^51). */
#define CE_EXP_SHIFTER_F64 0x1.8p52

/* exp(r) with x = k ln2 + r; *t = k + CE_EXP_SHIFTER_F64, whose low
 * mantissa bits hold k. */
static inline double ce_math_exp_reduced_f64(double x, double *t_out)
{
    const double shifter = CE_EXP_SHIFTER_F64;
    /* fdlibm's split: ln2_hi has 32 trailing zero bits, so k * ln2_hi is
     * exact for |k| < 2^20. */
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    double t = x * 1.44269504088896340736 + shifter;
    double k = t - shifter;
    double r = (x - k * ln2_hi) - k * ln2_lo;
    /* Taylor to degree 13: the truncation error on |r| <= 0.347 is 4e-18,
     * 0.04 ulp. */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    *t_out = t;
    return 1.0 + (r + (r * r) * p);
}

/* 2^k exp(r) without the final selects: right between the selects of
 * ce_math_exp_f64, garbage outside. */
static inline double ce_math_exp_unselected_f64(double x)
{
    const double shifter = CE_EXP_SHIFTER_F64;
    double t, p = ce_math_exp_reduced_f64(x, &t), k = t - shifter;
    /* Between the selects k is in [-1076, 1025]; k1 = round(k/2) and k - k1
     * are both in [-538, 513], so 2^k1 and 2^(k-k1) are normal. */
    uint64_t k_bits = ce_math_bits_f64(t) - ce_math_bits_f64(shifter);
    uint64_t k1_bits = ce_math_bits_f64(k * 0.5 + shifter) - ce_math_bits_f64(shifter);
    uint64_t k2_bits = k_bits - k1_bits;
    double scale1 = ce_math_from_bits_f64((k1_bits + 1023) << 52);
    double scale2 = ce_math_from_bits_f64((k2_bits + 1023) << 52);
    return (p * scale1) * scale2;
}

static inline double ce_math_exp_f64(double x)
{
    double result = ce_math_exp_unselected_f64(x);
    int overflow = x > CE_EXP_OVERFLOW_F64, underflow = x < CE_EXP_UNDERFLOW_F64;
    result = overflow ? INFINITY : result;
    return underflow ? 0.0 : result;
}

/* exp(x) for x <= 0 or NaN (a max-shifted logit): ce_math_exp_f64's bits
 * there, without the overflow select that cannot fire. */
static inline double ce_math_exp_nonpositive_f64(double x)
{
    double result = ce_math_exp_unselected_f64(x);
    int underflow = x < CE_EXP_UNDERFLOW_F64;
    return underflow ? 0.0 : result;
}

/* exp(x) for x in [CE_EXP_MODERATE_F64, 0]: ce_math_exp_f64's bits with
 * 2^k applied as one factor.  There k >= -1022, so 2^k is normal; the
 * first of the two factors multiplies exactly (p * 2^k1 stays normal), so
 * both ways round the exact p * 2^k once, to the same result.  Garbage
 * outside the range (a caller checks the row's minimum first). */
#define CE_EXP_MODERATE_F64 (-708.0)

static inline double ce_math_exp_moderate_f64(double x)
{
    double t, p = ce_math_exp_reduced_f64(x, &t);
    uint64_t biased_k = ce_math_bits_f64(t) - (ce_math_bits_f64(CE_EXP_SHIFTER_F64) - 1023);
    return p * ce_math_from_bits_f64(biased_k << 52);
}

#define CE_EXP_SHIFTER_F32 0x1.8p23f

static inline float ce_math_exp_reduced_f32(float x, float *t_out)
{
    const float shifter = CE_EXP_SHIFTER_F32;
    /* Cephes' split: ln2_hi = 355/512 has 9 significant bits, so k * ln2_hi
     * is exact for |k| < 2^15. */
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    float t = x * 1.44269504088896341f + shifter;
    float k = t - shifter;
    float r = (x - k * ln2_hi) - k * ln2_lo;
    /* Cephes expf's minimax polynomial for (exp(r) - 1 - r) / r^2. */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    *t_out = t;
    return 1.0f + (r + (r * r) * p);
}

static inline float ce_math_exp_unselected_f32(float x)
{
    const float shifter = CE_EXP_SHIFTER_F32;
    float t, p = ce_math_exp_reduced_f32(x, &t), k = t - shifter;
    /* Between the selects k is in [-150, 128]; k1 = round(k/2) and k - k1
     * are in [-75, 64]. */
    uint32_t k_bits = ce_math_bits_f32(t) - ce_math_bits_f32(shifter);
    uint32_t k1_bits = ce_math_bits_f32(k * 0.5f + shifter) - ce_math_bits_f32(shifter);
    uint32_t k2_bits = k_bits - k1_bits;
    float scale1 = ce_math_from_bits_f32((k1_bits + 127) << 23);
    float scale2 = ce_math_from_bits_f32((k2_bits + 127) << 23);
    return (p * scale1) * scale2;
}

static inline float ce_math_exp_f32(float x)
{
    float result = ce_math_exp_unselected_f32(x);
    int overflow = x > CE_EXP_OVERFLOW_F32, underflow = x < CE_EXP_UNDERFLOW_F32;
    result = overflow ? INFINITY : result;
    return underflow ? 0.0f : result;
}

static inline float ce_math_exp_nonpositive_f32(float x)
{
    float result = ce_math_exp_unselected_f32(x);
    int underflow = x < CE_EXP_UNDERFLOW_F32;
    return underflow ? 0.0f : result;
}

/* float32: k >= -126 there (checked for every float32 of the range). */
#define CE_EXP_MODERATE_F32 (-87.5f)

static inline float ce_math_exp_moderate_f32(float x)
{
    float t, p = ce_math_exp_reduced_f32(x, &t);
    uint32_t biased_k = ce_math_bits_f32(t) - (ce_math_bits_f32(CE_EXP_SHIFTER_F32) - 127);
    return p * ce_math_from_bits_f32(biased_k << 23);
}

/* ---- log and log1p ------------------------------------------------------
 * fdlibm's (musl's) kernel: u = 2^k * m with m in [sqrt(2)/2, sqrt(2)),
 * f = m - 1, log(m) = 2 atanh(f / (2 + f)) by a polynomial in s^2,
 * s = f / (2 + f); the result is assembled so that the large terms
 * (k ln2_hi, f) are added last.  log1p(x) evaluates the kernel at u = 1 + x
 * and adds the rounding error of that sum, (x - (u - 1)) / u, which is what
 * makes log1p(tiny) = tiny.  The kernel runs on any argument (garbage, never
 * UB, for non-positive, infinite and NaN ones) and the special value is
 * selected at the end. */

/* The kernel for a normal, positive, finite v = u * 2^scaled_by (u itself
 * when scaled_by is 0): log(u) + correction. */
static inline double ce_math_log_core_f64(double v, double scaled_by, double correction)
{
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    /* Move the mantissa into [sqrt(2)/2, sqrt(2)) and k with it. */
    uint64_t bits = ce_math_bits_f64(v) + (0x3ff0000000000000ULL - 0x3fe6a09e00000000ULL);
    /* The biased exponent, converted through the 2^52 trick (no int64 ->
     * double conversion, which AVX2 lacks). */
    double dk = ce_math_from_bits_f64((bits >> 52) | 0x4330000000000000ULL) - (0x1p52 + 1023.0);
    dk = dk - scaled_by;
    double m = ce_math_from_bits_f64((bits & 0x000fffffffffffffULL) + 0x3fe6a09e00000000ULL);
    double f = m - 1.0;
    double hfsq = 0.5 * f * f;
    double s = f / (2.0 + f);
    double z = s * s, w = z * z;
    double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    double R = t2 + t1;
    return s * (hfsq + R) + (dk * ln2_lo + correction) - hfsq + f + dk * ln2_hi;
}

static inline double ce_math_log_kernel_f64(double u, double correction)
{
    /* Subnormal u: scale by 2^54 into the normal range. */
    int subnormal = u < 0x1p-1022;
    double u_scaled = u * 0x1p54, no_scale = 0.0, scale = 54.0;
    double v = subnormal ? u_scaled : u;
    double scaled_by = subnormal ? scale : no_scale;
    double result = ce_math_log_core_f64(v, scaled_by, correction);
    /* The specials, one select per condition (GCC does not vectorise selects
     * on combined conditions of mixed width): log(inf) = inf, log(0) = -inf,
     * log(x < 0) = log(NaN) = NaN. */
    int is_inf = u == INFINITY, is_zero = u == 0, not_nonnegative = !(u >= 0);
    result = is_inf ? u : result;
    result = is_zero ? -INFINITY : result;
    return not_nonnegative ? NAN : result;
}

static inline double ce_math_log_f64(double x)
{
    return ce_math_log_kernel_f64(x, 0.0);
}

static inline double ce_math_log1p_f64(double x)
{
    double u = 1.0 + x;
    /* Garbage for u <= 0, inf or NaN, where the kernel returns its special. */
    double correction = (x - (u - 1.0)) / u;
    return ce_math_log_kernel_f64(u, correction);
}

static inline float ce_math_log_core_f32(float v, float scaled_by, float correction)
{
    const float ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f;
    const float Lg1 = 0xaaaaaa.0p-24f, Lg2 = 0xccce13.0p-25f, Lg3 = 0x91e9ee.0p-25f,
                Lg4 = 0xf89e26.0p-26f;
    uint32_t bits = ce_math_bits_f32(v) + (0x3f800000U - 0x3f3504f3U);
    float dk = (float)((int32_t)(bits >> 23) - 0x7f);
    dk = dk - scaled_by;
    float m = ce_math_from_bits_f32((bits & 0x007fffffU) + 0x3f3504f3U);
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s, w = z * z;
    float t1 = w * (Lg2 + w * Lg4);
    float t2 = z * (Lg1 + w * Lg3);
    float R = t2 + t1;
    float hfsq = 0.5f * f * f;
    return s * (hfsq + R) + (dk * ln2_lo + correction) - hfsq + f + dk * ln2_hi;
}

static inline float ce_math_log_kernel_f32(float u, float correction)
{
    int subnormal = u < 0x1p-126f;
    float u_scaled = u * 0x1p25f, no_scale = 0.0f, scale = 25.0f;
    float v = subnormal ? u_scaled : u;
    float scaled_by = subnormal ? scale : no_scale;
    float result = ce_math_log_core_f32(v, scaled_by, correction);
    int is_inf = u == INFINITY, is_zero = u == 0, not_nonnegative = !(u >= 0);
    result = is_inf ? u : result;
    result = is_zero ? -INFINITY : result;
    return not_nonnegative ? NAN : result;
}

static inline float ce_math_log_f32(float x)
{
    return ce_math_log_kernel_f32(x, 0.0f);
}

static inline float ce_math_log1p_f32(float x)
{
    float u = 1.0f + x;
    float correction = (x - (u - 1.0f)) / u;
    return ce_math_log_kernel_f32(u, correction);
}

/* log1p(x) for x in [0, 1] or NaN, as exp(-|z|) gives it: the bits of
 * ce_math_log1p there, without its selects for arguments that cannot occur
 * (1 + x is in [1, 2]: never subnormal, zero, negative or infinite).  A NaN
 * x reaches the result through the correction term. */
static inline double ce_math_log1p_unit_f64(double x)
{
    double u = 1.0 + x;
    double correction = (x - (u - 1.0)) / u;
    return ce_math_log_core_f64(u, 0.0, correction);
}

static inline float ce_math_log1p_unit_f32(float x)
{
    float u = 1.0f + x;
    float correction = (x - (u - 1.0f)) / u;
    return ce_math_log_core_f32(u, 0.0f, correction);
}

/* ---- softplus, log-sigmoid, sigmoid -------------------------------------
 * log1pexp(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), with two
 * pinned cut-offs where the answer is already a single rounded term:
 *   x <= LOW:  log1p(e^x) = e^x (1 - e^x/2 + ...) and e^x / 2 is below
 *              0.4 ulp of the result, so the answer is exp(x);
 *   x >  HIGH: x + log1p(e^-x) ~ x + e^-x, and e^-x is below half an ulp of
 *              x, so the answer is x.
 * float64: sklearn's -37 and 33.3 (e^-37 / 2 = 4e-17 < 0.4 * 2^-53;
 * e^-33.3 = 3.4e-15 < ulp(33.3) / 2 = 3.55e-15).  float32 by the same
 * rules: -17 (e^-17 / 2 = 2.1e-8 < 0.36 * 2^-23) and 15 (e^-15 = 3.1e-7 <
 * ulp(15) / 2 = 4.8e-7).  sklearn's inner cut-offs (-2, 18) pick between
 * log1p(exp(x)), log(1 + exp(x)) and x + exp(-x) for libm accuracy; the one
 * formula above is accurate across that whole range, so they are not
 * needed.  Pinned so that results do not depend on which branch a
 * vectorised loop computes: all are computed and one is selected. */
#define CE_LOG1PEXP_LOW_F64 (-37.0)
#define CE_LOG1PEXP_HIGH_F64 33.3
#define CE_LOG1PEXP_LOW_F32 (-17.0f)
#define CE_LOG1PEXP_HIGH_F32 15.0f

/* log1pexp(x) given e = exp(-|x|), which a block may have computed. */
static inline double ce_math_log1pexp_given_f64(double x, double e)
{
    double middle = (x > 0 ? x : 0.0) + ce_math_log1p_unit_f64(e);
    /* exp(x) for x <= LOW is e itself (x < 0 there). */
    int low = x <= CE_LOG1PEXP_LOW_F64, high = x > CE_LOG1PEXP_HIGH_F64;
    double result = high ? x : middle;
    return low ? e : result;
}

static inline double ce_math_log1pexp_f64(double x)
{
    return ce_math_log1pexp_given_f64(x, ce_math_exp_f64(-fabs(x)));
}

static inline float ce_math_log1pexp_given_f32(float x, float e)
{
    float middle = (x > 0 ? x : 0.0f) + ce_math_log1p_unit_f32(e);
    int low = x <= CE_LOG1PEXP_LOW_F32, high = x > CE_LOG1PEXP_HIGH_F32;
    float result = high ? x : middle;
    return low ? e : result;
}

static inline float ce_math_log1pexp_f32(float x)
{
    return ce_math_log1pexp_given_f32(x, ce_math_exp_f32(-fabsf(x)));
}

/* log(sigmoid(x)) = -log1pexp(-x): log_sigmoid(-1000) = -1000, never -inf
 * for finite x. */
static inline double ce_math_log_sigmoid_f64(double x)
{
    return -ce_math_log1pexp_f64(-x);
}

static inline float ce_math_log_sigmoid_f32(float x)
{
    return -ce_math_log1pexp_f32(-x);
}

/* exp of -|x| only, so nothing overflows: sigmoid(x) = 1 / (1 + e) for
 * x >= 0 and e / (1 + e) below, e = exp(-|x|). */
static inline double ce_math_sigmoid_f64(double x)
{
    double e = ce_math_exp_f64(-fabs(x));
    double r = 1.0 / (1.0 + e);
    double er = e * r;
    return x >= 0 ? r : er;
}

static inline float ce_math_sigmoid_f32(float x)
{
    float e = ce_math_exp_f32(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    float er = e * r;
    return x >= 0 ? r : er;
}

#endif /* CROSSENT_MATH_H */
