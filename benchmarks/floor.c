/*
 * The least a softmax cross-entropy over rows with class-index targets can
 * do at crossent's precision: crossent's exp of every shifted logit, the
 * exps summed in 16 float64 lanes (element j into lane j mod 16, as
 * crossent's rows sum them; float64 keeps a confident row's small loss
 * accurate), the log of the sum, and for the gradient the exps kept and
 * scaled.
 *
 * No layout handling, no NaN, infinity or range checks (the logits must be
 * finite and within 87 of their row's maximum), no check of the targets, no
 * fixed order across the lanes: these give a speed that no implementation
 * with crossent's exp and float64 row sums can beat by much, not results
 * anyone should use.  benchmarks/floor.py compiles and times them.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>

#include "crossent_math.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define LANES 16

static double lane_total(const double *acc)
{
    double s = 0.0;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

/* Into acc the exps of x[0..n) - shift, stored into kept unless it is NULL
 * (always inlined: a NULL known when compiling takes the store out).  A row
 * of 16 or more ends with its last 16 entries, those already summed
 * masked out, so that 100 classes cost 7 vectors of exps, not 6 and 4
 * scalar ones. */
static inline __attribute__((always_inline)) void add_exps(const float *x, long n, float shift,
                                                           float *kept, double *acc)
{
    long j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) {
            float e = ce_math_exp_moderate_f32(x[j + l] - shift);
            if (kept)
                kept[j + l] = e;
            acc[l] += (double)e;
        }
    if (j < n && n >= LANES) {
        long last = n - LANES;
        for (int l = 0; l < LANES; l++) {
            float e = ce_math_exp_moderate_f32(x[last + l] - shift);
            if (kept)
                kept[last + l] = e;
            acc[l] += last + l >= j ? (double)e : 0.0;
        }
    } else {
        for (int l = 0; j + l < n; l++) {
            float e = ce_math_exp_moderate_f32(x[j + l] - shift);
            if (kept)
                kept[j + l] = e;
            acc[l] += (double)e;
        }
    }
}

static float row_max(const float *x, long n)
{
    float m = x[0];
#pragma omp simd reduction(max : m)
    for (long j = 0; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

static double row_log_sum_exp(const float *x, long n, float m, float *kept)
{
    double acc[LANES] = {0};
    add_exps(x, n, m, kept, acc);
    return lane_total(acc);
}

static inline __attribute__((always_inline)) double exp_blocks(const float *z, long n, float *out)
{
    double total = 0.0;
    long blocks = (n + 4095) / 4096;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (long b = 0; b < blocks; b++) {
        long start = b * 4096, count = n - start < 4096 ? n - start : 4096;
        double acc[LANES] = {0};
        add_exps(z + start, count, 0.0f, out ? out + start : 0, acc);
        total += lane_total(acc);
    }
    return total;
}

/* The exps of n logits, summed and kept in out: the per-element work of a
 * loss with its gradient below, without the max pass, the log or the
 * scaling. */
double floor_exp_pass(const float *z, long n, float *out)
{
    return exp_blocks(z, n, out);
}

/* The same without keeping them: the per-element work of the loss alone. */
double floor_exp_sums(const float *z, long n)
{
    return exp_blocks(z, n, (float *)0);
}

#if defined(__AVX512F__)
/* exp_moderate on 16 lanes: crossent_math.h's operations, one for one. */
static inline __m512 exp_moderate_16(__m512 x)
{
    const __m512 shifter = _mm512_set1_ps(CE_EXP_SHIFTER_F32);
    __m512 t = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), shifter);
    __m512 k = _mm512_sub_ps(t, shifter);
    __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(k, _mm512_set1_ps(0.693359375f)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(k, _mm512_set1_ps(-2.12194440e-4f)));
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(r, _mm512_mul_ps(_mm512_mul_ps(r, r), p)));
    __m512i biased_k = _mm512_sub_epi32(_mm512_castps_si512(t),
                                        _mm512_set1_epi32((int)(ce_math_bits_f32(CE_EXP_SHIFTER_F32) - 127)));
    return _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32(biased_k, 23)));
}

/* The row's max and its sum of exps (two float64 vectors of 8 lanes), the
 * row read with masked loads: no scalar tail. */
static inline double row_sum_16(const float *x, long n, float *max_out)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    long j = 0;
    for (; j + 16 <= n; j += 16)
        m = _mm512_max_ps(m, _mm512_loadu_ps(x + j));
    __mmask16 tail = (__mmask16)((1u << (n - j)) - 1);
    m = _mm512_mask_max_ps(m, tail, m, _mm512_maskz_loadu_ps(tail, x + j));
    float row_max_value = _mm512_reduce_max_ps(m);
    __m512 shift = _mm512_set1_ps(row_max_value);
    __m512d low = _mm512_setzero_pd(), high = _mm512_setzero_pd();
    for (j = 0; j + 16 <= n; j += 16) {
        __m512 e = exp_moderate_16(_mm512_sub_ps(_mm512_loadu_ps(x + j), shift));
        low = _mm512_add_pd(low, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        high = _mm512_add_pd(high, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
    if (tail) {
        __m512 e = exp_moderate_16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + j), shift));
        e = _mm512_maskz_mov_ps(tail, e);
        low = _mm512_add_pd(low, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        high = _mm512_add_pd(high, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
    *max_out = row_max_value;
    return _mm512_reduce_add_pd(_mm512_add_pd(low, high));
}
#endif

/* The summed loss of rows x classes logits, their logs taken 16 rows at a
 * time (one vector of them). */
double floor_loss(const float *z, const int64_t *targets, long rows, long classes)
{
    double total = 0.0;
    long groups = (rows + LANES - 1) / LANES;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (long g = 0; g < groups; g++) {
        double sums[LANES], rests[LANES];
        long first = g * LANES, count = rows - first < LANES ? rows - first : LANES;
        for (long r = 0; r < count; r++) {
            const float *x = z + (first + r) * classes;
#if defined(__AVX512F__)
            float m;
            sums[r] = row_sum_16(x, classes, &m);
#else
            float m = row_max(x, classes);
            sums[r] = row_log_sum_exp(x, classes, m, 0);
#endif
            rests[r] = (double)m - x[targets[first + r]];
        }
        for (long r = count; r < LANES; r++)
            sums[r] = 1.0, rests[r] = 0.0;
        double group_total = 0.0;
#pragma omp simd reduction(+ : group_total)
        for (int r = 0; r < LANES; r++)
            group_total += ce_math_log_f64(sums[r]) + rests[r];
        total += group_total;
    }
    return total;
}

/* The summed loss, and into grad the gradient of the mean loss. */
double floor_loss_grad(const float *z, const int64_t *targets, long rows, long classes, float *grad)
{
    double total = 0.0;
    const float inv_rows = 1.0f / (float)rows;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (long i = 0; i < rows; i++) {
        const float *x = z + i * classes;
        float *g = grad + i * classes;
        float m = row_max(x, classes);
        double s = row_log_sum_exp(x, classes, m, g);
        float scale = (float)(1.0 / s) * inv_rows;
#pragma omp simd
        for (long j = 0; j < classes; j++)
            g[j] *= scale;
        g[targets[i]] -= inv_rows;
        total += ce_math_log_f64(s) + m - x[targets[i]];
    }
    return total;
}

void floor_set_threads(int n_threads)
{
    omp_set_num_threads(n_threads);
}
