/*
 * crossent_blocks.c -- everything below "run unit u of a kernel call", once
 * for both compiled backends: the table's signatures, planning a call,
 * staging strided operands, row groups and tiles, the shared-row path,
 * target scans and weight sums.  The dtype-specific parts are one template,
 * crossent_blocks_typed.h, included below for float and double.
 *
 * The blocking rules, which make the bits independent of the thread count
 * and of the operands' layout (docs/kernels.md):
 *   - Elementwise kernels visit the flat C-order index r*K + k of (R, K)
 *     operands in blocks of CE_BLOCK_ELEMS.  Operands not contiguous over a
 *     block are staged into contiguous buffers, so the block function sees
 *     the same values whatever the layout; a block's losses are summed with
 *     ce_sum_*.
 *   - Row kernels visit rows a*B + b of (A, B, C) operands in blocks of
 *     CE_BLOCK_ROWS.  Row i's loss is row_fn(...) * s_i (in the row's dtype;
 *     s_i = 1 without sample weights, 0 for an ignored row); the row function
 *     gets grad_scale * (double)s_i; a block's losses are summed with ce_sum_*.
 *   - Block sums are added to the accumulator one by one, in block order.
 *
 * No Python.h here: plain C99.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crossent_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define CE_HAVE_X86_WIDENING 1
#endif

/* ---- the table -------------------------------------------------------------- */

#define CE_KERNEL_NAME(name, over, signature, ...) #name,
#define CE_KERNEL_SIGNATURE(name, over, signature, ...) signature,
#define CE_KERNEL_OVER(name, over, signature, ...) over,
const char *const ce_kernel_names[CE_N_KERNELS] = {CE_KERNELS(CE_KERNEL_NAME)};
const char *const ce_kernel_signatures[CE_N_KERNELS] = {CE_KERNELS(CE_KERNEL_SIGNATURE)};
const int ce_kernel_over[CE_N_KERNELS] = {CE_KERNELS(CE_KERNEL_OVER)};

#define CE_ANY (-1)
#define CE_OPTION(field) (int)offsetof(ce_options, field)

/* What each argument name of a signature means.  The first entry whose name
 * matches and whose `over` is the kernel's (or CE_ANY) wins. */
static const struct {
    const char *name;
    int over;
    ce_arg_kind kind;
    int slot;
    int output;
} ce_vocabulary[] = {
    {"x2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_X, 0},
    {"p2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_X, 0},
    {"z2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_X, 0},
    {"y2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_Y, 0},
    {"t2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_Y, 0},
    {"weight2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_WEIGHT, 0},
    {"pos_weight2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_POS_WEIGHT, 0},
    {"sample_weight2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_SAMPLE_WEIGHT, 0},
    {"sample_weight2", CE_ANY, CE_ARG_PER_ROW, CE_SAMPLE_WEIGHT, 0},
    {"losses_out2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_LOSSES, 1},
    {"losses_out2", CE_ANY, CE_ARG_PER_ROW, CE_LOSSES, 1},
    {"grad_out2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_OUT, 1},
    {"out2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_OUT, 1},
    {"out2", CE_ROWS, CE_ARG_PER_ROW, CE_LOSSES, 1},
    {"x3", CE_ROWS, CE_ARG_ROWS, CE_X, 0},
    {"z3", CE_ROWS, CE_ARG_ROWS, CE_X, 0},
    {"p3", CE_ROWS, CE_ARG_ROWS, CE_X, 0},
    {"y3", CE_ROWS, CE_ARG_ROWS, CE_Y, 0},
    {"out3", CE_ROWS, CE_ARG_ROWS, CE_OUT, 1},
    {"grad_out3", CE_ROWS, CE_ARG_ROWS, CE_OUT, 1},
    {"hess_out2", CE_ELEMENTS, CE_ARG_ELEMENTS, CE_HESS, 1},
    {"hess_out3", CE_ROWS, CE_ARG_ROWS, CE_HESS, 1},
    {"lse_out2", CE_ROWS, CE_ARG_PER_ROW, CE_LSE, 1},
    {"target2", CE_ANY, CE_ARG_TARGETS, CE_TARGET, 0},
    {"ranks_out2", CE_ROWS, CE_ARG_PER_ROW, CE_RANKS, 1},
    {"class_weight", CE_ANY, CE_ARG_CLASS_WEIGHT, CE_OPTION(class_weight), 0},
#define CE_OPTION_WORD(type, name, kind) {#name, CE_ANY, kind, CE_OPTION(name), 0},
    CE_OPTIONS(CE_OPTION_WORD)
#undef CE_OPTION_WORD
    {"n_threads", CE_ANY, CE_ARG_THREADS, -1, 0},
    {"acc", CE_ANY, CE_ARG_ACC, -1, 0},
};

static ce_arg ce_parsed_args[CE_N_KERNELS][CE_MAX_ARGS];
static int ce_parsed_count[CE_N_KERNELS];
static int ce_parse_state;  /* 0: not yet, 1: parsed, -1: a signature failed */
static char ce_parse_error[160];

static int ce_lookup(const char *name, size_t len, int over, ce_arg *arg)
{
    for (size_t i = 0; i < sizeof(ce_vocabulary) / sizeof(ce_vocabulary[0]); i++) {
        if (strlen(ce_vocabulary[i].name) != len || strncmp(ce_vocabulary[i].name, name, len) != 0)
            continue;
        if (ce_vocabulary[i].over != CE_ANY && ce_vocabulary[i].over != over)
            continue;
        memcpy(arg->name, name, len);
        arg->name[len] = '\0';
        arg->kind = ce_vocabulary[i].kind;
        arg->slot = ce_vocabulary[i].slot;
        arg->output = ce_vocabulary[i].output;
        return 0;
    }
    return -1;
}

static int ce_parse_signature(int kernel)
{
    const char *s = ce_kernel_signatures[kernel];
    int n = 0;
    while (*s) {
        const char *end = s;
        ce_arg *arg = &ce_parsed_args[kernel][n];
        size_t len;
        while (*end && *end != ',' && *end != '?')
            end++;
        len = (size_t)(end - s);
        if (n == CE_MAX_ARGS || len >= sizeof(arg->name) || ce_lookup(s, len, ce_kernel_over[kernel], arg) < 0) {
            snprintf(ce_parse_error, sizeof(ce_parse_error), "kernel %s: argument %d ('%.*s') is not in the vocabulary",
                     ce_kernel_names[kernel], n, (int)len, s);
            return -1;
        }
        arg->optional = *end == '?';
        end += arg->optional;
        n++;
        s = end;
        while (*s == ',' || *s == ' ')
            s++;
    }
    ce_parsed_count[kernel] = n;
    return 0;
}

static void ce_parse_table(void)
{
    if (ce_parse_state != 0)
        return;
    for (int k = 0; k < CE_N_KERNELS; k++)
        if (ce_parse_signature(k) < 0) {
            ce_parse_state = -1;
            return;
        }
    ce_parse_state = 1;
}

const ce_arg *ce_kernel_args(int kernel, int *n)
{
    ce_parse_table();
    if (ce_parse_state < 0 || kernel < 0 || kernel >= CE_N_KERNELS)
        return NULL;
    *n = ce_parsed_count[kernel];
    return ce_parsed_args[kernel];
}

const char *ce_kernel_table_error(void)
{
    ce_parse_table();
    return ce_parse_state < 0 ? ce_parse_error : NULL;
}

/* ---- helpers ------------------------------------------------------------------ */

static ptrdiff_t ce_min(ptrdiff_t a, ptrdiff_t b)
{
    return a < b ? a : b;
}

static ptrdiff_t ce_blocks_of(ptrdiff_t n, ptrdiff_t block)
{
    return (n + block - 1) / block;
}

static char *ce_at2(const ce_operand *op, ptrdiff_t a, ptrdiff_t b)
{
    return op->data + a * op->strides[0] + b * op->strides[1];
}

static ptrdiff_t ce_target_at(const ce_operand *op, ptrdiff_t a, ptrdiff_t b)
{
    const char *p = ce_at2(op, a, b);
    return op->itemsize == 4 ? (ptrdiff_t) * (const int32_t *)p : (ptrdiff_t) * (const int64_t *)p;
}

static int ce_is_index_kernel(int kernel)
{
    return kernel == CE_K_softmax_xent_index || kernel == CE_K_categorical_xent_index
           || kernel == CE_K_nll_index || kernel == CE_K_softmax_xent_index_ext;
}

/* The kernels of cross_entropy's z_loss and softcap. */
static int ce_is_logit_transform_kernel(int kernel)
{
    return kernel == CE_K_softmax_xent_index_ext || kernel == CE_K_softmax_xent_soft_ext;
}

static int ce_is_objective_row_kernel(int kernel)
{
    return kernel == CE_K_softmax_objective_index || kernel == CE_K_softmax_objective_soft;
}

/* An evaluation kernel runs as its loss's kernel without a gradient (the
 * same row functions, so the same bits), plus the ranks when asked. */
static int ce_loss_of_eval_kernel(int kernel)
{
    switch (kernel) {
    case CE_K_softmax_xent_index_eval:
        return CE_K_softmax_xent_index;
    case CE_K_categorical_xent_index_eval:
        return CE_K_categorical_xent_index;
    case CE_K_nll_index_eval:
        return CE_K_nll_index;
    default:
        return kernel;
    }
}

static int ce_is_activation_row_kernel(int kernel)
{
    return kernel == CE_K_softmax || kernel == CE_K_log_softmax || kernel == CE_K_logsumexp;
}

/* Whether element r*cols + k of an (R, K) operand sits at data + (r*cols + k)*itemsize. */
static int ce_flat_contiguous(const ce_operand *op, ptrdiff_t rows, ptrdiff_t cols)
{
    return (cols <= 1 || op->strides[1] == op->itemsize)
           && (rows <= 1 || op->strides[0] == cols * op->itemsize);
}

static int ce_threads_for(ptrdiff_t work, ptrdiff_t n_blocks, int n_threads)
{
    if (work < CE_PARALLEL_MIN_WORK || n_blocks < 2 || n_threads < 2)
        return 1;
    return (int)ce_min(n_threads, n_blocks);
}

/* ---- targets ------------------------------------------------------------------ */

#define CE_DEFINE_KEPT_IN_RUN(T, SUF)                                                          \
    static ptrdiff_t ce_kept_in_run_##SUF(const char *first, ptrdiff_t step, ptrdiff_t run,    \
                                          ptrdiff_t ignore_index)                              \
    {                                                                                          \
        ptrdiff_t kept = 0;                                                                    \
        if (step == (ptrdiff_t)sizeof(T)) {                                                    \
            const T *t = (const T *)first;                                                     \
            for (ptrdiff_t i = 0; i < run; i++)                                                \
                kept += t[i] != ignore_index;                                                  \
        } else {                                                                               \
            for (ptrdiff_t i = 0; i < run; i++)                                                \
                kept += *(const T *)(first + i * step) != ignore_index;                        \
        }                                                                                      \
        return kept;                                                                           \
    }
CE_DEFINE_KEPT_IN_RUN(int32_t, i32)
CE_DEFINE_KEPT_IN_RUN(int64_t, i64)

/* How many of the n rows from (a, b) on are not ignored. */
static ptrdiff_t ce_kept_rows(const ce_operand *target, ptrdiff_t a, ptrdiff_t b, ptrdiff_t n,
                              ptrdiff_t ignore_index)
{
    ptrdiff_t inner = target->shape[1], kept = 0;
    while (n > 0) {
        ptrdiff_t run = ce_min(n, inner - b);
        const char *row = ce_at2(target, a, b);
        kept += target->itemsize == 4 ? ce_kept_in_run_i32(row, target->strides[1], run, ignore_index)
                                      : ce_kept_in_run_i64(row, target->strides[1], run, ignore_index);
        n -= run;
        a++;
        b = 0;
    }
    return kept;
}

ptrdiff_t ce_first_bad_target(const ce_operand *target, ptrdiff_t n_classes, ptrdiff_t ignore_index,
                              ptrdiff_t *kept)
{
    ptrdiff_t inner = target->shape[1];
    *kept = 0;
    for (ptrdiff_t a = 0; a < target->shape[0]; a++) {
        const char *row = ce_at2(target, a, 0);
        if (target->strides[1] == target->itemsize || inner == 1) {
            /* A contiguous run: the vectorised scan. */
            ptrdiff_t run_kept, bad;
            bad = target->itemsize == 4
                      ? ce_scan_targets_i32((const int32_t *)row, inner, n_classes, ignore_index, &run_kept)
                      : ce_scan_targets_i64((const int64_t *)row, inner, n_classes, ignore_index, &run_kept);
            if (bad >= 0)
                return a * inner + bad;
            *kept += run_kept;
            continue;
        }
        for (ptrdiff_t b = 0; b < inner; b++) {
            ptrdiff_t t = ce_target_at(target, a, b);
            if ((t < 0 || t >= n_classes) && t != ignore_index)
                return a * inner + b;
            *kept += t != ignore_index;
        }
    }
    return -1;
}

/* Per row (double)cw[t] * (double)s, 0 when ignored, summed per block;
 * without targets (sample_weight_sum) the sum of (double)s. */
static void ce_weight_sum_block(const ce_call *c, ptrdiff_t block, double *block_sum)
{
    const ce_operand *target = &c->op[CE_TARGET], *s = &c->op[CE_SAMPLE_WEIGHT];
    ptrdiff_t first = block * CE_BLOCK_ROWS, n = ce_min(CE_BLOCK_ROWS, c->n_rows - first);
    ptrdiff_t a = first / c->inner, b = first - a * c->inner;
    double weights[CE_BLOCK_ROWS];
    if (c->opt.class_weight == NULL && s->data == NULL) {
        /* Weights of 1 and 0: the sum is the exact count of rows kept. */
        *block_sum = (double)ce_kept_rows(target, a, b, n, c->opt.ignore_index);
        return;
    }
    for (ptrdiff_t i = 0; i < n; i++) {
        int kept = 1;
        weights[i] = 1.0;
        if (target->data != NULL) {
            ptrdiff_t t = ce_target_at(target, a, b);
            kept = t != c->opt.ignore_index;
            weights[i] = !kept ? 0.0 : c->opt.class_weight != NULL ? c->opt.class_weight[t] : 1.0;
        }
        if (kept && s->data != NULL) {
            const char *p = ce_at2(s, a, b);
            weights[i] *= s->itemsize == 4 ? (double)*(const float *)p : *(const double *)p;
        }
        if (++b == c->inner)
            b = 0, a++;
    }
    *block_sum = ce_sum_f64(weights, n);
}

int ce_kernel_reduces(int kernel)
{
    int n = 0;
    const ce_arg *args = ce_kernel_args(kernel, &n);
    for (int i = 0; args != NULL && i < n; i++)
        if (args[i].kind == CE_ARG_ACC)
            return 1;
    return 0;
}

/* ---- 2-byte floats ---------------------------------------------------------------- */

static uint32_t ce_float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float ce_bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* IEEE binary16 -> binary32, exact for every value; a NaN keeps its payload
 * and comes out quiet, as the F16C instruction gives it.  The exponent is
 * rebased by 127 - 15; Inf/NaN get the rest of the way to 255; a subnormal
 * (or zero) m * 2^-24 is built as the normal float 2^-14 * (1 + m/1024)
 * less 2^-14, an exact subtraction.  Branch-free, so it vectorises. */
static float ce_float16_to_float32(uint16_t h)
{
    uint32_t magnitude = (uint32_t)(h & 0x7fffu) << 13, sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = magnitude & 0x0f800000u;
    uint32_t normal = magnitude + 0x38000000u;
    uint32_t inf_nan = (magnitude + 0x70000000u) | ((magnitude & 0x007fe000u) != 0 ? 0x00400000u : 0u);
    uint32_t subnormal = ce_float_bits(ce_bits_float(magnitude + 0x38800000u) - 0x1p-14f);
    uint32_t bits = exponent == 0x0f800000u ? inf_nan : exponent == 0 ? subnormal : normal;
    return ce_bits_float(bits | sign);
}

static float ce_bfloat16_to_float32(uint16_t h)
{
    return ce_bits_float((uint32_t)h << 16);   /* bfloat16 is the top half of a float32 */
}

#ifdef CE_HAVE_X86_WIDENING
/* n contiguous 2-byte floats, 8 per instruction (F16C's vcvtph2ps; a shift
 * for bfloat16), the bits of the scalar functions above.  A row of n >= 8
 * ends with the 8 entries before its end, overlapping the last full group
 * (widening an entry twice gives the same float; a scalar tail would cost
 * more than the rest of a short row).  Returns how many it widened: n, or
 * 0 for n < 8. */
__attribute__((target("avx2,f16c"))) static ptrdiff_t ce_widen_half_avx2(const uint16_t *h, ptrdiff_t n, int half,
                                                                         float *dst)
{
    if (n < 8)
        return 0;
    for (ptrdiff_t i = 0;; i += 8) {
        if (i + 8 > n)
            i = n - 8;
        __m128i narrow = _mm_loadu_si128((const __m128i *)(h + i));
        __m256 wide = half == CE_HALF_FLOAT16
                          ? _mm256_cvtph_ps(narrow)
                          : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(narrow), 16));
        _mm256_storeu_ps(dst + i, wide);
        if (i + 8 == n)
            return n;
    }
}

/* The vector widening goes with the SIMD variant in use: CROSSENT_SIMD=
 * baseline (or set_simd("baseline")) keeps to the portable loops. */
static int ce_widen_with_avx2(void)
{
    return ce_simd_name()[0] != 'b' && __builtin_cpu_supports("f16c");
}
#endif

/* dst[i] = the 2-byte float at src + i*stride, widened to float32;
 * vector: ce_widen_with_avx2(), asked once by callers that widen many rows. */
static void ce_widen_half_with(const char *src, ptrdiff_t stride, ptrdiff_t n, int half, int vector,
                               float *dst)
{
    ptrdiff_t i = 0;
    if (stride == 2) {
        const uint16_t *h = (const uint16_t *)src;
#ifdef CE_HAVE_X86_WIDENING
        if (vector)
            i = ce_widen_half_avx2(h, n, half, dst);
#endif
        if (half == CE_HALF_BFLOAT16)
            for (; i < n; i++)
                dst[i] = ce_bfloat16_to_float32(h[i]);
        else
            for (; i < n; i++)
                dst[i] = ce_float16_to_float32(h[i]);
        return;
    }
    for (; i < n; i++) {
        uint16_t h = *(const uint16_t *)(src + i * stride);
        dst[i] = half == CE_HALF_BFLOAT16 ? ce_bfloat16_to_float32(h) : ce_float16_to_float32(h);
    }
}

static int ce_widen_vector(void)
{
#ifdef CE_HAVE_X86_WIDENING
    return ce_widen_with_avx2();
#else
    return 0;
#endif
}

static void ce_widen_half(const char *src, ptrdiff_t stride, ptrdiff_t n, int half, float *dst)
{
    ce_widen_half_with(src, stride, n, half, ce_widen_vector(), dst);
}

/* ---- the typed blocks ---------------------------------------------------------- */

#define F float
#define SUF f32
#include "crossent_blocks_typed.h"
#undef F
#undef SUF

#define F double
#define SUF f64
#include "crossent_blocks_typed.h"
#undef F
#undef SUF

/* ---- planning and running ------------------------------------------------------- */

int ce_call_plan(ce_call *c, int n_threads)
{
    const ce_operand *rows;
    ptrdiff_t n_blocks;
    c->shared_rows = 0;
    c->row_losses = NULL;
    c->grab = 1;
    switch (ce_kernel_over[c->kernel]) {
    case CE_ELEMENTS:
        return c->f32 ? ce_plan_elementwise_f32(c, n_threads) : ce_plan_elementwise_f64(c, n_threads);
    case CE_ROWS:
        c->eval = c->kernel != ce_loss_of_eval_kernel(c->kernel);
        c->kernel = ce_loss_of_eval_kernel(c->kernel);
        return c->f32 ? ce_plan_rows_f32(c, n_threads) : ce_plan_rows_f64(c, n_threads);
    default: /* CE_WEIGHTS: rows of the targets, or of the sample weights */
        rows = c->op[CE_TARGET].data != NULL ? &c->op[CE_TARGET] : &c->op[CE_SAMPLE_WEIGHT];
        c->inner = rows->shape[1];
        c->n_rows = rows->shape[0] * c->inner;
        n_blocks = ce_blocks_of(c->n_rows, CE_BLOCK_ROWS);
        c->n_units = n_blocks;
        c->work = c->n_rows;
        c->scratch_bytes = 0;
        c->threads = ce_threads_for(c->work, n_blocks, n_threads);
        c->grab = ce_blocks_per_grab(n_blocks, c->threads);
        return CE_OK;
    }
}

void ce_call_unit(const ce_call *c, ptrdiff_t u, void *scratch, double *unit_sum)
{
    switch (ce_kernel_over[c->kernel]) {
    case CE_ELEMENTS:
        if (c->f32)
            ce_elementwise_unit_f32(c, u, (float *)scratch, unit_sum);
        else
            ce_elementwise_unit_f64(c, u, (double *)scratch, unit_sum);
        return;
    case CE_ROWS:
        if (c->f32)
            ce_rows_unit_f32(c, u, (float *)scratch, unit_sum);
        else
            ce_rows_unit_f64(c, u, (double *)scratch, unit_sum);
        return;
    default:
        ce_weight_sum_block(c, u, unit_sum);
    }
}

int ce_call_finish(ce_call *c, const double *unit_sums, int failed, double *acc)
{
    if (!failed) {
        if (c->shared_rows) {
            if (c->f32)
                ce_sum_shared_rows_f32(c, acc);
            else
                ce_sum_shared_rows_f64(c, acc);
        } else {
            for (ptrdiff_t u = 0; unit_sums != NULL && u < c->n_units; u++)
                *acc += unit_sums[u];
        }
    }
    free(c->row_losses);
    c->row_losses = NULL;
    return failed ? CE_ERR_NOMEM : CE_OK;
}

int ce_call_run_serial(ce_call *c, double *acc)
{
    void *scratch = NULL;
    double unit_sum, total = *acc;
    if (c->scratch_bytes > 0 && (scratch = malloc(c->scratch_bytes)) == NULL)
        return ce_call_finish(c, NULL, 1, acc);
    for (ptrdiff_t u = 0; u < c->n_units; u++) {
        ce_call_unit(c, u, scratch, &unit_sum);
        if (!c->shared_rows)
            total += unit_sum;
    }
    free(scratch);
    *acc = total;
    return ce_call_finish(c, NULL, 0, acc);
}
