/*
 * crossent_loops.c -- the C backend's loops (see crossent_loops.h for the
 * blocking rules).  This file holds what does not depend on the float dtype:
 * the block runner (threads + deterministic block sums), strided indexing and
 * target reading.  The dtype-specific loops are written once, in
 * crossent_loops_typed.h, and instantiated below for float and double.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define CE_OMP(directive) _Pragma(#directive)
#else
#define CE_OMP(directive)
#endif

#include "crossent_rows.h"
#include "crossent_loops.h"

/* ---- the block runner -------------------------------------------------- */

/* Below this many elements of work, waking a second thread costs more than it
 * saves (the same threshold as the Cython loops). */
#define CE_PARALLEL_MIN_WORK 32768

/* Processes one block.  scratch is this thread's staging memory (NULL when the
 * plan asked for none); block_sum is NULL for kernels that reduce nothing. */
typedef void (*ce_block_worker)(const void *job, char *scratch, ptrdiff_t block, double *block_sum);

typedef struct {
    ptrdiff_t n_blocks;
    ptrdiff_t work;  /* elements visited: small jobs stay on one thread */
    int n_threads;
    size_t scratch_bytes;  /* staging memory each thread needs */
    ce_block_worker worker;
    const void *job;
} ce_block_plan;

/* This thread's staging memory for the plan (NULL when it needs none);
 * *ok = 0 when it cannot be allocated. */
static char *ce_thread_scratch(const ce_block_plan *plan, int *ok)
{
    char *scratch = NULL;
    if (plan->scratch_bytes > 0)
        scratch = (char *)malloc(plan->scratch_bytes);
    *ok = plan->scratch_bytes == 0 || scratch != NULL;
    return scratch;
}

static void ce_work_block(const ce_block_plan *plan, char *scratch, double *block_sums, ptrdiff_t block)
{
    plan->worker(plan->job, scratch, block, block_sums != NULL ? &block_sums[block] : NULL);
}

/* Runs every block of the plan, then adds the block sums to *acc (when acc is
 * not NULL) in block order: the bits of *acc never depend on n_threads. */
static int ce_run_blocks(const ce_block_plan *plan, double *acc)
{
    ptrdiff_t n_blocks = plan->n_blocks;
    double single_sum, *block_sums = NULL;
    int threads = plan->n_threads < 1 ? 1 : plan->n_threads;
    int status = CE_OK;

    if (n_blocks <= 0)
        return CE_OK;
    if (threads > n_blocks)
        threads = (int)n_blocks;
    if (plan->work < CE_PARALLEL_MIN_WORK)
        threads = 1;
    if (acc != NULL) {
        block_sums = n_blocks == 1 ? &single_sum : (double *)malloc((size_t)n_blocks * sizeof(double));
        if (block_sums == NULL)
            return CE_ERR_NOMEM;
    }
#ifdef _OPENMP
    if (threads > 1) {
        /* Blocks are handed out a few at a time (dynamic, see
         * ce_blocks_per_grab), not in fixed halves: on a busy machine a
         * thread whose core is taken does less of the work instead of
         * holding up the others.  The bits do not change: each block's sum
         * goes to its own slot. */
        ptrdiff_t grab = ce_blocks_per_grab(n_blocks, threads);
        CE_OMP(omp parallel num_threads(threads))
        {
            int ok;
            char *scratch = ce_thread_scratch(plan, &ok);
            if (!ok) {
                CE_OMP(omp atomic write)
                status = CE_ERR_NOMEM;
            }
            CE_OMP(omp for schedule(dynamic, grab))
            for (ptrdiff_t b = 0; b < n_blocks; b++)
                if (ok)
                    ce_work_block(plan, scratch, block_sums, b);
            free(scratch);
        }
    } else
#endif
    {
        int ok;
        char *scratch = ce_thread_scratch(plan, &ok);
        for (ptrdiff_t b = 0; ok && b < n_blocks; b++)
            ce_work_block(plan, scratch, block_sums, b);
        free(scratch);
        if (!ok)
            status = CE_ERR_NOMEM;
    }
    if (status == CE_OK && acc != NULL)
        for (ptrdiff_t b = 0; b < n_blocks; b++)
            *acc += block_sums[b];
    if (block_sums != &single_sum)
        free(block_sums);
    return status;
}

static ptrdiff_t ce_blocks_of(ptrdiff_t n, ptrdiff_t block)
{
    return (n + block - 1) / block;
}

static ptrdiff_t ce_min(ptrdiff_t a, ptrdiff_t b)
{
    return a < b ? a : b;
}

/* ---- strided indexing ---------------------------------------------------- */

/* Element offset of flat index `flat` of a 2-D operand (C order). */
static ptrdiff_t ce_flat_offset(const ce_array *a, ptrdiff_t flat)
{
    ptrdiff_t r = flat / a->shape[1];
    return r * a->strides[0] + (flat - r * a->shape[1]) * a->strides[1];
}

/* Whether flat elements [start, start + n) of a 2-D operand are consecutive in
 * memory (then the block functions can read or write them in place). */
static int ce_flat_range_is_contiguous(const ce_array *a, ptrdiff_t start, ptrdiff_t n)
{
    ptrdiff_t K = a->shape[1], k;
    if (n <= 1)
        return 1;
    k = start % K;
    if (k + n <= K)  /* inside one row */
        return a->strides[1] == 1;
    return (a->strides[1] == 1 || K == 1) && a->strides[0] == K;
}

/* Whether a 2-D operand is C-contiguous, so that no block needs staging. */
static int ce_is_flat_contiguous(const ce_array *a)
{
    return ce_flat_range_is_contiguous(a, 0, a->shape[0] * a->shape[1]);
}

/* Element offset of row (a, b) of a 2-D per-row operand or a 3-D row operand. */
static ptrdiff_t ce_row_offset(const ce_array *arr, ptrdiff_t a, ptrdiff_t b)
{
    return a * arr->strides[0] + b * arr->strides[1];
}

static ptrdiff_t ce_read_target(const ce_array *target, ptrdiff_t a, ptrdiff_t b)
{
    ptrdiff_t offset = ce_row_offset(target, a, b);
    if (target->itemsize == 4)
        return (ptrdiff_t)((const int32_t *)target->data)[offset];
    return (ptrdiff_t)((const int64_t *)target->data)[offset];
}

ptrdiff_t ce_first_bad_index(const ce_array *target2, ptrdiff_t n_classes, ptrdiff_t ignore_index)
{
    ptrdiff_t A = target2->shape[0], B = target2->shape[1], kept, bad;
    for (ptrdiff_t a = 0; a < A; a++) {
        if (target2->strides[1] == 1 || B == 1) {
            /* A contiguous run: the vectorised scan. */
            ptrdiff_t offset = ce_row_offset(target2, a, 0);
            bad = target2->itemsize == 4
                      ? ce_scan_targets_i32((const int32_t *)target2->data + offset, B, n_classes,
                                            ignore_index, &kept)
                      : ce_scan_targets_i64((const int64_t *)target2->data + offset, B, n_classes,
                                            ignore_index, &kept);
            if (bad >= 0)
                return a * B + bad;
            continue;
        }
        for (ptrdiff_t b = 0; b < B; b++) {
            ptrdiff_t t = ce_read_target(target2, a, b);
            if ((t < 0 || t >= n_classes) && t != ignore_index)
                return a * B + b;
        }
    }
    return -1;
}

int ce_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---- the typed loops ----------------------------------------------------- */

#define F float
#define SUF f32
#include "crossent_loops_typed.h"
#undef F
#undef SUF

#define F double
#define SUF f64
#include "crossent_loops_typed.h"
#undef F
#undef SUF
