/*
 * crossent_loops_typed.h -- the loops of one float dtype.  Not a normal
 * header: crossent_loops.c includes it once per dtype with
 *   F    the C type of the data (float, double)
 *   SUF  the suffix of the crossent_rows.h functions for it (f32, f64)
 * so that the float32 and float64 loops are one source.
 */
#ifndef CE_TYPED
#define CE_PASTE_(name, suffix) name##_##suffix
#define CE_PASTE(name, suffix) CE_PASTE_(name, suffix)
/* CE_TYPED(ce_sum) is ce_sum_f32 or ce_sum_f64. */
#define CE_TYPED(name) CE_PASTE(name, SUF)
#define CE_MAX_ELEMENTWISE_INPUTS 5
#endif

/* ---- staging: contiguous views of strided operands ---------------------- */

/* Flat elements [start, start + n) of a 2-D operand: a pointer into the
 * operand when they are consecutive there, else `buffer` filled with them.
 * NULL for an absent operand. */
static const F *CE_TYPED(ce_stage_flat)(const ce_array *a, ptrdiff_t start, ptrdiff_t n, F *buffer)
{
    const F *base;
    ptrdiff_t K, r, k, i = 0;
    if (!CE_PRESENT(a))
        return NULL;
    base = (const F *)a->data;
    if (ce_flat_range_is_contiguous(a, start, n))
        return base + ce_flat_offset(a, start);
    K = a->shape[1];
    r = start / K;
    k = start - r * K;
    for (; i < n; r++, k = 0) {
        const F *src = base + r * a->strides[0] + k * a->strides[1];
        ptrdiff_t m = ce_min(K - k, n - i), sk = a->strides[1];
        for (ptrdiff_t j = 0; j < m; j++)
            buffer[i + j] = src[j * sk];
        i += m;
    }
    return buffer;
}

/* Where a block function should write flat elements [start, start + n) of a
 * 2-D output: in place when consecutive, else `buffer` (then scatter it). */
static F *CE_TYPED(ce_output_flat)(const ce_array *a, ptrdiff_t start, ptrdiff_t n, F *buffer)
{
    if (!CE_PRESENT(a))
        return buffer;
    if (ce_flat_range_is_contiguous(a, start, n))
        return (F *)a->data + ce_flat_offset(a, start);
    return buffer;
}

static void CE_TYPED(ce_scatter_flat)(const ce_array *a, ptrdiff_t start, ptrdiff_t n, const F *buffer)
{
    F *base = (F *)a->data;
    ptrdiff_t K = a->shape[1], r = start / K, k = start - r * K, i = 0;
    for (; i < n; r++, k = 0) {
        F *dst = base + r * a->strides[0] + k * a->strides[1];
        ptrdiff_t m = ce_min(K - k, n - i), sk = a->strides[1];
        for (ptrdiff_t j = 0; j < m; j++)
            dst[j * sk] = buffer[i + j];
        i += m;
    }
}

/* Row (a, b) of a 3-D operand, contiguous: in place when its class stride is
 * 1, else gathered into `buffer`.  NULL for an absent operand. */
static const F *CE_TYPED(ce_stage_row)(const ce_array *x, ptrdiff_t a, ptrdiff_t b, F *buffer)
{
    const F *row;
    ptrdiff_t C, sc;
    if (!CE_PRESENT(x))
        return NULL;
    row = (const F *)x->data + ce_row_offset(x, a, b);
    C = x->shape[2];
    sc = x->strides[2];
    if (sc == 1 || C <= 1)
        return row;
    for (ptrdiff_t c = 0; c < C; c++)
        buffer[c] = row[c * sc];
    return buffer;
}

static F *CE_TYPED(ce_output_row)(const ce_array *out, ptrdiff_t a, ptrdiff_t b, F *buffer)
{
    if (out->strides[2] == 1 || out->shape[2] <= 1)
        return (F *)out->data + ce_row_offset(out, a, b);
    return buffer;
}

static void CE_TYPED(ce_scatter_row)(const ce_array *out, ptrdiff_t a, ptrdiff_t b, const F *buffer)
{
    F *row = (F *)out->data + ce_row_offset(out, a, b);
    for (ptrdiff_t c = 0; c < out->shape[2]; c++)
        row[c * out->strides[2]] = buffer[c];
}

/* Whether a 3-D operand's rows must be staged through a buffer. */
static int CE_TYPED(ce_row_needs_buffer)(const ce_array *x)
{
    return CE_PRESENT(x) && x->strides[2] != 1 && x->shape[2] > 1;
}

static F CE_TYPED(ce_read_row_value)(const ce_array *per_row, ptrdiff_t a, ptrdiff_t b)
{
    return ((const F *)per_row->data)[ce_row_offset(per_row, a, b)];
}

/* ---- elementwise kernels -------------------------------------------------- */

typedef struct CE_TYPED(ce_elementwise_job) CE_TYPED(ce_elementwise_job);
/* Computes n outputs (and gradients, when grad is not NULL) from n contiguous
 * elements of each input; absent inputs are NULL. */
typedef void (*CE_TYPED(ce_elementwise_fn))(const F *const *in, F *out, F *grad, ptrdiff_t n,
                                            const CE_TYPED(ce_elementwise_job) *job);

struct CE_TYPED(ce_elementwise_job) {
    CE_TYPED(ce_elementwise_fn) fn;
    const ce_array *in[CE_MAX_ELEMENTWISE_INPUTS];  /* in[0] gives the shape */
    int n_in;
    const ce_array *out;   /* activation output, or losses_out2 (may be absent) */
    const ce_array *grad;  /* may be absent */
    double grad_scale, label_smoothing;
    ptrdiff_t n_elements;
    /* scratch slot (of CE_BLOCK_ELEMS elements) of each operand, -1: none */
    int in_slot[CE_MAX_ELEMENTWISE_INPUTS], out_slot, grad_slot;
};

/* Staging slot `slot` (of CE_BLOCK_ELEMS elements) of a thread's scratch. */
static F *CE_TYPED(ce_slot)(char *scratch, int slot)
{
    return slot < 0 ? NULL : (F *)scratch + (ptrdiff_t)slot * CE_BLOCK_ELEMS;
}

static void CE_TYPED(ce_elementwise_worker)(const void *job_, char *scratch, ptrdiff_t block, double *block_sum)
{
    const CE_TYPED(ce_elementwise_job) *job = (const CE_TYPED(ce_elementwise_job) *)job_;
    const F *in[CE_MAX_ELEMENTWISE_INPUTS];
    ptrdiff_t start = block * CE_BLOCK_ELEMS, n = ce_min(CE_BLOCK_ELEMS, job->n_elements - start);
    F *out_slot = CE_TYPED(ce_slot)(scratch, job->out_slot);
    F *grad_slot = CE_TYPED(ce_slot)(scratch, job->grad_slot);
    F *out, *grad = NULL;

    for (int i = 0; i < job->n_in; i++)
        in[i] = CE_TYPED(ce_stage_flat)(job->in[i], start, n, CE_TYPED(ce_slot)(scratch, job->in_slot[i]));
    out = CE_TYPED(ce_output_flat)(job->out, start, n, out_slot);
    if (CE_PRESENT(job->grad))
        grad = CE_TYPED(ce_output_flat)(job->grad, start, n, grad_slot);

    job->fn(in, out, grad, n, job);

    if (block_sum != NULL)
        *block_sum = CE_TYPED(ce_sum)(out, n);
    if (CE_PRESENT(job->out) && out == out_slot)
        CE_TYPED(ce_scatter_flat)(job->out, start, n, out);
    if (grad != NULL && grad == grad_slot)
        CE_TYPED(ce_scatter_flat)(job->grad, start, n, grad);
}

/* Gives a scratch slot to every operand that is not C-contiguous (and to the
 * losses of a reducing kernel without losses_out), then runs the blocks. */
static int CE_TYPED(ce_run_elementwise)(CE_TYPED(ce_elementwise_job) *job, int reduces, int n_threads, double *acc)
{
    ce_block_plan plan;
    const ce_array *shape = job->in[0];
    int n_slots = 0;

    job->n_elements = shape->shape[0] * shape->shape[1];
    for (int i = 0; i < job->n_in; i++)
        job->in_slot[i] = CE_PRESENT(job->in[i]) && !ce_is_flat_contiguous(job->in[i]) ? n_slots++ : -1;
    job->out_slot = !CE_PRESENT(job->out) || !ce_is_flat_contiguous(job->out) ? n_slots++ : -1;
    job->grad_slot = CE_PRESENT(job->grad) && !ce_is_flat_contiguous(job->grad) ? n_slots++ : -1;

    plan.n_blocks = ce_blocks_of(job->n_elements, CE_BLOCK_ELEMS);
    plan.work = job->n_elements;
    plan.n_threads = n_threads;
    plan.scratch_bytes = (size_t)n_slots * CE_BLOCK_ELEMS * sizeof(F);
    plan.worker = CE_TYPED(ce_elementwise_worker);
    plan.job = job;
    return ce_run_blocks(&plan, reduces ? acc : NULL);
}

static void CE_TYPED(ce_sigmoid_block)(const F *const *in, F *out, F *grad, ptrdiff_t n,
                                      const CE_TYPED(ce_elementwise_job) *job)
{
    (void)grad, (void)job;
    CE_TYPED(ce_sigmoid)(in[0], out, n);
}

static void CE_TYPED(ce_log_sigmoid_block)(const F *const *in, F *out, F *grad, ptrdiff_t n,
                                          const CE_TYPED(ce_elementwise_job) *job)
{
    (void)grad, (void)job;
    CE_TYPED(ce_log_sigmoid)(in[0], out, n);
}

static void CE_TYPED(ce_bce_thunk)(const F *const *in, F *loss, F *grad, ptrdiff_t n,
                                  const CE_TYPED(ce_elementwise_job) *job)
{
    CE_TYPED(ce_bce_block)(in[0], in[1], in[2], in[3], loss, grad, job->grad_scale, n);
}

static void CE_TYPED(ce_bce_logits_thunk)(const F *const *in, F *loss, F *grad, ptrdiff_t n,
                                         const CE_TYPED(ce_elementwise_job) *job)
{
    CE_TYPED(ce_bce_logits_block)(in[0], in[1], in[2], in[3], in[4], job->label_smoothing, loss, grad,
                                  job->grad_scale, n);
}

static void CE_TYPED(ce_mse_thunk)(const F *const *in, F *loss, F *grad, ptrdiff_t n,
                                  const CE_TYPED(ce_elementwise_job) *job)
{
    CE_TYPED(ce_mse_block)(in[0], in[1], in[2], in[3], loss, grad, job->grad_scale, n);
}

static int CE_TYPED(ce_run_activation)(CE_TYPED(ce_elementwise_fn) fn, const ce_array *x2,
                                       const ce_array *out2, int n_threads)
{
    CE_TYPED(ce_elementwise_job) job = {0};
    job.fn = fn;
    job.in[0] = x2;
    job.n_in = 1;
    job.out = out2;
    return CE_TYPED(ce_run_elementwise)(&job, 0, n_threads, NULL);
}

int CE_TYPED(ce_loop_sigmoid)(const ce_array *x2, const ce_array *out2, int n_threads)
{
    return CE_TYPED(ce_run_activation)(CE_TYPED(ce_sigmoid_block), x2, out2, n_threads);
}

int CE_TYPED(ce_loop_log_sigmoid)(const ce_array *x2, const ce_array *out2, int n_threads)
{
    return CE_TYPED(ce_run_activation)(CE_TYPED(ce_log_sigmoid_block), x2, out2, n_threads);
}

/* bce and mse take the same operands. */
static int CE_TYPED(ce_run_pointwise_loss)(CE_TYPED(ce_elementwise_fn) fn, const ce_array *x2,
                                           const ce_array *t2, const ce_array *weight2,
                                           const ce_array *sample_weight2, const ce_array *losses_out2,
                                           const ce_array *grad_out2, double grad_scale, int n_threads,
                                           double *acc)
{
    CE_TYPED(ce_elementwise_job) job = {0};
    job.fn = fn;
    job.in[0] = x2;
    job.in[1] = t2;
    job.in[2] = weight2;
    job.in[3] = sample_weight2;
    job.n_in = 4;
    job.out = losses_out2;
    job.grad = grad_out2;
    job.grad_scale = grad_scale;
    return CE_TYPED(ce_run_elementwise)(&job, 1, n_threads, acc);
}

int CE_TYPED(ce_loop_bce)(const ce_array *p2, const ce_array *y2, const ce_array *weight2,
                          const ce_array *sample_weight2, const ce_array *losses_out2,
                          const ce_array *grad_out2, double grad_scale, int n_threads, double *acc)
{
    return CE_TYPED(ce_run_pointwise_loss)(CE_TYPED(ce_bce_thunk), p2, y2, weight2, sample_weight2,
                                           losses_out2, grad_out2, grad_scale, n_threads, acc);
}

int CE_TYPED(ce_loop_mse)(const ce_array *x2, const ce_array *t2, const ce_array *weight2,
                          const ce_array *sample_weight2, const ce_array *losses_out2,
                          const ce_array *grad_out2, double grad_scale, int n_threads, double *acc)
{
    return CE_TYPED(ce_run_pointwise_loss)(CE_TYPED(ce_mse_thunk), x2, t2, weight2, sample_weight2,
                                           losses_out2, grad_out2, grad_scale, n_threads, acc);
}

int CE_TYPED(ce_loop_bce_with_logits)(const ce_array *z2, const ce_array *y2, const ce_array *weight2,
                                      const ce_array *pos_weight2, const ce_array *sample_weight2,
                                      double label_smoothing, const ce_array *losses_out2,
                                      const ce_array *grad_out2, double grad_scale, int n_threads,
                                      double *acc)
{
    CE_TYPED(ce_elementwise_job) job = {0};
    job.fn = CE_TYPED(ce_bce_logits_thunk);
    job.in[0] = z2;
    job.in[1] = y2;
    job.in[2] = weight2;
    job.in[3] = pos_weight2;
    job.in[4] = sample_weight2;
    job.n_in = 5;
    job.out = losses_out2;
    job.grad = grad_out2;
    job.grad_scale = grad_scale;
    job.label_smoothing = label_smoothing;
    return CE_TYPED(ce_run_elementwise)(&job, 1, n_threads, acc);
}

/* ---- row kernels: softmax, log_softmax, logsumexp ------------------------- */

typedef struct {
    const ce_array *x, *out;  /* out: 3-D for row_map, 2-D for row_reduce */
    void (*row_map)(const F *x, F *out, ptrdiff_t n);
    F (*row_reduce)(const F *x, ptrdiff_t n);
    ptrdiff_t n_rows;
    int x_staged, out_staged;  /* scratch: x row first, then out row */
} CE_TYPED(ce_activation_rows_job);

static void CE_TYPED(ce_activation_row)(const CE_TYPED(ce_activation_rows_job) *job, ptrdiff_t a,
                                        ptrdiff_t b, F *x_buffer, F *out_buffer)
{
    ptrdiff_t C = job->x->shape[2];
    const F *x = CE_TYPED(ce_stage_row)(job->x, a, b, x_buffer);
    if (job->row_map != NULL) {
        F *out = CE_TYPED(ce_output_row)(job->out, a, b, out_buffer);
        job->row_map(x, out, C);
        if (job->out_staged)
            CE_TYPED(ce_scatter_row)(job->out, a, b, out);
    } else {
        ((F *)job->out->data)[ce_row_offset(job->out, a, b)] = job->row_reduce(x, C);
    }
}

static void CE_TYPED(ce_activation_rows_worker)(const void *job_, char *scratch, ptrdiff_t block,
                                                double *block_sum)
{
    const CE_TYPED(ce_activation_rows_job) *job = (const CE_TYPED(ce_activation_rows_job) *)job_;
    ptrdiff_t B = job->x->shape[1], C = job->x->shape[2];
    ptrdiff_t first = block * CE_BLOCK_ROWS, n_rows = ce_min(CE_BLOCK_ROWS, job->n_rows - first);
    ptrdiff_t a = first / B, b = first - a * B;
    F *x_buffer = (F *)scratch, *out_buffer = (F *)scratch + (job->x_staged ? C : 0);
    (void)block_sum;

    for (ptrdiff_t i = 0; i < n_rows; i++) {
        CE_TYPED(ce_activation_row)(job, a, b, x_buffer, out_buffer);
        if (++b == B)
            b = 0, a++;
    }
}

static int CE_TYPED(ce_run_activation_rows)(CE_TYPED(ce_activation_rows_job) *job, int n_threads)
{
    ce_block_plan plan;
    ptrdiff_t C = job->x->shape[2];
    job->n_rows = job->x->shape[0] * job->x->shape[1];
    job->x_staged = CE_TYPED(ce_row_needs_buffer)(job->x);
    job->out_staged = job->row_map != NULL && CE_TYPED(ce_row_needs_buffer)(job->out);
    plan.n_blocks = ce_blocks_of(job->n_rows, CE_BLOCK_ROWS);
    plan.work = job->n_rows * C;
    plan.n_threads = n_threads;
    plan.scratch_bytes = (size_t)(job->x_staged + job->out_staged) * (size_t)C * sizeof(F);
    plan.worker = CE_TYPED(ce_activation_rows_worker);
    plan.job = job;
    if (plan.scratch_bytes == 0 && plan.n_blocks < n_threads && job->n_rows > 1
        && plan.work >= CE_PARALLEL_MIN_WORK) {
        /* A few wide rows: the threads share the rows (nothing is summed). */
        ptrdiff_t B = job->x->shape[1];
        CE_OMP(omp parallel for schedule(dynamic, 1) num_threads((int)ce_min(n_threads, job->n_rows)))
        for (ptrdiff_t i = 0; i < job->n_rows; i++)
            CE_TYPED(ce_activation_row)(job, i / B, i % B, NULL, NULL);
        return CE_OK;
    }
    return ce_run_blocks(&plan, NULL);
}

int CE_TYPED(ce_loop_softmax)(const ce_array *x3, const ce_array *out3, int n_threads)
{
    CE_TYPED(ce_activation_rows_job) job = {0};
    job.x = x3;
    job.out = out3;
    job.row_map = CE_TYPED(ce_softmax_row);
    return CE_TYPED(ce_run_activation_rows)(&job, n_threads);
}

int CE_TYPED(ce_loop_log_softmax)(const ce_array *x3, const ce_array *out3, int n_threads)
{
    CE_TYPED(ce_activation_rows_job) job = {0};
    job.x = x3;
    job.out = out3;
    job.row_map = CE_TYPED(ce_log_softmax_row);
    return CE_TYPED(ce_run_activation_rows)(&job, n_threads);
}

int CE_TYPED(ce_loop_logsumexp)(const ce_array *x3, const ce_array *out2, int n_threads)
{
    CE_TYPED(ce_activation_rows_job) job = {0};
    job.x = x3;
    job.out = out2;
    job.row_reduce = CE_TYPED(ce_row_logsumexp);
    return CE_TYPED(ce_run_activation_rows)(&job, n_threads);
}

/* ---- row kernels: multiclass losses ---------------------------------------- */

typedef struct CE_TYPED(ce_loss_rows_job) CE_TYPED(ce_loss_rows_job);
/* The class-weighted loss of one contiguous row (y: the soft-target row or
 * NULL; target: the class index or -1), writing grad_scale * dl/dx to grad
 * when it is not NULL. */
typedef F (*CE_TYPED(ce_row_loss_fn))(const F *x, const F *y, ptrdiff_t C, ptrdiff_t target,
                                      const CE_TYPED(ce_loss_rows_job) *job, F *grad, double grad_scale);

/* A row function applied to many rows at once (ce_softmax_xent_index_rows). */
typedef void (*CE_TYPED(ce_rows_loss_fn))(const F *const *x, ptrdiff_t rows, ptrdiff_t C,
                                          const ptrdiff_t *target, const double *class_weight,
                                          double label_smoothing, F *const *grad,
                                          const double *grad_scale, F *loss);

struct CE_TYPED(ce_loss_rows_job) {
    CE_TYPED(ce_row_loss_fn) fn;
    CE_TYPED(ce_rows_loss_fn) rows_fn;  /* fn's batched form, or NULL */
    const ce_array *x, *y, *target, *sample_weight, *losses, *grad;  /* absent: NULL or data NULL */
    const double *class_weight;
    ptrdiff_t ignore_index;
    double label_smoothing, grad_scale;
    ptrdiff_t n_rows;
    int x_staged, y_staged, grad_staged;  /* scratch rows, in this order */
};

/* Sample weight times the class-weighted loss of row (a, b); 0 (and a zero
 * gradient) for an ignored row. */
static F CE_TYPED(ce_loss_row)(const CE_TYPED(ce_loss_rows_job) *job, ptrdiff_t a, ptrdiff_t b,
                               F *x_buffer, F *y_buffer, F *grad_buffer)
{
    ptrdiff_t C = job->x->shape[2], target = -1;
    F s = 1, loss = 0, *grad = NULL;

    if (CE_PRESENT(job->grad))
        grad = CE_TYPED(ce_output_row)(job->grad, a, b, grad_buffer);
    if (CE_PRESENT(job->target))
        target = ce_read_target(job->target, a, b);
    if (CE_PRESENT(job->target) && target == job->ignore_index) {
        for (ptrdiff_t c = 0; grad != NULL && c < C; c++)
            grad[c] = 0;
    } else {
        const F *x = CE_TYPED(ce_stage_row)(job->x, a, b, x_buffer);
        const F *y = CE_TYPED(ce_stage_row)(job->y, a, b, y_buffer);
        if (CE_PRESENT(job->sample_weight))
            s = CE_TYPED(ce_read_row_value)(job->sample_weight, a, b);
        loss = job->fn(x, y, C, target, job, grad, job->grad_scale * (double)s) * s;
    }
    if (grad != NULL && job->grad_staged)
        CE_TYPED(ce_scatter_row)(job->grad, a, b, grad);
    return loss;
}

/* ce_loss_row for n_rows rows from (a, b) on, whose rows need no staging:
 * the rows not ignored go to job->rows_fn in one call (the same bits). */
static void CE_TYPED(ce_loss_rows_batched)(const CE_TYPED(ce_loss_rows_job) *job, ptrdiff_t a,
                                           ptrdiff_t b, ptrdiff_t n_rows, F *losses)
{
    ptrdiff_t B = job->x->shape[1], C = job->x->shape[2], kept = 0;
    ptrdiff_t targets[CE_BLOCK_ROWS], block_rows[CE_BLOCK_ROWS];
    const F *x_rows[CE_BLOCK_ROWS];
    F *grad_rows[CE_BLOCK_ROWS], weights[CE_BLOCK_ROWS], row_losses[CE_BLOCK_ROWS];
    double scales[CE_BLOCK_ROWS];

    for (ptrdiff_t i = 0; i < n_rows; i++) {
        F *grad = CE_PRESENT(job->grad) ? CE_TYPED(ce_output_row)(job->grad, a, b, NULL) : NULL;
        ptrdiff_t target = ce_read_target(job->target, a, b);
        losses[i] = 0;
        if (target == job->ignore_index) {
            for (ptrdiff_t c = 0; grad != NULL && c < C; c++)
                grad[c] = 0;
        } else {
            F s = CE_PRESENT(job->sample_weight)
                      ? CE_TYPED(ce_read_row_value)(job->sample_weight, a, b) : 1;
            x_rows[kept] = CE_TYPED(ce_stage_row)(job->x, a, b, NULL);
            grad_rows[kept] = grad;
            targets[kept] = target;
            scales[kept] = job->grad_scale * (double)s;
            weights[kept] = s;
            block_rows[kept++] = i;
        }
        if (++b == B)
            b = 0, a++;
    }
    job->rows_fn(x_rows, kept, C, targets, job->class_weight, job->label_smoothing,
                 CE_PRESENT(job->grad) ? grad_rows : NULL, scales, row_losses);
    for (ptrdiff_t k = 0; k < kept; k++)
        losses[block_rows[k]] = row_losses[k] * weights[k];
}

static void CE_TYPED(ce_loss_rows_worker)(const void *job_, char *scratch, ptrdiff_t block, double *block_sum)
{
    const CE_TYPED(ce_loss_rows_job) *job = (const CE_TYPED(ce_loss_rows_job) *)job_;
    ptrdiff_t B = job->x->shape[1], C = job->x->shape[2];
    ptrdiff_t first = block * CE_BLOCK_ROWS, n_rows = ce_min(CE_BLOCK_ROWS, job->n_rows - first);
    ptrdiff_t a = first / B, b = first - a * B;
    F *x_buffer = (F *)scratch;
    F *y_buffer = x_buffer + (job->x_staged ? C : 0);
    F *grad_buffer = y_buffer + (job->y_staged ? C : 0);
    F losses[CE_BLOCK_ROWS];

    if (job->rows_fn != NULL && !job->x_staged && !job->grad_staged)
        CE_TYPED(ce_loss_rows_batched)(job, a, b, n_rows, losses);
    else
        for (ptrdiff_t i = 0, ra = a, rb = b; i < n_rows; i++) {
            losses[i] = CE_TYPED(ce_loss_row)(job, ra, rb, x_buffer, y_buffer, grad_buffer);
            if (++rb == B)
                rb = 0, ra++;
        }
    for (ptrdiff_t i = 0; CE_PRESENT(job->losses) && i < n_rows; i++) {
        ((F *)job->losses->data)[ce_row_offset(job->losses, a, b)] = losses[i];
        if (++b == B)
            b = 0, a++;
    }
    if (block_sum != NULL)
        *block_sum = CE_TYPED(ce_sum)(losses, n_rows);
}

/* Fewer row blocks than threads (a few wide rows, e.g. 32 x 128 000 is one
 * block): the threads share the rows instead of whole blocks.  A row's result
 * does not depend on the thread computing it, and each block's losses are
 * summed afterwards in row order as the worker sums them, so the bits are
 * those of the block path.  Rows used in place only (no staging buffers). */
static int CE_TYPED(ce_run_loss_rows_shared)(const CE_TYPED(ce_loss_rows_job) *job, int n_threads,
                                             double *acc)
{
    ptrdiff_t n_rows = job->n_rows, B = job->x->shape[1];
    F *losses = (F *)malloc((size_t)n_rows * sizeof(F));
    if (losses == NULL)
        return CE_ERR_NOMEM;
    CE_OMP(omp parallel for schedule(dynamic, 1) num_threads(n_threads))
    for (ptrdiff_t i = 0; i < n_rows; i++) {
        losses[i] = CE_TYPED(ce_loss_row)(job, i / B, i % B, NULL, NULL, NULL);
        if (CE_PRESENT(job->losses))
            ((F *)job->losses->data)[ce_row_offset(job->losses, i / B, i % B)] = losses[i];
    }
    for (ptrdiff_t first = 0; acc != NULL && first < n_rows; first += CE_BLOCK_ROWS)
        *acc += CE_TYPED(ce_sum)(losses + first, ce_min(CE_BLOCK_ROWS, n_rows - first));
    free(losses);
    return CE_OK;
}

static int CE_TYPED(ce_run_loss_rows)(CE_TYPED(ce_loss_rows_job) *job, int n_threads, double *acc)
{
    ce_block_plan plan;
    ptrdiff_t C = job->x->shape[2];
    job->n_rows = job->x->shape[0] * job->x->shape[1];
    job->x_staged = CE_TYPED(ce_row_needs_buffer)(job->x);
    job->y_staged = CE_TYPED(ce_row_needs_buffer)(job->y);
    job->grad_staged = CE_TYPED(ce_row_needs_buffer)(job->grad);
    plan.n_blocks = ce_blocks_of(job->n_rows, CE_BLOCK_ROWS);
    plan.work = job->n_rows * C;
    plan.n_threads = n_threads;
    plan.scratch_bytes = (size_t)(job->x_staged + job->y_staged + job->grad_staged) * (size_t)C * sizeof(F);
    plan.worker = CE_TYPED(ce_loss_rows_worker);
    plan.job = job;
    if (plan.scratch_bytes == 0 && plan.n_blocks < n_threads && job->n_rows > 1
        && plan.work >= CE_PARALLEL_MIN_WORK)
        return CE_TYPED(ce_run_loss_rows_shared)(job, (int)ce_min(n_threads, job->n_rows), acc);
    return ce_run_blocks(&plan, acc);
}

static F CE_TYPED(ce_softmax_xent_index_thunk)(const F *x, const F *y, ptrdiff_t C, ptrdiff_t target,
                                               const CE_TYPED(ce_loss_rows_job) *job, F *grad,
                                               double grad_scale)
{
    (void)y;
    return CE_TYPED(ce_softmax_xent_index_row)(x, C, target, job->class_weight, job->label_smoothing,
                                               grad, grad_scale);
}

static F CE_TYPED(ce_softmax_xent_soft_thunk)(const F *x, const F *y, ptrdiff_t C, ptrdiff_t target,
                                              const CE_TYPED(ce_loss_rows_job) *job, F *grad,
                                              double grad_scale)
{
    (void)target;
    return CE_TYPED(ce_softmax_xent_soft_row)(x, y, C, job->class_weight, job->label_smoothing, grad,
                                              grad_scale);
}

static F CE_TYPED(ce_categorical_xent_index_thunk)(const F *x, const F *y, ptrdiff_t C, ptrdiff_t target,
                                                   const CE_TYPED(ce_loss_rows_job) *job, F *grad,
                                                   double grad_scale)
{
    (void)y;
    return CE_TYPED(ce_categorical_xent_index_row)(x, C, target, job->class_weight,
                                                   job->label_smoothing, grad, grad_scale);
}

static F CE_TYPED(ce_categorical_xent_soft_thunk)(const F *x, const F *y, ptrdiff_t C, ptrdiff_t target,
                                                  const CE_TYPED(ce_loss_rows_job) *job, F *grad,
                                                  double grad_scale)
{
    (void)target;
    return CE_TYPED(ce_categorical_xent_soft_row)(x, y, C, job->class_weight, job->label_smoothing,
                                                  grad, grad_scale);
}

static F CE_TYPED(ce_nll_index_thunk)(const F *x, const F *y, ptrdiff_t C, ptrdiff_t target,
                                      const CE_TYPED(ce_loss_rows_job) *job, F *grad, double grad_scale)
{
    (void)y;
    return CE_TYPED(ce_nll_index_row)(x, C, target, job->class_weight, grad, grad_scale);
}

/* The operands every multiclass loss shares. */
static void CE_TYPED(ce_loss_rows_init)(CE_TYPED(ce_loss_rows_job) *job, CE_TYPED(ce_row_loss_fn) fn,
                                        const ce_array *x3, const double *class_weight,
                                        const ce_array *sample_weight2, const ce_array *losses_out2,
                                        const ce_array *grad_out3, double grad_scale)
{
    memset(job, 0, sizeof(*job));
    job->fn = fn;
    job->x = x3;
    job->class_weight = class_weight;
    job->sample_weight = sample_weight2;
    job->losses = losses_out2;
    job->grad = grad_out3;
    job->grad_scale = grad_scale;
}

static int CE_TYPED(ce_run_index_loss)(CE_TYPED(ce_row_loss_fn) fn,
                                       CE_TYPED(ce_rows_loss_fn) rows_fn, const ce_array *x3,
                                       const ce_array *target2, const double *class_weight,
                                       const ce_array *sample_weight2, ptrdiff_t ignore_index,
                                       double label_smoothing, const ce_array *losses_out2,
                                       const ce_array *grad_out3, double grad_scale, int n_threads,
                                       double *acc)
{
    CE_TYPED(ce_loss_rows_job) job;
    CE_TYPED(ce_loss_rows_init)(&job, fn, x3, class_weight, sample_weight2, losses_out2, grad_out3, grad_scale);
    job.rows_fn = rows_fn;
    job.target = target2;
    job.ignore_index = ignore_index;
    job.label_smoothing = label_smoothing;
    return CE_TYPED(ce_run_loss_rows)(&job, n_threads, acc);
}

static int CE_TYPED(ce_run_soft_loss)(CE_TYPED(ce_row_loss_fn) fn, const ce_array *x3, const ce_array *y3,
                                      const double *class_weight, const ce_array *sample_weight2,
                                      double label_smoothing, const ce_array *losses_out2,
                                      const ce_array *grad_out3, double grad_scale, int n_threads,
                                      double *acc)
{
    CE_TYPED(ce_loss_rows_job) job;
    CE_TYPED(ce_loss_rows_init)(&job, fn, x3, class_weight, sample_weight2, losses_out2, grad_out3, grad_scale);
    job.y = y3;
    job.label_smoothing = label_smoothing;
    return CE_TYPED(ce_run_loss_rows)(&job, n_threads, acc);
}

int CE_TYPED(ce_loop_softmax_xent_index)(const ce_array *z3, const ce_array *target2,
                                         const double *class_weight, const ce_array *sample_weight2,
                                         ptrdiff_t ignore_index, double label_smoothing,
                                         const ce_array *losses_out2, const ce_array *grad_out3,
                                         double grad_scale, int n_threads, double *acc)
{
    return CE_TYPED(ce_run_index_loss)(CE_TYPED(ce_softmax_xent_index_thunk),
                                       CE_TYPED(ce_softmax_xent_index_rows), z3, target2,
                                       class_weight, sample_weight2, ignore_index, label_smoothing,
                                       losses_out2, grad_out3, grad_scale, n_threads, acc);
}

int CE_TYPED(ce_loop_categorical_xent_index)(const ce_array *p3, const ce_array *target2,
                                             const double *class_weight, const ce_array *sample_weight2,
                                             ptrdiff_t ignore_index, double label_smoothing,
                                             const ce_array *losses_out2, const ce_array *grad_out3,
                                             double grad_scale, int n_threads, double *acc)
{
    return CE_TYPED(ce_run_index_loss)(CE_TYPED(ce_categorical_xent_index_thunk), NULL, p3, target2,
                                       class_weight, sample_weight2, ignore_index, label_smoothing,
                                       losses_out2, grad_out3, grad_scale, n_threads, acc);
}

int CE_TYPED(ce_loop_nll_index)(const ce_array *x3, const ce_array *target2, const double *class_weight,
                                const ce_array *sample_weight2, ptrdiff_t ignore_index,
                                const ce_array *losses_out2, const ce_array *grad_out3, double grad_scale,
                                int n_threads, double *acc)
{
    return CE_TYPED(ce_run_index_loss)(CE_TYPED(ce_nll_index_thunk), NULL, x3, target2, class_weight,
                                       sample_weight2, ignore_index, 0.0, losses_out2, grad_out3,
                                       grad_scale, n_threads, acc);
}

int CE_TYPED(ce_loop_softmax_xent_soft)(const ce_array *z3, const ce_array *y3, const double *class_weight,
                                        const ce_array *sample_weight2, double label_smoothing,
                                        const ce_array *losses_out2, const ce_array *grad_out3,
                                        double grad_scale, int n_threads, double *acc)
{
    return CE_TYPED(ce_run_soft_loss)(CE_TYPED(ce_softmax_xent_soft_thunk), z3, y3, class_weight,
                                      sample_weight2, label_smoothing, losses_out2, grad_out3, grad_scale,
                                      n_threads, acc);
}

int CE_TYPED(ce_loop_categorical_xent_soft)(const ce_array *p3, const ce_array *y3,
                                            const double *class_weight, const ce_array *sample_weight2,
                                            double label_smoothing, const ce_array *losses_out2,
                                            const ce_array *grad_out3, double grad_scale, int n_threads,
                                            double *acc)
{
    return CE_TYPED(ce_run_soft_loss)(CE_TYPED(ce_categorical_xent_soft_thunk), p3, y3, class_weight,
                                      sample_weight2, label_smoothing, losses_out2, grad_out3, grad_scale,
                                      n_threads, acc);
}

/* ---- index_weight_sum: the denominator of a weighted mean ---------------- */

typedef struct {
    const ce_array *target, *sample_weight;
    const double *class_weight;
    ptrdiff_t ignore_index, n_rows;
} CE_TYPED(ce_weight_sum_job);

static void CE_TYPED(ce_weight_sum_worker)(const void *job_, char *scratch, ptrdiff_t block, double *block_sum)
{
    const CE_TYPED(ce_weight_sum_job) *job = (const CE_TYPED(ce_weight_sum_job) *)job_;
    ptrdiff_t B = job->target->shape[1];
    ptrdiff_t first = block * CE_BLOCK_ROWS, n_rows = ce_min(CE_BLOCK_ROWS, job->n_rows - first);
    ptrdiff_t a = first / B, b = first - a * B;
    double weights[CE_BLOCK_ROWS];
    (void)scratch;

    for (ptrdiff_t i = 0; i < n_rows; i++) {
        ptrdiff_t t = ce_read_target(job->target, a, b);
        double w = 0.0;
        if (t != job->ignore_index) {
            w = job->class_weight != NULL ? job->class_weight[t] : 1.0;
            if (CE_PRESENT(job->sample_weight))
                w *= (double)CE_TYPED(ce_read_row_value)(job->sample_weight, a, b);
        }
        weights[i] = w;
        if (++b == B)
            b = 0, a++;
    }
    if (block_sum != NULL)
        *block_sum = ce_sum_f64(weights, n_rows);
}

int CE_TYPED(ce_loop_index_weight_sum)(const ce_array *target2, const double *class_weight,
                                       const ce_array *sample_weight2, ptrdiff_t ignore_index,
                                       int n_threads, double *acc)
{
    ce_block_plan plan;
    CE_TYPED(ce_weight_sum_job) job;
    job.target = target2;
    job.sample_weight = sample_weight2;
    job.class_weight = class_weight;
    job.ignore_index = ignore_index;
    job.n_rows = target2->shape[0] * target2->shape[1];
    plan.n_blocks = ce_blocks_of(job.n_rows, CE_BLOCK_ROWS);
    plan.work = job.n_rows;
    plan.n_threads = n_threads;
    plan.scratch_bytes = 0;
    plan.worker = CE_TYPED(ce_weight_sum_worker);
    plan.job = &job;
    return ce_run_blocks(&plan, acc);
}
