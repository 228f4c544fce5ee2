# Cython declarations of csrc/crossent_rows.h (the row and block functions
# both compiled backends call).  Keep this a complete, plain mirror of the
# header: every pyx module cimports from here instead of redeclaring.
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int32_t, int64_t

cdef extern from "crossent_rows.h" nogil:
    enum:
        CE_BLOCK_ELEMS
        CE_BLOCK_ROWS
    ptrdiff_t ce_blocks_per_grab(ptrdiff_t n_blocks, int threads)

    # SIMD dispatch
    int ce_simd_select(const char *variant)
    const char *ce_simd_name()
    const char *ce_simd_available()

    # sums in a fixed lane order
    double ce_sum_f32(const float *x, ptrdiff_t n)
    double ce_sum_f64(const double *x, ptrdiff_t n)

    # class indices (n contiguous targets)
    ptrdiff_t ce_scan_targets_i32(const int32_t *target, ptrdiff_t n, ptrdiff_t n_classes,
                                  ptrdiff_t ignore_index, ptrdiff_t *kept)
    ptrdiff_t ce_scan_targets_i64(const int64_t *target, ptrdiff_t n, ptrdiff_t n_classes,
                                  ptrdiff_t ignore_index, ptrdiff_t *kept)

    # elementwise blocks (n contiguous elements)
    void ce_sigmoid_f32(const float *x, float *out, ptrdiff_t n)
    void ce_sigmoid_f64(const double *x, double *out, ptrdiff_t n)
    void ce_log_sigmoid_f32(const float *x, float *out, ptrdiff_t n)
    void ce_log_sigmoid_f64(const double *x, double *out, ptrdiff_t n)

    void ce_bce_block_f32(const float *p, const float *y, const float *w,
                          const float *s, float *loss, float *grad,
                          double grad_scale, ptrdiff_t n)
    void ce_bce_block_f64(const double *p, const double *y, const double *w,
                          const double *s, double *loss, double *grad,
                          double grad_scale, ptrdiff_t n)
    void ce_bce_logits_block_f32(const float *z, const float *y, const float *w,
                                 const float *pw, const float *s,
                                 double label_smoothing, float *loss, float *grad,
                                 double grad_scale, ptrdiff_t n)
    void ce_bce_logits_block_f64(const double *z, const double *y, const double *w,
                                 const double *pw, const double *s,
                                 double label_smoothing, double *loss,
                                 double *grad, double grad_scale, ptrdiff_t n)
    void ce_mse_block_f32(const float *x, const float *t, const float *w,
                          const float *s, float *loss, float *grad,
                          double grad_scale, ptrdiff_t n)
    void ce_mse_block_f64(const double *x, const double *t, const double *w,
                          const double *s, double *loss, double *grad,
                          double grad_scale, ptrdiff_t n)
    void ce_focal_block_f32(const float *z, const float *y, const float *w,
                            const float *s, double alpha, double gamma, float *loss,
                            float *grad, double grad_scale, ptrdiff_t n)
    void ce_focal_block_f64(const double *z, const double *y, const double *w,
                            const double *s, double alpha, double gamma, double *loss,
                            double *grad, double grad_scale, ptrdiff_t n)
    void ce_kl_div_block_f32(const float *x, const float *t, const float *w,
                             const float *s, int log_target, float *loss, float *grad,
                             double grad_scale, ptrdiff_t n)
    void ce_kl_div_block_f64(const double *x, const double *t, const double *w,
                             const double *s, int log_target, double *loss, double *grad,
                             double grad_scale, ptrdiff_t n)

    # rows (n contiguous classes)
    double ce_row_max_f32(const float *z, ptrdiff_t n)
    double ce_row_max_f64(const double *z, ptrdiff_t n)
    float ce_row_logsumexp_f32(const float *z, ptrdiff_t n)
    double ce_row_logsumexp_f64(const double *z, ptrdiff_t n)
    void ce_softmax_row_f32(const float *z, float *out, ptrdiff_t n)
    void ce_softmax_row_f64(const double *z, double *out, ptrdiff_t n)
    void ce_log_softmax_row_f32(const float *z, float *out, ptrdiff_t n)
    void ce_log_softmax_row_f64(const double *z, double *out, ptrdiff_t n)
    void ce_softmax_rows_f32(const float **z, ptrdiff_t rows, ptrdiff_t n, float **out)
    void ce_softmax_rows_f64(const double **z, ptrdiff_t rows, ptrdiff_t n, double **out)
    void ce_log_softmax_rows_f32(const float **z, ptrdiff_t rows, ptrdiff_t n, float **out)
    void ce_log_softmax_rows_f64(const double **z, ptrdiff_t rows, ptrdiff_t n, double **out)
    void ce_logsumexp_rows_f32(const float **z, ptrdiff_t rows, ptrdiff_t n, float *value)
    void ce_logsumexp_rows_f64(const double **z, ptrdiff_t rows, ptrdiff_t n, double *value)

    float ce_softmax_xent_index_row_f32(const float *z, ptrdiff_t n, ptrdiff_t target,
                                        const double *class_weight, double label_smoothing,
                                        float *grad, double grad_scale)
    double ce_softmax_xent_index_row_f64(const double *z, ptrdiff_t n, ptrdiff_t target,
                                         const double *class_weight, double label_smoothing,
                                         double *grad, double grad_scale)
    void ce_softmax_xent_index_rows_f32(const float **z, ptrdiff_t rows, ptrdiff_t n,
                                        const ptrdiff_t *target, const double *class_weight,
                                        double label_smoothing, float **grad,
                                        const double *grad_scale, float *loss)
    void ce_softmax_xent_index_rows_f64(const double **z, ptrdiff_t rows, ptrdiff_t n,
                                        const ptrdiff_t *target, const double *class_weight,
                                        double label_smoothing, double **grad,
                                        const double *grad_scale, double *loss)
    float ce_softmax_xent_soft_row_f32(const float *z, const float *y, ptrdiff_t n,
                                       const double *class_weight, double label_smoothing,
                                       float *grad, double grad_scale)
    double ce_softmax_xent_soft_row_f64(const double *z, const double *y, ptrdiff_t n,
                                        const double *class_weight, double label_smoothing,
                                        double *grad, double grad_scale)
    float ce_categorical_xent_index_row_f32(const float *p, ptrdiff_t n, ptrdiff_t target,
                                            const double *class_weight, double label_smoothing,
                                            float *grad, double grad_scale)
    double ce_categorical_xent_index_row_f64(const double *p, ptrdiff_t n, ptrdiff_t target,
                                             const double *class_weight, double label_smoothing,
                                             double *grad, double grad_scale)
    float ce_categorical_xent_soft_row_f32(const float *p, const float *y, ptrdiff_t n,
                                           const double *class_weight, double label_smoothing,
                                           float *grad, double grad_scale)
    double ce_categorical_xent_soft_row_f64(const double *p, const double *y, ptrdiff_t n,
                                            const double *class_weight, double label_smoothing,
                                            double *grad, double grad_scale)
    float ce_nll_index_row_f32(const float *x, ptrdiff_t n, ptrdiff_t target,
                               const double *class_weight, float *grad, double grad_scale)
    double ce_nll_index_row_f64(const double *x, ptrdiff_t n, ptrdiff_t target,
                                const double *class_weight, double *grad, double grad_scale)
    void ce_nll_index_rows_f32(const float **x, ptrdiff_t rows, ptrdiff_t n,
                               const ptrdiff_t *target, const double *class_weight,
                               float **grad, const double *grad_scale, float *loss)
    void ce_nll_index_rows_f64(const double **x, ptrdiff_t rows, ptrdiff_t n,
                               const ptrdiff_t *target, const double *class_weight,
                               double **grad, const double *grad_scale, double *loss)
