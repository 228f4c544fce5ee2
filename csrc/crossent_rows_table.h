/*
 * crossent_rows_table.h -- internal: the table of row/block functions that
 * each SIMD variant fills and crossent_dispatch.c jumps through.
 *
 * The function list is written once (the X-macros below); the table struct,
 * every variant's table initialiser and the exported wrappers in
 * crossent_dispatch.c are all generated from it, so a function added to
 * crossent_rows.h is added here and nowhere else.
 *
 * Not part of the public contract (crossent_rows.h is): the tests reach the
 * variants through ce_simd_table() to compare them with each other.
 */
#ifndef CROSSENT_ROWS_TABLE_H
#define CROSSENT_ROWS_TABLE_H

#include "crossent_rows.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(return type, name, (parameters), (arguments)) for functions that return
 * a value; XV(name, (parameters), (arguments)) for the void ones. */
#define CE_ROWS_VALUE_FUNCTIONS(X)                                                        \
    X(double, ce_sum_f32, (const float *x, ptrdiff_t n), (x, n))                          \
    X(double, ce_sum_f64, (const double *x, ptrdiff_t n), (x, n))                         \
    X(ptrdiff_t, ce_scan_targets_i32,                                                     \
      (const int32_t *target, ptrdiff_t n, ptrdiff_t n_classes, ptrdiff_t ignore_index,   \
       ptrdiff_t *kept),                                                                  \
      (target, n, n_classes, ignore_index, kept))                                         \
    X(ptrdiff_t, ce_scan_targets_i64,                                                     \
      (const int64_t *target, ptrdiff_t n, ptrdiff_t n_classes, ptrdiff_t ignore_index,   \
       ptrdiff_t *kept),                                                                  \
      (target, n, n_classes, ignore_index, kept))                                         \
    X(double, ce_row_max_f32, (const float *z, ptrdiff_t n), (z, n))                      \
    X(double, ce_row_max_f64, (const double *z, ptrdiff_t n), (z, n))                     \
    X(float, ce_row_logsumexp_f32, (const float *z, ptrdiff_t n), (z, n))                 \
    X(double, ce_row_logsumexp_f64, (const double *z, ptrdiff_t n), (z, n))               \
    X(float, ce_softmax_xent_index_row_f32,                                               \
      (const float *z, ptrdiff_t n, ptrdiff_t target, const double *class_weight,         \
       double label_smoothing, float *grad, double grad_scale),                           \
      (z, n, target, class_weight, label_smoothing, grad, grad_scale))                    \
    X(double, ce_softmax_xent_index_row_f64,                                              \
      (const double *z, ptrdiff_t n, ptrdiff_t target, const double *class_weight,        \
       double label_smoothing, double *grad, double grad_scale),                          \
      (z, n, target, class_weight, label_smoothing, grad, grad_scale))                    \
    X(float, ce_softmax_xent_soft_row_f32,                                                \
      (const float *z, const float *y, ptrdiff_t n, const double *class_weight,           \
       double label_smoothing, float *grad, double grad_scale),                           \
      (z, y, n, class_weight, label_smoothing, grad, grad_scale))                         \
    X(double, ce_softmax_xent_soft_row_f64,                                               \
      (const double *z, const double *y, ptrdiff_t n, const double *class_weight,         \
       double label_smoothing, double *grad, double grad_scale),                          \
      (z, y, n, class_weight, label_smoothing, grad, grad_scale))                         \
    X(float, ce_categorical_xent_index_row_f32,                                           \
      (const float *p, ptrdiff_t n, ptrdiff_t target, const double *class_weight,         \
       double label_smoothing, float *grad, double grad_scale),                           \
      (p, n, target, class_weight, label_smoothing, grad, grad_scale))                    \
    X(double, ce_categorical_xent_index_row_f64,                                          \
      (const double *p, ptrdiff_t n, ptrdiff_t target, const double *class_weight,        \
       double label_smoothing, double *grad, double grad_scale),                          \
      (p, n, target, class_weight, label_smoothing, grad, grad_scale))                    \
    X(float, ce_categorical_xent_soft_row_f32,                                            \
      (const float *p, const float *y, ptrdiff_t n, const double *class_weight,           \
       double label_smoothing, float *grad, double grad_scale),                           \
      (p, y, n, class_weight, label_smoothing, grad, grad_scale))                         \
    X(double, ce_categorical_xent_soft_row_f64,                                           \
      (const double *p, const double *y, ptrdiff_t n, const double *class_weight,         \
       double label_smoothing, double *grad, double grad_scale),                          \
      (p, y, n, class_weight, label_smoothing, grad, grad_scale))                         \
    X(float, ce_nll_index_row_f32,                                                        \
      (const float *x, ptrdiff_t n, ptrdiff_t target, const double *class_weight,         \
       float *grad, double grad_scale),                                                   \
      (x, n, target, class_weight, grad, grad_scale))                                     \
    X(double, ce_nll_index_row_f64,                                                       \
      (const double *x, ptrdiff_t n, ptrdiff_t target, const double *class_weight,        \
       double *grad, double grad_scale),                                                  \
      (x, n, target, class_weight, grad, grad_scale))

#define CE_ROWS_VOID_FUNCTIONS(XV)                                                        \
    XV(ce_sigmoid_f32, (const float *x, float *out, ptrdiff_t n), (x, out, n))            \
    XV(ce_sigmoid_f64, (const double *x, double *out, ptrdiff_t n), (x, out, n))          \
    XV(ce_log_sigmoid_f32, (const float *x, float *out, ptrdiff_t n), (x, out, n))        \
    XV(ce_log_sigmoid_f64, (const double *x, double *out, ptrdiff_t n), (x, out, n))      \
    XV(ce_bce_block_f32,                                                                  \
       (const float *p, const float *y, const float *w, const float *s, float *loss,      \
        float *grad, double grad_scale, ptrdiff_t n),                                     \
       (p, y, w, s, loss, grad, grad_scale, n))                                           \
    XV(ce_bce_block_f64,                                                                  \
       (const double *p, const double *y, const double *w, const double *s,              \
        double *loss, double *grad, double grad_scale, ptrdiff_t n),                      \
       (p, y, w, s, loss, grad, grad_scale, n))                                           \
    XV(ce_bce_logits_block_f32,                                                           \
       (const float *z, const float *y, const float *w, const float *pw, const float *s,  \
        double label_smoothing, float *loss, float *grad, double grad_scale,              \
        ptrdiff_t n),                                                                     \
       (z, y, w, pw, s, label_smoothing, loss, grad, grad_scale, n))                      \
    XV(ce_bce_logits_block_f64,                                                           \
       (const double *z, const double *y, const double *w, const double *pw,             \
        const double *s, double label_smoothing, double *loss, double *grad,              \
        double grad_scale, ptrdiff_t n),                                                  \
       (z, y, w, pw, s, label_smoothing, loss, grad, grad_scale, n))                      \
    XV(ce_mse_block_f32,                                                                  \
       (const float *x, const float *t, const float *w, const float *s, float *loss,      \
        float *grad, double grad_scale, ptrdiff_t n),                                     \
       (x, t, w, s, loss, grad, grad_scale, n))                                           \
    XV(ce_mse_block_f64,                                                                  \
       (const double *x, const double *t, const double *w, const double *s,              \
        double *loss, double *grad, double grad_scale, ptrdiff_t n),                      \
       (x, t, w, s, loss, grad, grad_scale, n))                                           \
    XV(ce_focal_block_f32,                                                                \
       (const float *z, const float *y, const float *w, const float *s, double alpha,     \
        double gamma, float *loss, float *grad, double grad_scale, ptrdiff_t n),          \
       (z, y, w, s, alpha, gamma, loss, grad, grad_scale, n))                             \
    XV(ce_focal_block_f64,                                                                \
       (const double *z, const double *y, const double *w, const double *s,              \
        double alpha, double gamma, double *loss, double *grad, double grad_scale,        \
        ptrdiff_t n),                                                                     \
       (z, y, w, s, alpha, gamma, loss, grad, grad_scale, n))                             \
    XV(ce_kl_div_block_f32,                                                               \
       (const float *x, const float *t, const float *w, const float *s, int log_target,   \
        float *loss, float *grad, double grad_scale, ptrdiff_t n),                        \
       (x, t, w, s, log_target, loss, grad, grad_scale, n))                               \
    XV(ce_kl_div_block_f64,                                                               \
       (const double *x, const double *t, const double *w, const double *s,              \
        int log_target, double *loss, double *grad, double grad_scale, ptrdiff_t n),      \
       (x, t, w, s, log_target, loss, grad, grad_scale, n))                               \
    XV(ce_softmax_xent_index_rows_f32,                                                    \
       (const float *const *z, ptrdiff_t rows, ptrdiff_t n, const ptrdiff_t *target,      \
        const double *class_weight, double label_smoothing, float *const *grad,           \
        const double *grad_scale, float *loss),                                           \
       (z, rows, n, target, class_weight, label_smoothing, grad, grad_scale, loss))       \
    XV(ce_softmax_xent_index_rows_f64,                                                    \
       (const double *const *z, ptrdiff_t rows, ptrdiff_t n, const ptrdiff_t *target,    \
        const double *class_weight, double label_smoothing, double *const *grad,          \
        const double *grad_scale, double *loss),                                          \
       (z, rows, n, target, class_weight, label_smoothing, grad, grad_scale, loss))       \
    XV(ce_nll_index_rows_f32,                                                             \
       (const float *const *x, ptrdiff_t rows, ptrdiff_t n, const ptrdiff_t *target,      \
        const double *class_weight, float *const *grad, const double *grad_scale,         \
        float *loss),                                                                     \
       (x, rows, n, target, class_weight, grad, grad_scale, loss))                        \
    XV(ce_nll_index_rows_f64,                                                             \
       (const double *const *x, ptrdiff_t rows, ptrdiff_t n, const ptrdiff_t *target,    \
        const double *class_weight, double *const *grad, const double *grad_scale,        \
        double *loss),                                                                    \
       (x, rows, n, target, class_weight, grad, grad_scale, loss))                        \
    XV(ce_softmax_rows_f32,                                                               \
       (const float *const *z, ptrdiff_t rows, ptrdiff_t n, float *const *out),           \
       (z, rows, n, out))                                                                 \
    XV(ce_softmax_rows_f64,                                                               \
       (const double *const *z, ptrdiff_t rows, ptrdiff_t n, double *const *out),         \
       (z, rows, n, out))                                                                 \
    XV(ce_log_softmax_rows_f32,                                                           \
       (const float *const *z, ptrdiff_t rows, ptrdiff_t n, float *const *out),           \
       (z, rows, n, out))                                                                 \
    XV(ce_log_softmax_rows_f64,                                                           \
       (const double *const *z, ptrdiff_t rows, ptrdiff_t n, double *const *out),         \
       (z, rows, n, out))                                                                 \
    XV(ce_logsumexp_rows_f32,                                                             \
       (const float *const *z, ptrdiff_t rows, ptrdiff_t n, float *value),                \
       (z, rows, n, value))                                                               \
    XV(ce_logsumexp_rows_f64,                                                             \
       (const double *const *z, ptrdiff_t rows, ptrdiff_t n, double *value),              \
       (z, rows, n, value))                                                               \
    XV(ce_softmax_row_f32, (const float *z, float *out, ptrdiff_t n), (z, out, n))        \
    XV(ce_softmax_row_f64, (const double *z, double *out, ptrdiff_t n), (z, out, n))      \
    XV(ce_log_softmax_row_f32, (const float *z, float *out, ptrdiff_t n), (z, out, n))    \
    XV(ce_log_softmax_row_f64, (const double *z, double *out, ptrdiff_t n), (z, out, n))

/* Test-only entries: the vectorised primitives applied to a block, so that
 * the tests can time them and compare variants (not exported by name). */
#define CE_ROWS_PRIMITIVE_BLOCKS(XV)                                                      \
    XV(ce_exp_block_f32, (const float *x, float *out, ptrdiff_t n), (x, out, n))          \
    XV(ce_exp_block_f64, (const double *x, double *out, ptrdiff_t n), (x, out, n))        \
    XV(ce_exp_moderate_block_f32, (const float *x, float *out, ptrdiff_t n), (x, out, n)) \
    XV(ce_exp_moderate_block_f64, (const double *x, double *out, ptrdiff_t n), (x, out, n)) \
    XV(ce_log_block_f32, (const float *x, float *out, ptrdiff_t n), (x, out, n))          \
    XV(ce_log_block_f64, (const double *x, double *out, ptrdiff_t n), (x, out, n))        \
    XV(ce_log1p_block_f32, (const float *x, float *out, ptrdiff_t n), (x, out, n))        \
    XV(ce_log1p_block_f64, (const double *x, double *out, ptrdiff_t n), (x, out, n))      \
    XV(ce_log1pexp_block_f32, (const float *x, float *out, ptrdiff_t n), (x, out, n))     \
    XV(ce_log1pexp_block_f64, (const double *x, double *out, ptrdiff_t n), (x, out, n))

#define CE_TABLE_VALUE_MEMBER(ret, name, params, args) ret(*name) params;
#define CE_TABLE_VOID_MEMBER(name, params, args) void(*name) params;

struct ce_rows_table {
    const char *name;
    CE_ROWS_VALUE_FUNCTIONS(CE_TABLE_VALUE_MEMBER)
    CE_ROWS_VOID_FUNCTIONS(CE_TABLE_VOID_MEMBER)
    CE_ROWS_PRIMITIVE_BLOCKS(CE_TABLE_VOID_MEMBER)
};

/* One table per variant compiled in (crossent_rows_<variant>.c).  The x86
 * variants need GCC's #pragma GCC target / optimize; other compilers and
 * architectures get the baseline only. */
extern const struct ce_rows_table ce_rows_table_baseline;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CE_HAVE_X86_VARIANTS 1
extern const struct ce_rows_table ce_rows_table_avx2;
extern const struct ce_rows_table ce_rows_table_avx512;
#endif

/* The table of a variant this CPU can run ("baseline", "avx2", "avx512"),
 * NULL/"" for the best; NULL if it is unknown or not supported here. */
const struct ce_rows_table *ce_simd_table(const char *variant);

#ifdef __cplusplus
}
#endif
#endif /* CROSSENT_ROWS_TABLE_H */
