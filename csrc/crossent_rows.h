/*
 * crossent_rows.h -- the row and block functions both compiled backends call.
 *
 * Every function here works on CONTIGUOUS buffers: the blocks
 * (crossent_blocks.c) stage strided data into contiguous buffers before
 * calling them, so that a strided input gives the same bits as a contiguous
 * one.  The math itself lives in crossent_math.h (static inline primitives);
 * this layer is compiled once per SIMD target (baseline, AVX2, AVX-512) and
 * the exported names below jump to the variant chosen at import
 * (ce_simd_select), so callers never see the dispatch.
 *
 * Each function is listed once, in CE_ROWS_TYPED_FUNCTIONS below, with
 * CE_REAL standing for its data type: the list declares the float32 (_f32)
 * and float64 (_f64) exported names here, and crossent_rows_table.h,
 * crossent_rows_impl.h and crossent_dispatch.c derive the variants' tables
 * and the jumps from it.  A new row or block function is its body in
 * crossent_rows_typed.h and one line here.
 *
 * No Python.h here: this is plain C99.
 */
#ifndef CROSSENT_ROWS_H
#define CROSSENT_ROWS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fixed block sizes: the partial sums of a reduction are taken over these
 * blocks and added in block order, so results never depend on n_threads.
 * Defined once, in python/crossent/_blocking.py; setup.py passes them. */
#if !defined(CE_BLOCK_ELEMS) || !defined(CE_BLOCK_ROWS)
#error "CE_BLOCK_ELEMS and CE_BLOCK_ROWS come from python/crossent/_blocking.py (setup.py passes them)"
#endif

/* How many consecutive blocks a thread takes at a time from the shared
 * counter of a dynamic schedule: about 16 grabs per thread.  Short blocks
 * taken one at a time do not scale: with one block per grab, 2 threads on
 * 65 536 x 10 run only 1.4x as fast as one, against 1.7-2.3x with grabs of
 * 8-32 blocks (docs/performance.md, "Threads").  Still dynamic, so a thread
 * whose core is busy takes fewer grabs; the others wait at most one grab,
 * 1/16 of a thread's share.  Which thread computes a block never changes
 * its bits. */
static inline ptrdiff_t ce_blocks_per_grab(ptrdiff_t n_blocks, int threads)
{
    ptrdiff_t grab = n_blocks / (16 * (ptrdiff_t)(threads > 1 ? threads : 1));
    return grab > 1 ? grab : 1;
}

/* ---- SIMD dispatch --------------------------------------------------- */
/* Select a variant: "baseline", "avx2", "avx512" or NULL/"" for the best the
 * CPU supports.  Returns 0 on success, -1 if the variant is not available
 * (the selection is then unchanged).  Called once at import; the environment
 * variable CROSSENT_SIMD (read by the Python side) can force "baseline". */
int ce_simd_select(const char *variant);
/* Name of the variant in use, e.g. "avx512". */
const char *ce_simd_name(void);
/* Comma-separated list of the variants this CPU can run, best last. */
const char *ce_simd_available(void);

/* ---- the functions ---------------------------------------------------- */

/* The rows a group of short or medium rows fetches ahead (one group). */
#define CE_ROWS_AHEAD 16

/* X(return type, name, (parameters), (arguments)), CE_REAL the data type.
 *
 * Sums: ce_sum is the float64 sum of n values in a fixed lane order (the
 * same for every SIMD variant).
 *
 * Elementwise blocks (n contiguous elements): the activations' out may be x
 * itself.  The binary losses' w (weight), pw (pos_weight) and s
 * (sample_weight) may be NULL (= all ones); loss[i] = w*s*l_i (always
 * written); grad may be NULL, else grad[i] = grad_scale * w * s * dl_i/dx_i.
 * The focal loss takes alpha < 0 for no alpha weighting and gamma >= 0; the
 * KL divergence takes x = log q and the target t (a probability, or its log
 * when log_target is nonzero).
 *
 * Rows (n contiguous classes): ce_row_logsumexp is max-shifted and rounded
 * to the row's dtype; the activations' out may be z itself.  The multiclass
 * losses of one row take class_weight NULL (= all ones; float64 for both
 * dtypes) and return the class-weighted loss of the row, NOT multiplied by
 * the sample weight (the blocks do that); grad may be NULL, else grad[c] =
 * grad_scale * dl/dx_c (the blocks fold the sample weight into grad_scale).
 *
 * The _rows forms take `rows` rows at once: row k is z[k] (-> out[k] or
 * value[k]; for losses target[k] (a class, never ignored), grad[k] scaled by
 * grad_scale[k] (grad NULL: no gradient) and loss[k]).  They give the bits of
 * the row function on each row, but short and medium rows are computed
 * several per vector, which is what makes them fast.  The loss forms take
 * `after` more pointers, z[rows .. rows + after): the rows the caller
 * computes next (at most CE_ROWS_AHEAD are read; 0: none), fetched into the
 * cache while the last rows compute.
 *
 * Formulas: docs/kernels.md and docs/math.md. */
#define CE_ROWS_TYPED_FUNCTIONS(X)                                                               \
    X(double, ce_sum, (const CE_REAL *x, ptrdiff_t n), (x, n))                                    \
    X(void, ce_sigmoid, (const CE_REAL *x, CE_REAL *out, ptrdiff_t n), (x, out, n))               \
    X(void, ce_log_sigmoid, (const CE_REAL *x, CE_REAL *out, ptrdiff_t n), (x, out, n))           \
    X(void, ce_bce_block,                                                                         \
      (const CE_REAL *p, const CE_REAL *y, const CE_REAL *w, const CE_REAL *s, CE_REAL *loss,     \
       CE_REAL *grad, double grad_scale, ptrdiff_t n),                                            \
      (p, y, w, s, loss, grad, grad_scale, n))                                                    \
    X(void, ce_bce_logits_block,                                                                  \
      (const CE_REAL *z, const CE_REAL *y, const CE_REAL *w, const CE_REAL *pw, const CE_REAL *s, \
       double label_smoothing, CE_REAL *loss, CE_REAL *grad, double grad_scale, ptrdiff_t n),     \
      (z, y, w, pw, s, label_smoothing, loss, grad, grad_scale, n))                               \
    X(void, ce_mse_block,                                                                         \
      (const CE_REAL *x, const CE_REAL *t, const CE_REAL *w, const CE_REAL *s, CE_REAL *loss,     \
       CE_REAL *grad, double grad_scale, ptrdiff_t n),                                            \
      (x, t, w, s, loss, grad, grad_scale, n))                                                    \
    X(void, ce_focal_block,                                                                       \
      (const CE_REAL *z, const CE_REAL *y, const CE_REAL *w, const CE_REAL *s, double alpha,          \
       double gamma, CE_REAL *loss, CE_REAL *grad, double grad_scale, ptrdiff_t n),               \
      (z, y, w, s, alpha, gamma, loss, grad, grad_scale, n))                                      \
    X(void, ce_kl_div_block,                                                                      \
      (const CE_REAL *x, const CE_REAL *t, const CE_REAL *w, const CE_REAL *s, int log_target,        \
       CE_REAL *loss, CE_REAL *grad, double grad_scale, ptrdiff_t n),                             \
      (x, t, w, s, log_target, loss, grad, grad_scale, n))                                        \
    X(void, ce_weight_product_block, (const CE_REAL *x, const CE_REAL *w, CE_REAL *out, ptrdiff_t n), \
      (x, w, out, n))                                                                             \
    X(void, ce_outside_unit_block, (const CE_REAL *x, CE_REAL *out, ptrdiff_t n), (x, out, n))    \
    X(double, ce_row_max, (const CE_REAL *z, ptrdiff_t n), (z, n))                                \
    X(CE_REAL, ce_row_logsumexp, (const CE_REAL *z, ptrdiff_t n), (z, n))                         \
    X(void, ce_softmax_row, (const CE_REAL *z, CE_REAL *out, ptrdiff_t n), (z, out, n))           \
    X(void, ce_log_softmax_row, (const CE_REAL *z, CE_REAL *out, ptrdiff_t n), (z, out, n))       \
    X(void, ce_softmax_rows,                                                                      \
      (const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n, CE_REAL *const *out),                \
      (z, rows, n, out))                                                                          \
    X(void, ce_log_softmax_rows,                                                                  \
      (const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n, CE_REAL *const *out),                \
      (z, rows, n, out))                                                                          \
    X(void, ce_logsumexp_rows, (const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n, CE_REAL *value), \
      (z, rows, n, value))                                                                        \
    X(CE_REAL, ce_softmax_xent_index_row,                                                         \
      (const CE_REAL *z, ptrdiff_t n, ptrdiff_t target, const double *class_weight,               \
       double label_smoothing, CE_REAL *grad, double grad_scale),                                 \
      (z, n, target, class_weight, label_smoothing, grad, grad_scale))                            \
    X(void, ce_softmax_xent_index_rows,                                                           \
      (const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t after, ptrdiff_t n,                     \
       const ptrdiff_t *target, const double *class_weight, double label_smoothing,               \
       CE_REAL *const *grad, const double *grad_scale, CE_REAL *loss),                            \
      (z, rows, after, n, target, class_weight, label_smoothing, grad, grad_scale, loss))         \
    X(CE_REAL, ce_softmax_xent_soft_row,                                                          \
      (const CE_REAL *z, const CE_REAL *y, ptrdiff_t n, const double *class_weight,               \
       double label_smoothing, CE_REAL *grad, double grad_scale),                                 \
      (z, y, n, class_weight, label_smoothing, grad, grad_scale))                                 \
    X(CE_REAL, ce_categorical_xent_index_row,                                                     \
      (const CE_REAL *p, ptrdiff_t n, ptrdiff_t target, const double *class_weight,               \
       double label_smoothing, CE_REAL *grad, double grad_scale),                                 \
      (p, n, target, class_weight, label_smoothing, grad, grad_scale))                            \
    X(CE_REAL, ce_categorical_xent_soft_row,                                                      \
      (const CE_REAL *p, const CE_REAL *y, ptrdiff_t n, const double *class_weight,               \
       double label_smoothing, CE_REAL *grad, double grad_scale),                                 \
      (p, y, n, class_weight, label_smoothing, grad, grad_scale))                                 \
    X(CE_REAL, ce_nll_index_row,                                                                  \
      (const CE_REAL *x, ptrdiff_t n, ptrdiff_t target, const double *class_weight,               \
       CE_REAL *grad, double grad_scale),                                                         \
      (x, n, target, class_weight, grad, grad_scale))                                             \
    X(CE_REAL, ce_softmax_xent_ext_row,                                                           \
      (const CE_REAL *z, const CE_REAL *y, ptrdiff_t n, ptrdiff_t target,                         \
       const double *class_weight, double label_smoothing, double z_loss, double softcap,         \
       CE_REAL *grad, CE_REAL *work, double grad_scale, CE_REAL *lse_out),                        \
      (z, y, n, target, class_weight, label_smoothing, z_loss, softcap, grad, work, grad_scale,   \
       lse_out))                                                                                  \
    X(void, ce_nll_index_rows,                                                                    \
      (const CE_REAL *const *x, ptrdiff_t rows, ptrdiff_t n, const ptrdiff_t *target,             \
       const double *class_weight, CE_REAL *const *grad, const double *grad_scale, CE_REAL *loss), \
      (x, rows, n, target, class_weight, grad, grad_scale, loss))                                 \
    CE_ROWS_OBJECTIVE_FUNCTIONS(X)                                                             \
    CE_ROWS_EVAL_FUNCTIONS(X)

/* Gradient-boosting objectives (crossent_objectives_typed.h): the gradient
 * AND the Hessian of each element's (row's) loss with respect to its raw
 * margin, never NULL; s (sample weights) may be NULL; hessian_rule is one of
 * the CE_HESSIAN_* rules there. */
#define CE_ROWS_OBJECTIVE_FUNCTIONS(X)                                                           \
    X(void, ce_logistic_objective_block,                                                          \
      (const CE_REAL *z, const CE_REAL *y, const CE_REAL *s, ptrdiff_t hessian_rule,              \
       double hessian_factor, double min_hessian, CE_REAL *grad, CE_REAL *hess, ptrdiff_t n),     \
      (z, y, s, hessian_rule, hessian_factor, min_hessian, grad, hess, n))                        \
    X(void, ce_focal_objective_block,                                                             \
      (const CE_REAL *z, const CE_REAL *y, const CE_REAL *s, double alpha, double gamma,          \
       double min_hessian, CE_REAL *grad, CE_REAL *hess, ptrdiff_t n),                            \
      (z, y, s, alpha, gamma, min_hessian, grad, hess, n))                                        \
    X(void, ce_softmax_objective_rows,                                                            \
      (const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n, const ptrdiff_t *target,             \
       const CE_REAL *const *y, const CE_REAL *s, ptrdiff_t hessian_rule, double hessian_factor,  \
       double min_hessian, CE_REAL *const *grad, CE_REAL *const *hess),                           \
      (z, rows, n, target, y, s, hessian_rule, hessian_factor, min_hessian, grad, hess))

/* The evaluation's per-row metric work (crossent.evaluate's metrics):
 * rank[k] = the rank of row k's target class, #{c: z_c > z_t} +
 * #{c < t: z_c == z_t} (0 when the target is the argmax, ties going to the
 * lowest index as numpy.argmax), or n when the row holds a NaN. */
#define CE_ROWS_EVAL_FUNCTIONS(X)                                                                \
    X(void, ce_target_ranks,                                                                      \
      (const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n, const ptrdiff_t *target,             \
       CE_REAL *rank),                                                                            \
      (z, rows, n, target, rank))                                                                 \
    X(void, ce_softmax_xent_index_eval_rows,                                                      \
      (const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t after, ptrdiff_t n,                     \
       const ptrdiff_t *target, const double *class_weight, double label_smoothing,               \
       CE_REAL *loss, CE_REAL *rank),                                                             \
      (z, rows, after, n, target, class_weight, label_smoothing, loss, rank))

/* Class indices (n contiguous targets): the position of the first target
 * outside [0, n_classes) that is not ignore_index, or -1 when there is none;
 * then *kept is how many targets are not ignore_index (the mean's
 * denominator of unweighted rows).  One pass that the vectoriser takes
 * whole.  X(return type, name, (parameters), (arguments)). */
#define CE_ROWS_INDEX_FUNCTIONS(X)                                                               \
    X(ptrdiff_t, ce_scan_targets_i32,                                                             \
      (const int32_t *target, ptrdiff_t n, ptrdiff_t n_classes, ptrdiff_t ignore_index,           \
       ptrdiff_t *kept),                                                                          \
      (target, n, n_classes, ignore_index, kept))                                                 \
    X(ptrdiff_t, ce_scan_targets_i64,                                                             \
      (const int64_t *target, ptrdiff_t n, ptrdiff_t n_classes, ptrdiff_t ignore_index,           \
       ptrdiff_t *kept),                                                                          \
      (target, n, n_classes, ignore_index, kept))

/* Test-only entries of the variants' tables: the vectorised primitives
 * applied to a block, so that the tests can time them and compare variants
 * (not exported by name). */
#define CE_ROWS_PRIMITIVE_BLOCKS(X)                                                              \
    X(void, ce_exp_block, (const CE_REAL *x, CE_REAL *out, ptrdiff_t n), (x, out, n))             \
    X(void, ce_exp_moderate_block, (const CE_REAL *x, CE_REAL *out, ptrdiff_t n), (x, out, n))    \
    X(void, ce_log_block, (const CE_REAL *x, CE_REAL *out, ptrdiff_t n), (x, out, n))             \
    X(void, ce_log1p_block, (const CE_REAL *x, CE_REAL *out, ptrdiff_t n), (x, out, n))           \
    X(void, ce_log1pexp_block, (const CE_REAL *x, CE_REAL *out, ptrdiff_t n), (x, out, n))

/* ce_foo -> ce_foo_f32 while CE_TS is f32. */
#define CE_ROWS_PASTE_(name, ts) name##_##ts
#define CE_ROWS_PASTE(name, ts) CE_ROWS_PASTE_(name, ts)
#define CE_ROWS_TYPED(name) CE_ROWS_PASTE(name, CE_TS)

/* Expands X-list `list` with callback `X` once for float (f32) and once
 * for double (f64). */
#define CE_ROWS_DECLARE(ret, name, params, args) ret CE_ROWS_TYPED(name) params;
#define CE_ROWS_DECLARE_UNTYPED(ret, name, params, args) ret name params;

#define CE_REAL float
#define CE_TS f32
CE_ROWS_TYPED_FUNCTIONS(CE_ROWS_DECLARE)
#undef CE_REAL
#undef CE_TS
#define CE_REAL double
#define CE_TS f64
CE_ROWS_TYPED_FUNCTIONS(CE_ROWS_DECLARE)
#undef CE_REAL
#undef CE_TS
CE_ROWS_INDEX_FUNCTIONS(CE_ROWS_DECLARE_UNTYPED)

#ifdef __cplusplus
}
#endif
#endif /* CROSSENT_ROWS_H */
