/*
 * crossent_kernels.h -- the table of kernels, and the call that runs one.
 *
 * Every kernel of docs/kernels.md is one row of CE_KERNELS below: its name,
 * what it iterates over, and its Python signature.  Everything else is
 * derived from that row: the kernel ids, the bindings' argument parsing
 * (crossent_pybind.h reads the signature), the methods of both compiled
 * modules, and the checks that docs/kernels.md and the NumPy reference list
 * the same kernels (tests/test_kernel_table.py).
 *
 * Below "run block b of kernel K" everything lives here and in
 * crossent_blocks.c (staging strided operands, row groups and tiles, target
 * scans, weight sums, the shared-row path).  A backend only binds Python
 * arguments to a ce_call and runs its units, on as many threads as
 * c->threads, in any order: the unit sums are added in unit order by
 * ce_call_finish, so the bits never depend on the thread count.
 *
 * No Python.h here: plain C99.
 */
#ifndef CROSSENT_KERNELS_H
#define CROSSENT_KERNELS_H

#include <stddef.h>

#include "crossent_rows.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the table ------------------------------------------------------------ */

/* What a kernel iterates over. */
#define CE_ELEMENTS 0     /* flat elements of (R, K) operands, CE_BLOCK_ELEMS a block */
#define CE_ROWS 1         /* rows (a, b) of (A, B, C) operands, CE_BLOCK_ROWS a block */
#define CE_WEIGHTS 2      /* rows of (A, B) targets: the weight sum behind a mean */
#define CE_SCAN 3         /* a serial scan of the targets, before any kernel */

/* KERNEL(name, over, signature, math...).
 *
 * signature: the kernel's positional arguments; a name ending in '?' may be
 * None.  What each name means (its operand slot, shape and dtype, or the
 * option it sets) is fixed by the vocabulary in crossent_blocks.c, so a new
 * kernel uses the names of the kernels like it.
 *
 * math, for elementwise kernels: the block function (crossent_rows.h, without
 * its _f32/_f64 suffix) and its arguments, where CE_IN(slot) is the slot's n
 * contiguous elements (NULL when absent), CE_OPT(field) an option and n the
 * block's length.  Row kernels (CE_ROW_MATH) call their row functions from
 * ce_row_loss and ce_row_activation in crossent_blocks_typed.h, which also
 * batch short rows. */
#define CE_KERNELS(KERNEL)                                                                           \
    KERNEL(sigmoid, CE_ELEMENTS, "x2, out2, n_threads", ce_sigmoid, (CE_IN(X), CE_IN(OUT), n))       \
    KERNEL(log_sigmoid, CE_ELEMENTS, "x2, out2, n_threads", ce_log_sigmoid, (CE_IN(X), CE_IN(OUT), n)) \
    KERNEL(bce, CE_ELEMENTS,                                                                         \
      "p2, y2, weight2?, sample_weight2?, losses_out2?, grad_out2?, grad_scale, n_threads, acc", \
      ce_bce_block,                                                                             \
      (CE_IN(X), CE_IN(Y), CE_IN(WEIGHT), CE_IN(SAMPLE_WEIGHT), CE_IN(LOSSES), CE_IN(OUT),      \
       CE_OPT(grad_scale), n))                                                                  \
    KERNEL(bce_with_logits, CE_ELEMENTS,                                                             \
      "z2, y2, weight2?, pos_weight2?, sample_weight2?, label_smoothing, losses_out2?, "        \
      "grad_out2?, grad_scale, n_threads, acc",                                                 \
      ce_bce_logits_block,                                                                      \
      (CE_IN(X), CE_IN(Y), CE_IN(WEIGHT), CE_IN(POS_WEIGHT), CE_IN(SAMPLE_WEIGHT),              \
       CE_OPT(label_smoothing), CE_IN(LOSSES), CE_IN(OUT), CE_OPT(grad_scale), n))              \
    KERNEL(mse, CE_ELEMENTS,                                                                         \
      "x2, t2, weight2?, sample_weight2?, losses_out2?, grad_out2?, grad_scale, n_threads, acc", \
      ce_mse_block,                                                                             \
      (CE_IN(X), CE_IN(Y), CE_IN(WEIGHT), CE_IN(SAMPLE_WEIGHT), CE_IN(LOSSES), CE_IN(OUT),      \
       CE_OPT(grad_scale), n))                                                                  \
    KERNEL(focal, CE_ELEMENTS,                                                                  \
      "z2, y2, weight2?, sample_weight2?, alpha, gamma, losses_out2?, grad_out2?, grad_scale, "  \
      "n_threads, acc",                                                                         \
      ce_focal_block,                                                                           \
      (CE_IN(X), CE_IN(Y), CE_IN(WEIGHT), CE_IN(SAMPLE_WEIGHT), CE_OPT(alpha), CE_OPT(gamma),   \
       CE_IN(LOSSES), CE_IN(OUT), CE_OPT(grad_scale), n))                                       \
    KERNEL(kl_div, CE_ELEMENTS,                                                                 \
      "x2, t2, weight2?, sample_weight2?, log_target, losses_out2?, grad_out2?, grad_scale, "    \
      "n_threads, acc",                                                                         \
      ce_kl_div_block,                                                                          \
      (CE_IN(X), CE_IN(Y), CE_IN(WEIGHT), CE_IN(SAMPLE_WEIGHT), (int)CE_OPT(log_target),        \
       CE_IN(LOSSES), CE_IN(OUT), CE_OPT(grad_scale), n))                                       \
    KERNEL(softmax, CE_ROWS, "x3, out3, n_threads", CE_ROW_MATH)                                     \
    KERNEL(log_softmax, CE_ROWS, "x3, out3, n_threads", CE_ROW_MATH)                                 \
    KERNEL(logsumexp, CE_ROWS, "x3, out2, n_threads", CE_ROW_MATH)                                   \
    KERNEL(softmax_xent_index, CE_ROWS,                                                              \
      "z3, target2, class_weight, sample_weight2?, ignore_index, label_smoothing, losses_out2?, " \
      "grad_out3?, grad_scale, n_threads, acc", CE_ROW_MATH)                                    \
    KERNEL(softmax_xent_soft, CE_ROWS,                                                               \
      "z3, y3, class_weight, sample_weight2?, label_smoothing, losses_out2?, grad_out3?, "      \
      "grad_scale, n_threads, acc", CE_ROW_MATH)                                                \
    KERNEL(categorical_xent_index, CE_ROWS,                                                          \
      "p3, target2, class_weight, sample_weight2?, ignore_index, label_smoothing, losses_out2?, " \
      "grad_out3?, grad_scale, n_threads, acc", CE_ROW_MATH)                                    \
    KERNEL(categorical_xent_soft, CE_ROWS,                                                           \
      "p3, y3, class_weight, sample_weight2?, label_smoothing, losses_out2?, grad_out3?, "      \
      "grad_scale, n_threads, acc", CE_ROW_MATH)                                                \
    KERNEL(nll_index, CE_ROWS,                                                                       \
      "x3, target2, class_weight, sample_weight2?, ignore_index, losses_out2?, grad_out3?, "    \
      "grad_scale, n_threads, acc", CE_ROW_MATH)                                                \
    KERNEL(index_weight_sum, CE_WEIGHTS,                                                             \
      "target2, class_weight, sample_weight2?, ignore_index, n_threads, acc", CE_ROW_MATH)      \
    KERNEL(sample_weight_sum, CE_WEIGHTS, "sample_weight2, n_threads, acc", CE_ROW_MATH)            \
    KERNEL(elementwise_weight_sum, CE_ELEMENTS, "x2, weight2?, n_threads, acc",                     \
      ce_weight_product_block, (CE_IN(X), CE_IN(WEIGHT), CE_IN(LOSSES), n))                     \
    KERNEL(outside_unit_count, CE_ELEMENTS, "x2, n_threads, acc",                                  \
      ce_outside_unit_block, (CE_IN(X), CE_IN(LOSSES), n))                                      \
    KERNEL(first_bad_index, CE_SCAN, "target2, n_classes, ignore_index", CE_ROW_MATH)          \
    CE_OBJECTIVE_KERNELS(KERNEL)                                                                     \
    CE_LOGIT_TRANSFORM_KERNELS(KERNEL)                                                               \
    CE_EVAL_KERNELS(KERNEL)

/* Gradient-boosting objectives (python/crossent/objectives.py): the gradient
 * and the Hessian of each sample's loss, no loss sum.  The softmax ones go
 * through ce_objective_tile in crossent_blocks_typed.h. */
#define CE_OBJECTIVE_KERNELS(KERNEL)                                                                \
    KERNEL(logistic_objective, CE_ELEMENTS,                                                         \
      "z2, y2, sample_weight2?, hessian_rule, hessian_factor, min_hessian, grad_out2, hess_out2, " \
      "n_threads",                                                                               \
      ce_logistic_objective_block,                                                               \
      (CE_IN(X), CE_IN(Y), CE_IN(SAMPLE_WEIGHT), CE_OPT(hessian_rule), CE_OPT(hessian_factor),   \
       CE_OPT(min_hessian), CE_IN(OUT), CE_IN(HESS), n))                                         \
    KERNEL(focal_objective, CE_ELEMENTS,                                                            \
      "z2, y2, sample_weight2?, alpha, gamma, min_hessian, grad_out2, hess_out2, n_threads",      \
      ce_focal_objective_block,                                                                  \
      (CE_IN(X), CE_IN(Y), CE_IN(SAMPLE_WEIGHT), CE_OPT(alpha), CE_OPT(gamma),                   \
       CE_OPT(min_hessian), CE_IN(OUT), CE_IN(HESS), n))                                         \
    KERNEL(softmax_objective_index, CE_ROWS,                                                        \
      "z3, target2, sample_weight2?, hessian_rule, hessian_factor, min_hessian, grad_out3, "      \
      "hess_out3, n_threads", CE_ROW_MATH)                                                       \
    KERNEL(softmax_objective_soft, CE_ROWS,                                                         \
      "z3, y3, sample_weight2?, hessian_rule, hessian_factor, min_hessian, grad_out3, "           \
      "hess_out3, n_threads", CE_ROW_MATH)

/* softmax_xent_* with the logit transforms of cross_entropy's z_loss and
 * softcap (softcap 0: none), and each row's log-sum-exp (of the capped
 * logits) in lse_out2 when it is not None (0 for an ignored row). */
#define CE_LOGIT_TRANSFORM_KERNELS(KERNEL)                                                           \
    KERNEL(softmax_xent_index_ext, CE_ROWS,                                                          \
      "z3, target2, class_weight, sample_weight2?, ignore_index, label_smoothing, z_loss, "      \
      "softcap, lse_out2?, losses_out2?, grad_out3?, grad_scale, n_threads, acc", CE_ROW_MATH)  \
    KERNEL(softmax_xent_soft_ext, CE_ROWS,                                                           \
      "z3, y3, class_weight, sample_weight2?, label_smoothing, z_loss, softcap, lse_out2?, "     \
      "losses_out2?, grad_out3?, grad_scale, n_threads, acc", CE_ROW_MATH)

/* The loss-only kernels of crossent.evaluate: the index losses' sums (and
 * per-sample losses in losses_out2) as their kernels give them without a
 * gradient (the same bits), and with ranks_out2 each row's target rank from
 * the same pass over the row (docs/kernels.md, "Evaluation"). */
#define CE_EVAL_KERNELS(KERNEL)                                                                      \
    KERNEL(softmax_xent_index_eval, CE_ROWS,                                                         \
      "z3, target2, class_weight, sample_weight2?, ignore_index, label_smoothing, losses_out2?, " \
      "ranks_out2?, n_threads, acc", CE_ROW_MATH)                                               \
    KERNEL(categorical_xent_index_eval, CE_ROWS,                                                     \
      "p3, target2, class_weight, sample_weight2?, ignore_index, label_smoothing, losses_out2?, " \
      "ranks_out2?, n_threads, acc", CE_ROW_MATH)                                               \
    KERNEL(nll_index_eval, CE_ROWS,                                                                  \
      "x3, target2, class_weight, sample_weight2?, ignore_index, losses_out2?, ranks_out2?, "     \
      "n_threads, acc", CE_ROW_MATH)

#define CE_KERNEL_ID(name, over, ...) CE_K_##name,
enum ce_kernel_id { CE_KERNELS(CE_KERNEL_ID) CE_N_KERNELS };
#undef CE_KERNEL_ID

/* ---- operands and options ------------------------------------------------- */

/* Operand slots.  Elementwise kernels: every slot is (R, K).  Row kernels:
 * X, Y and OUT are (A, B, C); TARGET, SAMPLE_WEIGHT and LOSSES are (A, B). */
enum ce_slot {
    CE_X,              /* predictions (x, p, z) */
    CE_Y,              /* elementwise targets, or soft targets */
    CE_TARGET,         /* int32/int64 class indices */
    CE_WEIGHT,         /* elementwise weight */
    CE_POS_WEIGHT,
    CE_SAMPLE_WEIGHT,
    CE_LOSSES,         /* per-sample losses; logsumexp's result */
    CE_OUT,            /* gradient; an activation's result */
    CE_HESS,           /* an objective's Hessian (after CE_OUT: an output) */
    CE_LSE,            /* per-row log-sum-exp (the logit-transform kernels) */
    CE_RANKS,          /* per-row target ranks (the evaluation kernels) */
    CE_N_SLOTS
};

/* How a float32 call reads its predictions (CE_X): as float32, or as 2-byte
 * floats widened to float32 a block at a time while staging (exactly: every
 * float16 and bfloat16 value is a float32 value). */
enum ce_half_kind { CE_NOT_HALF = 0, CE_HALF_FLOAT16, CE_HALF_BFLOAT16 };

/* A strided view: byte strides, so every offset is computed in ptrdiff_t.
 * data == NULL marks an absent operand. */
typedef struct {
    char *data;
    ptrdiff_t shape[3];
    ptrdiff_t strides[3];
    int itemsize;
    int half;            /* enum ce_half_kind; CE_X of a float32 call only */
} ce_operand;

/* The scalar options a signature may name: OPTION(C type, name, argument
 * kind).  Each is a field of ce_options, and its name is an argument name of
 * the signatures (crossent_blocks.c's vocabulary adds them).  A kernel
 * reads its options as CE_OPT(name) in its row of CE_KERNELS. */
#define CE_OPTIONS(OPTION)                                   \
    OPTION(ptrdiff_t, ignore_index, CE_ARG_INDEX)            \
    OPTION(ptrdiff_t, n_classes, CE_ARG_INDEX)               \
    OPTION(double, label_smoothing, CE_ARG_DOUBLE)           \
    OPTION(double, grad_scale, CE_ARG_DOUBLE)                \
    OPTION(double, alpha, CE_ARG_DOUBLE)                     \
    OPTION(double, gamma, CE_ARG_DOUBLE)                     \
    OPTION(ptrdiff_t, log_target, CE_ARG_INDEX)              \
    OPTION(ptrdiff_t, hessian_rule, CE_ARG_INDEX)            \
    OPTION(double, hessian_factor, CE_ARG_DOUBLE)            \
    OPTION(double, min_hessian, CE_ARG_DOUBLE)               \
    OPTION(double, z_loss, CE_ARG_DOUBLE)                    \
    OPTION(double, softcap, CE_ARG_DOUBLE)

#define CE_OPTION_FIELD(type, name, kind) type name;
typedef struct {
    const double *class_weight;  /* NULL: all ones */
    CE_OPTIONS(CE_OPTION_FIELD)
} ce_options;
#undef CE_OPTION_FIELD

/* One kernel call: what the binding fills, then what ce_call_plan derives. */
typedef struct {
    int kernel;                  /* enum ce_kernel_id */
    int f32;                     /* float32 data, else float64 */
    ce_operand op[CE_N_SLOTS];
    ce_options opt;

    /* set by ce_call_plan */
    ptrdiff_t n_units;           /* blocks, or runs of rows in shared mode */
    ptrdiff_t grab;              /* units a thread takes at a time */
    ptrdiff_t work;              /* elements visited */
    size_t scratch_bytes;        /* staging memory each thread needs */
    int threads;                 /* threads worth waking for this call */
    int eval;                    /* an evaluation kernel (c->kernel is then its loss's) */

    /* internal to crossent_blocks.c */
    int shared_rows;             /* few wide rows: units are runs of rows */
    ptrdiff_t run_rows;
    void *row_losses;            /* shared mode: every row's loss */
    ptrdiff_t n_rows, inner, n_classes, cols, total, block_len;
    ptrdiff_t tile_rows, stage_x, stage_y, stage_out, stage_hess;
    ptrdiff_t stage_work;        /* a row of scratch for the capped logits, or -1 */
    int needed[CE_N_SLOTS];
    ptrdiff_t slot[CE_N_SLOTS];
} ce_call;

#define CE_OK 0
#define CE_ERR_NOMEM 1

/* Below CE_PARALLEL_MIN_WORK elements of work, a second thread costs more
 * than it saves, and the bindings keep the GIL (python/crossent/_blocking.py
 * defines it; setup.py passes it). */
#ifndef CE_PARALLEL_MIN_WORK
#error "CE_PARALLEL_MIN_WORK comes from python/crossent/_blocking.py (setup.py passes it)"
#endif

/* ---- the table, read ------------------------------------------------------- */

extern const char *const ce_kernel_names[CE_N_KERNELS];
extern const char *const ce_kernel_signatures[CE_N_KERNELS];
extern const int ce_kernel_over[CE_N_KERNELS];

/* What an argument name of a signature stands for. */
typedef enum {
    CE_ARG_ELEMENTS,      /* float (R, K) operand */
    CE_ARG_ROWS,          /* float (A, B, C) operand */
    CE_ARG_PER_ROW,       /* float (A, B) operand */
    CE_ARG_TARGETS,       /* int32/int64 (A, B) class indices */
    CE_ARG_CLASS_WEIGHT,  /* None or C-contiguous float64 (C,) */
    CE_ARG_DOUBLE,
    CE_ARG_INDEX,
    CE_ARG_THREADS,
    CE_ARG_ACC
} ce_arg_kind;

typedef struct {
    char name[24];
    ce_arg_kind kind;
    int slot;             /* operands: enum ce_slot; options: the field's offset in ce_options */
    int optional;         /* None allowed */
    int output;           /* must be writable */
} ce_arg;

#define CE_MAX_ARGS 14
/* The parsed signature of kernel k: *n arguments.  NULL when a name of its
 * signature is not in the vocabulary (a table error, reported by the tests
 * through ce_kernel_table_error). */
const ce_arg *ce_kernel_args(int kernel, int *n);
/* Whether kernel k sums losses (its signature has acc). */
int ce_kernel_reduces(int kernel);
/* NULL, or a message naming the first kernel whose signature does not parse. */
const char *ce_kernel_table_error(void);

/* ---- running a call --------------------------------------------------------- */

/* Plans the call for up to n_threads threads: units, scratch, threads.
 * Returns CE_OK, or CE_ERR_NOMEM (then nothing needs releasing). */
int ce_call_plan(ce_call *c, int n_threads);
/* Runs unit u with this thread's scratch (NULL when c->scratch_bytes is 0),
 * writing the unit's loss sum to *unit_sum. */
void ce_call_unit(const ce_call *c, ptrdiff_t u, void *scratch, double *unit_sum);
/* Adds the unit sums (or, in shared mode, the rows' losses by block) to
 * *acc in order, and releases what ce_call_plan allocated.  failed: a
 * thread could not get its scratch; then *acc is left alone and
 * CE_ERR_NOMEM is returned. */
int ce_call_finish(ce_call *c, const double *unit_sums, int failed, double *acc);
/* The whole call on this thread: plan's units in order, then finish. */
int ce_call_run_serial(ce_call *c, double *acc);

/* first_bad_index: the flat row of the first target outside [0, n_classes)
 * that is not ignore_index, or -1; *kept counts the targets not ignored (up
 * to the first bad one). */
ptrdiff_t ce_first_bad_target(const ce_operand *target, ptrdiff_t n_classes,
                              ptrdiff_t ignore_index, ptrdiff_t *kept);

#ifdef __cplusplus
}
#endif
#endif /* CROSSENT_KERNELS_H */
