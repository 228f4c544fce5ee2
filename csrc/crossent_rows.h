/*
 * crossent_rows.h -- the row and block functions both compiled backends call.
 *
 * Every function here works on CONTIGUOUS buffers: the loops (pyx/ and
 * csrc/crossent_loops.c) stage strided data into contiguous buffers before
 * calling them, so that a strided input gives the same bits as a contiguous
 * one.  The math itself lives in crossent_math.h (static inline primitives);
 * this layer is compiled once per SIMD target (baseline, AVX2, AVX-512) and
 * the exported names below jump to the variant chosen at import
 * (ce_simd_select), so callers never see the dispatch.
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
 * blocks and added in block order, so results never depend on n_threads. */
#define CE_BLOCK_ELEMS 4096
#define CE_BLOCK_ROWS 64

/* How many consecutive blocks a thread takes at a time from the shared
 * counter of a dynamic schedule: about 16 grabs per thread.  One block per
 * grab made 2 threads only 1.4x faster than one on 65 536 x 10 (1.7-2.3x in
 * grabs of 8-32 blocks, measured in C; our reading, not measured: the
 * threads' interleaved 2.5 KB blocks and the counter move between their
 * caches).  Still dynamic, so a thread whose core is busy takes fewer grabs;
 * the others wait at most one grab, 1/16 of a thread's share.  Which thread
 * computes a block never changes its bits. */
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

/* ---- sums ------------------------------------------------------------ */
/* float64 sum of n values in a fixed lane order (identical for every SIMD
 * variant). */
double ce_sum_f32(const float *x, ptrdiff_t n);
double ce_sum_f64(const double *x, ptrdiff_t n);

/* ---- class indices (n contiguous targets) ----------------------------- */
/* The position of the first target outside [0, n_classes) that is not
 * ignore_index, or -1 when there is none; then *kept is how many targets
 * are not ignore_index (the mean's denominator of unweighted rows).  One
 * pass that the vectoriser takes whole. */
ptrdiff_t ce_scan_targets_i32(const int32_t *target, ptrdiff_t n, ptrdiff_t n_classes,
                              ptrdiff_t ignore_index, ptrdiff_t *kept);
ptrdiff_t ce_scan_targets_i64(const int64_t *target, ptrdiff_t n, ptrdiff_t n_classes,
                              ptrdiff_t ignore_index, ptrdiff_t *kept);

/* ---- elementwise blocks (n contiguous elements) ----------------------- */
/* out may be x itself. */
void ce_sigmoid_f32(const float *x, float *out, ptrdiff_t n);
void ce_sigmoid_f64(const double *x, double *out, ptrdiff_t n);
void ce_log_sigmoid_f32(const float *x, float *out, ptrdiff_t n);
void ce_log_sigmoid_f64(const double *x, double *out, ptrdiff_t n);

/* Binary losses.  w (weight), pw (pos_weight) and s (sample_weight) may be
 * NULL (= all ones).  loss[i] = w*s*l_i (always written); grad may be NULL,
 * else grad[i] = grad_scale * w * s * dl_i/dx_i.  Formulas: docs/kernels.md. */
void ce_bce_block_f32(const float *p, const float *y, const float *w,
                      const float *s, float *loss, float *grad,
                      double grad_scale, ptrdiff_t n);
void ce_bce_block_f64(const double *p, const double *y, const double *w,
                      const double *s, double *loss, double *grad,
                      double grad_scale, ptrdiff_t n);
void ce_bce_logits_block_f32(const float *z, const float *y, const float *w,
                             const float *pw, const float *s,
                             double label_smoothing, float *loss, float *grad,
                             double grad_scale, ptrdiff_t n);
void ce_bce_logits_block_f64(const double *z, const double *y, const double *w,
                             const double *pw, const double *s,
                             double label_smoothing, double *loss,
                             double *grad, double grad_scale, ptrdiff_t n);
void ce_mse_block_f32(const float *x, const float *t, const float *w,
                      const float *s, float *loss, float *grad,
                      double grad_scale, ptrdiff_t n);
void ce_mse_block_f64(const double *x, const double *t, const double *w,
                      const double *s, double *loss, double *grad,
                      double grad_scale, ptrdiff_t n);
/* Binary focal loss from logits (torchvision's sigmoid_focal_loss):
 * alpha < 0 means no alpha weighting; gamma >= 0. */
void ce_focal_block_f32(const float *z, const float *y, const float *w,
                        const float *s, double alpha, double gamma, float *loss,
                        float *grad, double grad_scale, ptrdiff_t n);
void ce_focal_block_f64(const double *z, const double *y, const double *w,
                        const double *s, double alpha, double gamma, double *loss,
                        double *grad, double grad_scale, ptrdiff_t n);
/* KL divergence of x = log q from the target t (a probability, or its log
 * when log_target is nonzero), elementwise, as torch.nn.functional.kl_div. */
void ce_kl_div_block_f32(const float *x, const float *t, const float *w,
                         const float *s, int log_target, float *loss, float *grad,
                         double grad_scale, ptrdiff_t n);
void ce_kl_div_block_f64(const double *x, const double *t, const double *w,
                         const double *s, int log_target, double *loss, double *grad,
                         double grad_scale, ptrdiff_t n);

/* ---- rows (n contiguous classes) -------------------------------------- */
double ce_row_max_f32(const float *z, ptrdiff_t n);
double ce_row_max_f64(const double *z, ptrdiff_t n);
/* log(sum(exp(z))), max-shifted; returned rounded to the row's dtype. */
float ce_row_logsumexp_f32(const float *z, ptrdiff_t n);
double ce_row_logsumexp_f64(const double *z, ptrdiff_t n);
/* out may be z itself. */
void ce_softmax_row_f32(const float *z, float *out, ptrdiff_t n);
void ce_softmax_row_f64(const double *z, double *out, ptrdiff_t n);
void ce_log_softmax_row_f32(const float *z, float *out, ptrdiff_t n);
void ce_log_softmax_row_f64(const double *z, double *out, ptrdiff_t n);
/* The same for `rows` rows at once: row k is z[k] (-> out[k], which may be
 * z[k]; logsumexp -> value[k]), the bits of the row function; short and
 * medium rows are computed several per vector. */
void ce_softmax_rows_f32(const float *const *z, ptrdiff_t rows, ptrdiff_t n, float *const *out);
void ce_softmax_rows_f64(const double *const *z, ptrdiff_t rows, ptrdiff_t n,
                         double *const *out);
void ce_log_softmax_rows_f32(const float *const *z, ptrdiff_t rows, ptrdiff_t n,
                             float *const *out);
void ce_log_softmax_rows_f64(const double *const *z, ptrdiff_t rows, ptrdiff_t n,
                             double *const *out);
void ce_logsumexp_rows_f32(const float *const *z, ptrdiff_t rows, ptrdiff_t n, float *value);
void ce_logsumexp_rows_f64(const double *const *z, ptrdiff_t rows, ptrdiff_t n, double *value);

/* Multiclass losses of one row.  class_weight may be NULL (= all ones); it is
 * float64 for both dtypes.  Return the class-weighted loss of the row (NOT
 * multiplied by the sample weight; the loop does that).  grad may be NULL,
 * else grad[c] = grad_scale * dl/dx_c (the loop folds the sample weight into
 * grad_scale).  Formulas: docs/kernels.md. */
float ce_softmax_xent_index_row_f32(const float *z, ptrdiff_t n, ptrdiff_t target,
                                    const double *class_weight, double label_smoothing,
                                    float *grad, double grad_scale);
double ce_softmax_xent_index_row_f64(const double *z, ptrdiff_t n, ptrdiff_t target,
                                     const double *class_weight, double label_smoothing,
                                     double *grad, double grad_scale);
float ce_softmax_xent_soft_row_f32(const float *z, const float *y, ptrdiff_t n,
                                   const double *class_weight, double label_smoothing,
                                   float *grad, double grad_scale);
double ce_softmax_xent_soft_row_f64(const double *z, const double *y, ptrdiff_t n,
                                    const double *class_weight, double label_smoothing,
                                    double *grad, double grad_scale);
/* The same for `rows` rows at once: row k has logits z[k], target target[k]
 * (a class, never ignored), gradient grad[k] scaled by grad_scale[k] (grad
 * NULL: no gradient) and loss loss[k]; the bits of calling
 * ce_softmax_xent_index_row on each row, but short and medium rows (up to 48
 * classes with a gradient, 104 without; no label smoothing) are computed
 * several per vector, which is what makes them fast. */
void ce_softmax_xent_index_rows_f32(const float *const *z, ptrdiff_t rows, ptrdiff_t n,
                                    const ptrdiff_t *target, const double *class_weight,
                                    double label_smoothing, float *const *grad,
                                    const double *grad_scale, float *loss);
void ce_softmax_xent_index_rows_f64(const double *const *z, ptrdiff_t rows, ptrdiff_t n,
                                    const ptrdiff_t *target, const double *class_weight,
                                    double label_smoothing, double *const *grad,
                                    const double *grad_scale, double *loss);
float ce_categorical_xent_index_row_f32(const float *p, ptrdiff_t n, ptrdiff_t target,
                                        const double *class_weight, double label_smoothing,
                                        float *grad, double grad_scale);
double ce_categorical_xent_index_row_f64(const double *p, ptrdiff_t n, ptrdiff_t target,
                                         const double *class_weight, double label_smoothing,
                                         double *grad, double grad_scale);
float ce_categorical_xent_soft_row_f32(const float *p, const float *y, ptrdiff_t n,
                                       const double *class_weight, double label_smoothing,
                                       float *grad, double grad_scale);
double ce_categorical_xent_soft_row_f64(const double *p, const double *y, ptrdiff_t n,
                                        const double *class_weight, double label_smoothing,
                                        double *grad, double grad_scale);
float ce_nll_index_row_f32(const float *x, ptrdiff_t n, ptrdiff_t target,
                           const double *class_weight, float *grad, double grad_scale);
double ce_nll_index_row_f64(const double *x, ptrdiff_t n, ptrdiff_t target,
                            const double *class_weight, double *grad, double grad_scale);
/* The same for `rows` rows at once (as ce_softmax_xent_index_rows). */
void ce_nll_index_rows_f32(const float *const *x, ptrdiff_t rows, ptrdiff_t n,
                           const ptrdiff_t *target, const double *class_weight,
                           float *const *grad, const double *grad_scale, float *loss);
void ce_nll_index_rows_f64(const double *const *x, ptrdiff_t rows, ptrdiff_t n,
                           const ptrdiff_t *target, const double *class_weight,
                           double *const *grad, const double *grad_scale, double *loss);

#ifdef __cplusplus
}
#endif
#endif /* CROSSENT_ROWS_H */
