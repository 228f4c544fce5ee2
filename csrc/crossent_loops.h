/*
 * crossent_loops.h -- the C backend's loops: strided operands, fixed blocks,
 * OpenMP threads, over the row and block functions of crossent_rows.h.
 *
 * The loops own iteration, staging and threading; they do no math of their
 * own beyond multiplying a row's loss by its sample weight.  They never fail
 * except when a staging buffer cannot be allocated (CE_ERR_NOMEM).
 *
 * Blocking rules (shared with the Cython loops in pyx/, so that both backends
 * give the same bits):
 *   - Elementwise kernels visit the flat C-order index r*K + k of an (R, K)
 *     operand in blocks of CE_BLOCK_ELEMS elements.  Each block is staged into
 *     contiguous buffers (an operand already contiguous over the block is used
 *     in place), passed to ONE ce_*_block_* call, and its losses are summed with
 *     ce_sum_*.
 *   - Row kernels visit the rows a*B + b of an (A, B, C) operand in blocks of
 *     CE_BLOCK_ROWS rows.  Row i's loss is  row_fn(...) * s_i  (in the row's
 *     dtype; s_i = 1 without sample weights, 0 for an ignored row), the row
 *     function gets grad_scale * (double)s_i, and the block's losses are
 *     summed with ce_sum_*.
 *   - index_weight_sum: per row  (double)cw[t] * (double)s  (0 when ignored),
 *     summed per CE_BLOCK_ROWS block with ce_sum_f64.
 *   - Block sums are added to *acc one by one, in block order.
 *
 * No Python.h here: plain C99 (+ OpenMP when _OPENMP is defined).
 */
#ifndef CROSSENT_LOOPS_H
#define CROSSENT_LOOPS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CE_OK 0
#define CE_ERR_NOMEM 1

/* A strided view of a 1-, 2- or 3-D array.  Strides count ELEMENTS, not
 * bytes.  data == NULL marks an absent optional operand. */
typedef struct {
    void *data;
    int ndim;
    int itemsize;          /* tells int32 targets from int64 ones */
    ptrdiff_t shape[3];
    ptrdiff_t strides[3];
} ce_array;

#define CE_PRESENT(a) ((a) != NULL && (a)->data != NULL)

/* Activations.  out may be x itself (in place). */
#define CE_DECLARE_ACTIVATION_LOOPS(SUF)                                                  \
    int ce_loop_sigmoid_##SUF(const ce_array *x2, const ce_array *out2, int n_threads);     \
    int ce_loop_log_sigmoid_##SUF(const ce_array *x2, const ce_array *out2, int n_threads); \
    int ce_loop_softmax_##SUF(const ce_array *x3, const ce_array *out3, int n_threads);     \
    int ce_loop_log_softmax_##SUF(const ce_array *x3, const ce_array *out3, int n_threads); \
    int ce_loop_logsumexp_##SUF(const ce_array *x3, const ce_array *out2, int n_threads);

/* Losses: arguments in the order of docs/kernels.md; *acc (NULL: no sum) gets the block sums
 * of the weighted per-sample losses added in block order. */
#define CE_DECLARE_LOSS_LOOPS(SUF)                                                         \
    int ce_loop_bce_##SUF(const ce_array *p2, const ce_array *y2, const ce_array *weight2,  \
                          const ce_array *sample_weight2, const ce_array *losses_out2,      \
                          const ce_array *grad_out2, double grad_scale, int n_threads,      \
                          double *acc);                                                     \
    int ce_loop_bce_with_logits_##SUF(const ce_array *z2, const ce_array *y2,               \
                                      const ce_array *weight2, const ce_array *pos_weight2, \
                                      const ce_array *sample_weight2, double label_smoothing, \
                                      const ce_array *losses_out2, const ce_array *grad_out2, \
                                      double grad_scale, int n_threads, double *acc);       \
    int ce_loop_mse_##SUF(const ce_array *x2, const ce_array *t2, const ce_array *weight2,  \
                          const ce_array *sample_weight2, const ce_array *losses_out2,      \
                          const ce_array *grad_out2, double grad_scale, int n_threads,      \
                          double *acc);                                                     \
    int ce_loop_softmax_xent_index_##SUF(                                                   \
        const ce_array *z3, const ce_array *target2, const double *class_weight,            \
        const ce_array *sample_weight2, ptrdiff_t ignore_index, double label_smoothing,     \
        const ce_array *losses_out2, const ce_array *grad_out3, double grad_scale,          \
        int n_threads, double *acc);                                                        \
    int ce_loop_softmax_xent_soft_##SUF(                                                    \
        const ce_array *z3, const ce_array *y3, const double *class_weight,                 \
        const ce_array *sample_weight2, double label_smoothing, const ce_array *losses_out2, \
        const ce_array *grad_out3, double grad_scale, int n_threads, double *acc);          \
    int ce_loop_categorical_xent_index_##SUF(                                               \
        const ce_array *p3, const ce_array *target2, const double *class_weight,            \
        const ce_array *sample_weight2, ptrdiff_t ignore_index, double label_smoothing,     \
        const ce_array *losses_out2, const ce_array *grad_out3, double grad_scale,          \
        int n_threads, double *acc);                                                        \
    int ce_loop_categorical_xent_soft_##SUF(                                                \
        const ce_array *p3, const ce_array *y3, const double *class_weight,                 \
        const ce_array *sample_weight2, double label_smoothing, const ce_array *losses_out2, \
        const ce_array *grad_out3, double grad_scale, int n_threads, double *acc);          \
    int ce_loop_nll_index_##SUF(                                                            \
        const ce_array *x3, const ce_array *target2, const double *class_weight,            \
        const ce_array *sample_weight2, ptrdiff_t ignore_index, const ce_array *losses_out2, \
        const ce_array *grad_out3, double grad_scale, int n_threads, double *acc);          \
    int ce_loop_index_weight_sum_##SUF(const ce_array *target2, const double *class_weight, \
                                       const ce_array *sample_weight2, ptrdiff_t ignore_index, \
                                       int n_threads, double *acc);

CE_DECLARE_ACTIVATION_LOOPS(f32)
CE_DECLARE_ACTIVATION_LOOPS(f64)
CE_DECLARE_LOSS_LOOPS(f32)
CE_DECLARE_LOSS_LOOPS(f64)

/* index_weight_sum only reads floats from sample_weight2: without one, either
 * variant gives the same result. */

/* Flat row index of the first target outside [0, n_classes) that is not
 * ignore_index, or -1.  Serial: it runs once per call, before any kernel. */
ptrdiff_t ce_first_bad_index(const ce_array *target2, ptrdiff_t n_classes, ptrdiff_t ignore_index);

/* Threads OpenMP would use by default (1 without OpenMP). */
int ce_max_threads(void);

#ifdef __cplusplus
}
#endif
#endif /* CROSSENT_LOOPS_H */
