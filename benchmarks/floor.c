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

#define LANES 16

static double lane_total(const double *acc)
{
    double s = 0.0;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

/* Into acc the exps of x[0..n) - shift, stored into kept unless it is NULL
 * (always inlined: a NULL known when compiling takes the store out). */
static inline __attribute__((always_inline)) void add_exps(const float *x, long n, float shift, float *kept, double *acc)
{
    long j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) {
            float e = ce_math_exp_moderate_f32(x[j + l] - shift);
            if (kept)
                kept[j + l] = e;
            acc[l] += (double)e;
        }
    for (int l = 0; j + l < n; l++) {
        float e = ce_math_exp_moderate_f32(x[j + l] - shift);
        if (kept)
            kept[j + l] = e;
        acc[l] += (double)e;
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

/* The summed loss of rows x classes logits. */
double floor_loss(const float *z, const int64_t *targets, long rows, long classes)
{
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (long i = 0; i < rows; i++) {
        const float *x = z + i * classes;
        float m = row_max(x, classes);
        total += ce_math_log_f64(row_log_sum_exp(x, classes, m, 0)) + m - x[targets[i]];
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
