/*
 * crossent_blocks_typed.h -- the blocks of one float dtype.  Not a normal
 * header: crossent_blocks.c includes it once per dtype with
 *   F    the C type of the data (float, double)
 *   SUF  the suffix of the crossent_rows.h functions for it (f32, f64)
 * so that the float32 and float64 blocks are one source.
 *
 * Where a kernel's math is named: ce_elementwise_block (elementwise
 * kernels), ce_row_loss (multiclass losses, one row), ce_row_activation
 * (softmax, log_softmax, logsumexp, one row), and the batched row functions
 * in ce_plain_index_block / ce_activation_batch / ce_xent_index_tile.
 */
#ifndef CE_BLOCKS_TYPED_ONCE
#define CE_BLOCKS_TYPED_ONCE
#define CE_PASTE_(name, suffix) name##_##suffix
#define CE_PASTE(name, suffix) CE_PASTE_(name, suffix)
/* CE_T(ce_sum) is ce_sum_f32 or ce_sum_f64. */
#define CE_T(name) CE_PASTE(name, SUF)
/* A staging tile holds at most this many elements.  Gathering several rows
 * at once reads a Fortran-ordered operand a cache line (and a page) at a
 * time instead of one element per page; the tile stays within L2. */
#define CE_TILE_ELEMS 16384
#endif

/* ---- elementwise kernels ------------------------------------------------------ */

/* The block function of the call's kernel (its row of CE_KERNELS) on n
 * contiguous elements; p[slot] is NULL for an absent operand. */
#define CE_IN(slot) p[CE_##slot]
#define CE_OPT(field) c->opt.field
#define CE_CASE_CE_ELEMENTS(name, fn, args) \
    case CE_K_##name:                       \
        CE_T(fn) args;                      \
        break;
#define CE_CASE_CE_ROWS(name, ...)
#define CE_CASE_CE_WEIGHTS(name, ...)
#define CE_CASE_CE_SCAN(name, ...)
#define CE_ELEMENTWISE_CASE(name, over, signature, ...) CE_CASE_##over(name, __VA_ARGS__)
static void CE_T(ce_elementwise_block)(const ce_call *c, F **p, ptrdiff_t n)
{
    switch (c->kernel) {
        CE_KERNELS(CE_ELEMENTWISE_CASE)
    }
}
#undef CE_IN
#undef CE_OPT

/* dst[j] = the j-th F at row + j*stride.  Every other element (a view
 * x[..., ::2]) gets its own loop, which the compiler turns into vector
 * loads and shuffles. */
static void CE_T(ce_gather_row)(const char *row, ptrdiff_t stride, ptrdiff_t n, F *dst)
{
    if (stride == (ptrdiff_t)sizeof(F)) {
        memcpy(dst, row, (size_t)n * sizeof(F));
    } else if (stride == (ptrdiff_t)(2 * sizeof(F))) {
        const F *src = (const F *)row;
        for (ptrdiff_t j = 0; j < n; j++)
            dst[j] = src[2 * j];
    } else {
        for (ptrdiff_t j = 0; j < n; j++)
            dst[j] = *(const F *)(row + j * stride);
    }
}

/* row + j*stride = src[j], the inverse of ce_gather_row. */
static void CE_T(ce_scatter_row)(const F *src, ptrdiff_t n, char *row, ptrdiff_t stride)
{
    if (stride == (ptrdiff_t)sizeof(F)) {
        memcpy(row, src, (size_t)n * sizeof(F));
    } else if (stride == (ptrdiff_t)(2 * sizeof(F))) {
        F *dst = (F *)row;
        for (ptrdiff_t j = 0; j < n; j++)
            dst[2 * j] = src[j];
    } else {
        for (ptrdiff_t j = 0; j < n; j++)
            *(F *)(row + j * stride) = src[j];
    }
}

/* dst[i] = op[flat index start + i] for i < n (C order of (R, cols)). */
static void CE_T(ce_gather_flat)(const ce_operand *op, ptrdiff_t cols, ptrdiff_t start, ptrdiff_t n, F *dst)
{
    ptrdiff_t r = start / cols, k = start - r * cols, i = 0;
    while (i < n) {
        const char *row = op->data + r * op->strides[0] + k * op->strides[1];
        ptrdiff_t take = ce_min(cols - k, n - i);
        if (sizeof(F) == sizeof(float) && op->half)
            ce_widen_half(row, op->strides[1], take, op->half, (float *)(dst + i));
        else
            CE_T(ce_gather_row)(row, op->strides[1], take, dst + i);
        i += take;
        k = 0;
        r++;
    }
}

/* op[flat index start + i] = src[i] for i < n. */
static void CE_T(ce_scatter_flat)(const ce_operand *op, ptrdiff_t cols, ptrdiff_t start, ptrdiff_t n, const F *src)
{
    ptrdiff_t r = start / cols, k = start - r * cols, i = 0;
    while (i < n) {
        char *row = op->data + r * op->strides[0] + k * op->strides[1];
        ptrdiff_t take = ce_min(cols - k, n - i);
        CE_T(ce_scatter_row)(src + i, take, row, op->strides[1]);
        i += take;
        k = 0;
        r++;
    }
}

static void CE_T(ce_elementwise_unit)(const ce_call *c, ptrdiff_t block, F *scratch, double *block_sum)
{
    ptrdiff_t start = block * CE_BLOCK_ELEMS, n = ce_min(CE_BLOCK_ELEMS, c->total - start);
    F *p[CE_N_SLOTS];
    for (int i = 0; i < CE_N_SLOTS; i++) {
        if (!c->needed[i]) {
            p[i] = NULL;
        } else if (c->slot[i] < 0) {
            p[i] = (F *)c->op[i].data + start;
        } else {
            p[i] = scratch + c->slot[i] * c->block_len;
            if (i < CE_LOSSES)
                CE_T(ce_gather_flat)(&c->op[i], c->cols, start, n, p[i]);
        }
    }
    CE_T(ce_elementwise_block)(c, p, n);
    for (int i = CE_LOSSES; i < CE_N_SLOTS; i++)
        if (c->needed[i] && c->slot[i] >= 0 && c->op[i].data != NULL)
            CE_T(ce_scatter_flat)(&c->op[i], c->cols, start, n, p[i]);
    *block_sum = c->needed[CE_LOSSES] ? CE_T(ce_sum)(p[CE_LOSSES], n) : 0.0;
}

/* Every operand not contiguous over the flat index, or of 2-byte floats
 * (widened while staged), gets a staging slot, and
 * so do the losses of a reducing kernel that were not asked for. */
static int CE_T(ce_plan_elementwise)(ce_call *c, int n_threads)
{
    ptrdiff_t rows = c->op[CE_X].shape[0], n_slots = 0, n_blocks;
    int reduces = ce_kernel_reduces(c->kernel);
    c->cols = c->op[CE_X].shape[1];
    c->total = rows * c->cols;
    c->block_len = ce_min(CE_BLOCK_ELEMS, c->total);
    for (int i = 0; i < CE_N_SLOTS; i++) {
        const ce_operand *op = &c->op[i];
        c->needed[i] = op->data != NULL || (i == CE_LOSSES && reduces);
        c->slot[i] = -1;
        if (c->needed[i] && (op->data == NULL || op->half || !ce_flat_contiguous(op, rows, c->cols)))
            c->slot[i] = n_slots++;
    }
    n_blocks = ce_blocks_of(c->total, CE_BLOCK_ELEMS);
    c->n_units = n_blocks;
    c->work = c->total;
    c->scratch_bytes = (size_t)(n_slots * c->block_len) * sizeof(F);
    c->threads = ce_threads_for(c->work, n_blocks, n_threads);
    c->grab = ce_blocks_per_grab(n_blocks, c->threads);
    return CE_OK;
}

/* ---- row kernels ----------------------------------------------------------------- */

/* tile[i*C + j] = op[row_a[i], row_b[i], j]. */
static void CE_T(ce_gather_tile)(const ce_operand *op, const ptrdiff_t *row_a, const ptrdiff_t *row_b,
                                 ptrdiff_t n_rows, ptrdiff_t n_classes, F *tile)
{
    const char *rows[CE_BLOCK_ROWS];
    for (ptrdiff_t i = 0; i < n_rows; i++)
        rows[i] = ce_at2(op, row_a[i], row_b[i]);
    if (sizeof(F) == sizeof(float) && op->half) {
        int vector = ce_widen_vector();
        for (ptrdiff_t i = 0; i < n_rows; i++)
            ce_widen_half_with(rows[i], op->strides[2], n_classes, op->half, vector,
                               (float *)(tile + i * n_classes));
        return;
    }
    for (ptrdiff_t i = 0; i < n_rows; i++)
        CE_T(ce_gather_row)(rows[i], op->strides[2], n_classes, tile + i * n_classes);
}

/* op[row_a[i], row_b[i], j] = tile[i*C + j]. */
static void CE_T(ce_scatter_tile)(const ce_operand *op, const ptrdiff_t *row_a, const ptrdiff_t *row_b,
                                  ptrdiff_t n_rows, ptrdiff_t n_classes, const F *tile)
{
    char *rows[CE_BLOCK_ROWS];
    for (ptrdiff_t i = 0; i < n_rows; i++)
        rows[i] = ce_at2(op, row_a[i], row_b[i]);
    for (ptrdiff_t i = 0; i < n_rows; i++)
        CE_T(ce_scatter_row)(tile + i * n_classes, n_classes, rows[i], op->strides[2]);
}

/* Row (a, b) of op as a contiguous pointer: in place, or its tile row. */
static F *CE_T(ce_row_pointer)(const ce_operand *op, ptrdiff_t a, ptrdiff_t b, ptrdiff_t stage,
                               ptrdiff_t tile_row, ptrdiff_t n_classes, F *scratch)
{
    if (stage < 0)
        return (F *)ce_at2(op, a, b);
    return scratch + stage + tile_row * n_classes;
}

/* The class-weighted loss of one row of a multiclass loss kernel. */
static F CE_T(ce_row_loss)(const ce_call *c, const F *x, const F *y, ptrdiff_t t, F *grad, double scale)
{
    ptrdiff_t n = c->n_classes;
    const double *cw = c->opt.class_weight;
    double ls = c->opt.label_smoothing;
    switch (c->kernel) {
    case CE_K_softmax_xent_index:
        return CE_T(ce_softmax_xent_index_row)(x, n, t, cw, ls, grad, scale);
    case CE_K_softmax_xent_soft:
        return CE_T(ce_softmax_xent_soft_row)(x, y, n, cw, ls, grad, scale);
    case CE_K_categorical_xent_index:
        return CE_T(ce_categorical_xent_index_row)(x, n, t, cw, ls, grad, scale);
    case CE_K_categorical_xent_soft:
        return CE_T(ce_categorical_xent_soft_row)(x, y, n, cw, ls, grad, scale);
    default: /* CE_K_nll_index */
        return CE_T(ce_nll_index_row)(x, n, t, cw, grad, scale);
    }
}

static void CE_T(ce_row_activation)(const ce_call *c, const F *x, F *out, ptrdiff_t a, ptrdiff_t b)
{
    ptrdiff_t n = c->n_classes;
    switch (c->kernel) {
    case CE_K_softmax:
        CE_T(ce_softmax_row)(x, out, n);
        break;
    case CE_K_log_softmax:
        CE_T(ce_log_softmax_row)(x, out, n);
        break;
    default: /* CE_K_logsumexp */
        *(F *)ce_at2(&c->op[CE_LOSSES], a, b) = CE_T(ce_row_logsumexp)(x, n);
    }
}

/* Row (a, b), row tile_row of the current tile: its weighted loss (0 for
 * activations). */
static F CE_T(ce_one_row)(const ce_call *c, ptrdiff_t a, ptrdiff_t b, ptrdiff_t tile_row, F *scratch)
{
    ptrdiff_t n = c->n_classes, t = 0;
    const F *x = CE_T(ce_row_pointer)(&c->op[CE_X], a, b, c->stage_x, tile_row, n, scratch);
    const F *y = NULL;
    F *out = NULL, s = 1, loss = 0, lse = 0;
    if (c->op[CE_Y].data != NULL)
        y = CE_T(ce_row_pointer)(&c->op[CE_Y], a, b, c->stage_y, tile_row, n, scratch);
    if (c->op[CE_OUT].data != NULL)
        out = CE_T(ce_row_pointer)(&c->op[CE_OUT], a, b, c->stage_out, tile_row, n, scratch);
    if (ce_is_activation_row_kernel(c->kernel)) {
        CE_T(ce_row_activation)(c, x, out, a, b);
        return 0;
    }
    if (c->op[CE_SAMPLE_WEIGHT].data != NULL)
        s = *(const F *)ce_at2(&c->op[CE_SAMPLE_WEIGHT], a, b);
    if (ce_is_index_kernel(c->kernel))
        t = ce_target_at(&c->op[CE_TARGET], a, b);
    if (ce_is_index_kernel(c->kernel) && t == c->opt.ignore_index) {
        for (ptrdiff_t j = 0; out != NULL && j < n; j++)
            out[j] = 0;
    } else if (ce_is_logit_transform_kernel(c->kernel)) {
        F *work = c->stage_work >= 0 ? scratch + c->stage_work : NULL;
        loss = CE_T(ce_softmax_xent_ext_row)(x, y, n, t, c->opt.class_weight, c->opt.label_smoothing,
                                             c->opt.z_loss, c->opt.softcap, out, work,
                                             c->opt.grad_scale * (double)s, &lse)
               * s;
    } else {
        loss = CE_T(ce_row_loss)(c, x, y, t, out, c->opt.grad_scale * (double)s) * s;
    }
    if (c->op[CE_LOSSES].data != NULL)
        *(F *)ce_at2(&c->op[CE_LOSSES], a, b) = loss;
    if (c->op[CE_LSE].data != NULL)
        *(F *)ce_at2(&c->op[CE_LSE], a, b) = lse;
    return loss;
}

/* Softmax cross-entropy rows of 2-byte floats read along their classes,
 * widened into the staging tile: a tile is one row group, which fetches
 * the next tile's rows in its exp loop from their place in memory
 * (ce_rows_after), as in-place float32 rows are fetched (a whole tile
 * widened at once found its rows missing from the cache at every tile). */
static int CE_T(ce_fetched_ahead_half)(const ce_call *c)
{
    return sizeof(F) == sizeof(float) && c->kernel == CE_K_softmax_xent_index && c->op[CE_X].half
           && c->op[CE_X].strides[2] == 2;
}

/* Appends to x_rows (after its `kept` rows) pointers to the rows from row
 * `next` on, up to CE_ROWS_AHEAD of them, for the batched row functions to
 * fetch while they compute; returns how many.  None when the rows are
 * staged (the next tile is gathered, not read in place), but for
 * ce_fetched_ahead_half's rows. */
static ptrdiff_t CE_T(ce_rows_after)(const ce_call *c, ptrdiff_t next, const F **x_rows, ptrdiff_t kept)
{
    int fetched = c->stage_x < 0 || CE_T(ce_fetched_ahead_half)(c);
    ptrdiff_t after = fetched ? ce_min(CE_ROWS_AHEAD, c->n_rows - next) : 0;
    ptrdiff_t a = next / c->inner, b = next - a * c->inner;
    for (ptrdiff_t i = 0; i < after; i++) {
        x_rows[kept + i] = (const F *)ce_at2(&c->op[CE_X], a, b);
        if (++b == c->inner)
            b = 0, a++;
    }
    return after < 0 ? 0 : after;
}

/* ce_one_row over a tile of softmax_xent_index or nll_index rows, with one
 * call of the batched row function for the rows not ignored: it computes
 * short and medium rows several per vector (NLL: runs of rows at once),
 * with the bits of the row function. */
static void CE_T(ce_xent_index_tile)(const ce_call *c, const ptrdiff_t *row_a, const ptrdiff_t *row_b,
                                     ptrdiff_t n_rows, ptrdiff_t next, F *scratch, F *losses)
{
    ptrdiff_t n = c->n_classes, kept = 0;
    const F *x_rows[CE_BLOCK_ROWS + CE_ROWS_AHEAD];
    F *out_rows[CE_BLOCK_ROWS], weights[CE_BLOCK_ROWS], row_losses[CE_BLOCK_ROWS], *out = NULL;
    ptrdiff_t targets[CE_BLOCK_ROWS], tile_rows[CE_BLOCK_ROWS];
    double scales[CE_BLOCK_ROWS];
    int has_out = c->op[CE_OUT].data != NULL;
    for (ptrdiff_t i = 0; i < n_rows; i++) {
        ptrdiff_t t;
        F s = 1;
        if (has_out)
            out = CE_T(ce_row_pointer)(&c->op[CE_OUT], row_a[i], row_b[i], c->stage_out, i, n, scratch);
        t = ce_target_at(&c->op[CE_TARGET], row_a[i], row_b[i]);
        losses[i] = 0;
        if (t == c->opt.ignore_index) {
            for (ptrdiff_t j = 0; out != NULL && j < n; j++)
                out[j] = 0;
            continue;
        }
        if (c->op[CE_SAMPLE_WEIGHT].data != NULL)
            s = *(const F *)ce_at2(&c->op[CE_SAMPLE_WEIGHT], row_a[i], row_b[i]);
        x_rows[kept] = CE_T(ce_row_pointer)(&c->op[CE_X], row_a[i], row_b[i], c->stage_x, i, n, scratch);
        out_rows[kept] = out;
        targets[kept] = t;
        scales[kept] = c->opt.grad_scale * (double)s;
        weights[kept] = s;
        tile_rows[kept++] = i;
    }
    if (c->kernel == CE_K_nll_index)
        CE_T(ce_nll_index_rows)(x_rows, kept, n, targets, c->opt.class_weight, has_out ? out_rows : NULL,
                                scales, row_losses);
    else
        CE_T(ce_softmax_xent_index_rows)(x_rows, kept, CE_T(ce_rows_after)(c, next, x_rows, kept), n, targets,
                                         c->opt.class_weight, c->opt.label_smoothing,
                                         has_out ? out_rows : NULL, scales, row_losses);
    for (ptrdiff_t j = 0; j < kept; j++)
        losses[tile_rows[j]] = row_losses[j] * weights[j];
    if (c->op[CE_LOSSES].data != NULL)
        for (ptrdiff_t i = 0; i < n_rows; i++)
            *(F *)ce_at2(&c->op[CE_LOSSES], row_a[i], row_b[i]) = losses[i];
}

/* A tile of softmax objective rows (softmax_objective_index / _soft): one
 * call of the batched row function, which writes each row's gradient and
 * Hessian; objectives sum no loss. */
static void CE_T(ce_objective_tile)(const ce_call *c, const ptrdiff_t *row_a, const ptrdiff_t *row_b,
                                    ptrdiff_t n_rows, F *scratch, F *losses)
{
    ptrdiff_t n = c->n_classes, targets[CE_BLOCK_ROWS];
    const F *x_rows[CE_BLOCK_ROWS], *y_rows[CE_BLOCK_ROWS];
    F *grad_rows[CE_BLOCK_ROWS], *hess_rows[CE_BLOCK_ROWS], weights[CE_BLOCK_ROWS];
    int soft = c->op[CE_Y].data != NULL, weighted = c->op[CE_SAMPLE_WEIGHT].data != NULL;
    for (ptrdiff_t i = 0; i < n_rows; i++) {
        ptrdiff_t a = row_a[i], b = row_b[i];
        x_rows[i] = CE_T(ce_row_pointer)(&c->op[CE_X], a, b, c->stage_x, i, n, scratch);
        if (soft)
            y_rows[i] = CE_T(ce_row_pointer)(&c->op[CE_Y], a, b, c->stage_y, i, n, scratch);
        else
            targets[i] = ce_target_at(&c->op[CE_TARGET], a, b);
        if (weighted)
            weights[i] = *(const F *)ce_at2(&c->op[CE_SAMPLE_WEIGHT], a, b);
        grad_rows[i] = CE_T(ce_row_pointer)(&c->op[CE_OUT], a, b, c->stage_out, i, n, scratch);
        hess_rows[i] = CE_T(ce_row_pointer)(&c->op[CE_HESS], a, b, c->stage_hess, i, n, scratch);
        losses[i] = 0;
    }
    CE_T(ce_softmax_objective_rows)(x_rows, n_rows, n, soft ? NULL : targets, soft ? y_rows : NULL,
                                    weighted ? weights : NULL, c->opt.hessian_rule, c->opt.hessian_factor,
                                    c->opt.min_hessian, grad_rows, hess_rows);
}

/* ce_plain_index_block's softmax rows of an evaluation kernel (no
 * gradient): the losses of ce_softmax_xent_index_rows, and the ranks from
 * the same pass (ce_softmax_xent_index_eval_rows).  Returns 1: the ranks
 * are written. */
static int CE_T(ce_eval_index_block)(const ce_call *c, ptrdiff_t first, ptrdiff_t n_rows, const F *const *x_rows,
                                     ptrdiff_t after, const ptrdiff_t *targets, const ptrdiff_t *kept_rows,
                                     ptrdiff_t kept, F *losses, F *kept_losses, const F *row_losses)
{
    const ce_operand *ro = &c->op[CE_RANKS];
    F ranks[CE_BLOCK_ROWS];
    CE_T(ce_softmax_xent_index_eval_rows)(x_rows, kept, after, c->n_classes, targets, c->opt.class_weight,
                                          c->opt.label_smoothing, kept_losses, ro->data != NULL ? ranks : NULL);
    if (kept < n_rows)
        for (ptrdiff_t j = 0; j < kept; j++)
            losses[kept_rows[j]] = row_losses[j];
    if (ro->data == NULL)
        return 1;
    char *rank_row = ro->data + first * ro->strides[1];
    for (ptrdiff_t i = 0; i < n_rows; i++)
        *(F *)(rank_row + i * ro->strides[1]) = (F)NAN;
    for (ptrdiff_t j = 0; j < kept; j++)
        *(F *)(rank_row + kept_rows[j] * ro->strides[1]) = ranks[j];
    return 1;
}

/* Rows with class-index targets that ce_plain_index_block can take: one
 * leading index, rows used in place, no sample weights. */
static int CE_T(ce_plain_index_rows)(const ce_call *c)
{
    return ce_is_index_kernel(c->kernel) && c->op[CE_X].shape[0] == 1 && c->stage_x < 0 && c->stage_out < 0
           && c->op[CE_SAMPLE_WEIGHT].data == NULL && !ce_is_logit_transform_kernel(c->kernel);
}

/* ce_one_row (softmax_xent_index: ce_xent_index_tile) for the rows of
 * ce_plain_index_rows, their operands found by plain strides: the same row
 * functions (one call of the batched one where there is one) on the same
 * operands, a weight of 1 leaving a row's loss and gradient scale as they
 * are.  Returns 1 when it also wrote the rows' ranks (an evaluation
 * kernel's ranks_out2, see ce_rank_rows), else 0. */
static int CE_T(ce_plain_index_losses)(const ce_call *c, ptrdiff_t first, ptrdiff_t n_rows, F *losses)
{
    const ce_operand *xo = &c->op[CE_X], *oo = &c->op[CE_OUT], *to = &c->op[CE_TARGET];
    ptrdiff_t n = c->n_classes, kept = 0;
    const char *x = xo->data + first * xo->strides[1];
    char *out = oo->data != NULL ? oo->data + first * oo->strides[1] : NULL;
    const char *target = to->data + first * to->strides[1];
    const F *x_rows[CE_BLOCK_ROWS + CE_ROWS_AHEAD];
    F *out_rows[CE_BLOCK_ROWS], row_losses[CE_BLOCK_ROWS], *kept_losses;
    ptrdiff_t targets[CE_BLOCK_ROWS], kept_rows[CE_BLOCK_ROWS], after;
    double scales[CE_BLOCK_ROWS];
    for (ptrdiff_t i = 0; i < n_rows; i++) {
        const char *tp = target + i * to->strides[1];
        ptrdiff_t t = to->itemsize == 4 ? (ptrdiff_t) * (const int32_t *)tp : (ptrdiff_t) * (const int64_t *)tp;
        if (t == c->opt.ignore_index) {
            losses[i] = 0;
            if (out != NULL)
                memset(out + i * oo->strides[1], 0, (size_t)n * sizeof(F));
            continue;
        }
        x_rows[kept] = (const F *)(x + i * xo->strides[1]);
        out_rows[kept] = out != NULL ? (F *)(out + i * oo->strides[1]) : NULL;
        targets[kept] = t;
        scales[kept] = c->opt.grad_scale;
        kept_rows[kept++] = i;
    }
    if (c->kernel == CE_K_categorical_xent_index) {
        for (ptrdiff_t j = 0; j < kept; j++)
            losses[kept_rows[j]] = CE_T(ce_row_loss)(c, x_rows[j], NULL, targets[j], out_rows[j], c->opt.grad_scale);
        return 0;
    }
    /* No row ignored (the usual case): the batched function writes losses itself. */
    kept_losses = kept == n_rows ? losses : row_losses;
    after = c->kernel == CE_K_softmax_xent_index ? CE_T(ce_rows_after)(c, first + n_rows, x_rows, kept) : 0;
    if (c->eval && c->kernel == CE_K_softmax_xent_index)
        return CE_T(ce_eval_index_block)(c, first, n_rows, x_rows, after, targets, kept_rows, kept, losses,
                                         kept_losses, row_losses);
    if (c->kernel == CE_K_nll_index)
        CE_T(ce_nll_index_rows)(x_rows, kept, n, targets, c->opt.class_weight, out != NULL ? out_rows : NULL,
                                scales, kept_losses);
    else
        CE_T(ce_softmax_xent_index_rows)(x_rows, kept, after, n, targets, c->opt.class_weight,
                                         c->opt.label_smoothing, out != NULL ? out_rows : NULL, scales,
                                         kept_losses);
    if (kept < n_rows)
        for (ptrdiff_t j = 0; j < kept; j++)
            losses[kept_rows[j]] = row_losses[j];
    return 0;
}

/* ce_plain_index_losses, and the block's losses stored in losses_out2
 * when the call has it (one leading index: row first + i is (0, first + i)). */
static int CE_T(ce_plain_index_block)(const ce_call *c, ptrdiff_t first, ptrdiff_t n_rows, F *losses)
{
    const ce_operand *lo = &c->op[CE_LOSSES];
    int ranked = CE_T(ce_plain_index_losses)(c, first, n_rows, losses);
    if (lo->data != NULL)
        for (ptrdiff_t i = 0; i < n_rows; i++)
            *(F *)(lo->data + (first + i) * lo->strides[1]) = losses[i];
    return ranked;
}

/* softmax, log_softmax or logsumexp rows that ce_plain_activation_block can
 * take: one leading index, rows used in place. */
static int CE_T(ce_plain_activation_rows)(const ce_call *c)
{
    return ce_is_activation_row_kernel(c->kernel) && c->op[CE_X].shape[0] == 1 && c->stage_x < 0
           && c->stage_out < 0;
}

/* ce_one_row over the rows of ce_plain_activation_rows: one call of the
 * batched row function, the same bits. */
/* The activation of n_rows rows by the batched row functions (which group
 * short rows); logsumexp's values go to values. */
static void CE_T(ce_activation_batch)(const ce_call *c, const F *const *x_rows, F *const *out_rows,
                                      ptrdiff_t n_rows, F *values)
{
    if (c->kernel == CE_K_logsumexp)
        CE_T(ce_logsumexp_rows)(x_rows, n_rows, c->n_classes, values);
    else if (c->kernel == CE_K_softmax)
        CE_T(ce_softmax_rows)(x_rows, n_rows, c->n_classes, out_rows);
    else
        CE_T(ce_log_softmax_rows)(x_rows, n_rows, c->n_classes, out_rows);
}

static void CE_T(ce_plain_activation_block)(const ce_call *c, ptrdiff_t first, ptrdiff_t n_rows)
{
    const ce_operand *xo = &c->op[CE_X], *vo = &c->op[CE_LOSSES], *oo = &c->op[CE_OUT];
    const F *x_rows[CE_BLOCK_ROWS];
    F *out_rows[CE_BLOCK_ROWS], values[CE_BLOCK_ROWS];
    for (ptrdiff_t i = 0; i < n_rows; i++) {
        x_rows[i] = (const F *)(xo->data + (first + i) * xo->strides[1]);
        out_rows[i] = oo->data != NULL ? (F *)(oo->data + (first + i) * oo->strides[1]) : NULL;
    }
    CE_T(ce_activation_batch)(c, x_rows, out_rows, n_rows, values);
    if (c->kernel == CE_K_logsumexp)
        for (ptrdiff_t i = 0; i < n_rows; i++)
            *(F *)(vo->data + (first + i) * vo->strides[1]) = values[i];
}

/* ce_plain_activation_block for a tile of rows (a, b), each row in place or
 * staged in scratch (ce_staged_rows). */
static void CE_T(ce_activation_tile)(const ce_call *c, const ptrdiff_t *row_a, const ptrdiff_t *row_b,
                                     ptrdiff_t n_rows, F *scratch)
{
    ptrdiff_t n = c->n_classes;
    const F *x_rows[CE_BLOCK_ROWS];
    F *out_rows[CE_BLOCK_ROWS], values[CE_BLOCK_ROWS];
    for (ptrdiff_t i = 0; i < n_rows; i++) {
        x_rows[i] = CE_T(ce_row_pointer)(&c->op[CE_X], row_a[i], row_b[i], c->stage_x, i, n, scratch);
        out_rows[i] = c->op[CE_OUT].data != NULL
                          ? CE_T(ce_row_pointer)(&c->op[CE_OUT], row_a[i], row_b[i], c->stage_out, i, n, scratch)
                          : NULL;
    }
    CE_T(ce_activation_batch)(c, x_rows, out_rows, n_rows, values);
    if (c->kernel == CE_K_logsumexp)
        for (ptrdiff_t i = 0; i < n_rows; i++)
            *(F *)ce_at2(&c->op[CE_LOSSES], row_a[i], row_b[i]) = values[i];
}

/* Rows first .. first+n-1 of any row kernel, a tile at a time: operands
 * whose rows are strided are staged through scratch. */
static void CE_T(ce_staged_rows)(const ce_call *c, ptrdiff_t first, ptrdiff_t n, F *scratch, F *losses)
{
    ptrdiff_t a = first / c->inner, b = first - a * c->inner, C = c->n_classes;
    ptrdiff_t row_a[CE_BLOCK_ROWS], row_b[CE_BLOCK_ROWS];
    for (ptrdiff_t i = 0; i < n; i++) {
        row_a[i] = a;
        row_b[i] = b;
        if (++b == c->inner)
            b = 0, a++;
    }
    for (ptrdiff_t tile_first = 0; tile_first < n; tile_first += c->tile_rows) {
        ptrdiff_t tile_len = ce_min(c->tile_rows, n - tile_first);
        const ptrdiff_t *ta = row_a + tile_first, *tb = row_b + tile_first;
        if (c->stage_x >= 0)
            CE_T(ce_gather_tile)(&c->op[CE_X], ta, tb, tile_len, C, scratch + c->stage_x);
        if (c->stage_y >= 0)
            CE_T(ce_gather_tile)(&c->op[CE_Y], ta, tb, tile_len, C, scratch + c->stage_y);
        if (c->kernel == CE_K_softmax_xent_index || c->kernel == CE_K_nll_index)
            CE_T(ce_xent_index_tile)(c, ta, tb, tile_len, first + tile_first + tile_len, scratch,
                                     losses + tile_first);
        else if (ce_is_activation_row_kernel(c->kernel))
            CE_T(ce_activation_tile)(c, ta, tb, tile_len, scratch);
        else if (ce_is_objective_row_kernel(c->kernel))
            CE_T(ce_objective_tile)(c, ta, tb, tile_len, scratch, losses + tile_first);
        else
            for (ptrdiff_t i = tile_first; i < tile_first + tile_len; i++)
                losses[i] = CE_T(ce_one_row)(c, row_a[i], row_b[i], i - tile_first, scratch);
        if (c->stage_out >= 0)
            CE_T(ce_scatter_tile)(&c->op[CE_OUT], ta, tb, tile_len, C, scratch + c->stage_out);
        if (c->stage_hess >= 0)
            CE_T(ce_scatter_tile)(&c->op[CE_HESS], ta, tb, tile_len, C, scratch + c->stage_hess);
    }
}

/* The evaluation kernels' ranks_out2: the target rank of rows first ..
 * first+n-1 (NaN for an ignored row), right after their losses, while the
 * rows are still in the cache.  A row strided along its classes is copied
 * into scratch (the staging tile, free again by now) first. */
static void CE_T(ce_rank_rows)(const ce_call *c, ptrdiff_t first, ptrdiff_t n, F *scratch)
{
    const ce_operand *xo = &c->op[CE_X], *ro = &c->op[CE_RANKS];
    ptrdiff_t C = c->n_classes, a = first / c->inner, b = first - a * c->inner, kept = 0;
    const F *rows[CE_BLOCK_ROWS];
    ptrdiff_t targets[CE_BLOCK_ROWS];
    F ranks[CE_BLOCK_ROWS];
    F *dst[CE_BLOCK_ROWS];
    int in_place = c->stage_x < 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        ptrdiff_t t = ce_target_at(&c->op[CE_TARGET], a, b);
        F *rank = (F *)ce_at2(ro, a, b);
        if (t == c->opt.ignore_index) {
            *rank = (F)NAN;
        } else if (in_place) {
            rows[kept] = (const F *)ce_at2(xo, a, b);
            targets[kept] = t;
            dst[kept++] = rank;
        } else {
            CE_T(ce_gather_row)(ce_at2(xo, a, b), xo->strides[2], C, scratch + c->stage_x);
            rows[0] = scratch + c->stage_x;
            CE_T(ce_target_ranks)(rows, 1, C, &t, rank);
        }
        if (++b == c->inner)
            b = 0, a++;
    }
    CE_T(ce_target_ranks)(rows, kept, C, targets, ranks);
    for (ptrdiff_t j = 0; j < kept; j++)
        *dst[j] = ranks[j];
}

static void CE_T(ce_row_block)(const ce_call *c, ptrdiff_t block, F *scratch, double *block_sum)
{
    ptrdiff_t first = block * CE_BLOCK_ROWS, n = ce_min(CE_BLOCK_ROWS, c->n_rows - first);
    F losses[CE_BLOCK_ROWS];
    int ranked = 0;
    if (CE_T(ce_plain_index_rows)(c))
        ranked = CE_T(ce_plain_index_block)(c, first, n, losses);
    else if (CE_T(ce_plain_activation_rows)(c))
        CE_T(ce_plain_activation_block)(c, first, n);
    else
        CE_T(ce_staged_rows)(c, first, n, scratch, losses);
    if (c->op[CE_RANKS].data != NULL && !ranked)
        CE_T(ce_rank_rows)(c, first, n, scratch);
    *block_sum = ce_is_activation_row_kernel(c->kernel) ? 0.0 : CE_T(ce_sum)(losses, n);
}

/* Shared mode: unit u is a run of consecutive rows, each row's loss kept in
 * c->row_losses until ce_call_finish sums them by block. */
static void CE_T(ce_shared_rows_unit)(const ce_call *c, ptrdiff_t u)
{
    F *losses = (F *)c->row_losses;
    ptrdiff_t first = u * c->run_rows, n = ce_min(c->run_rows, c->n_rows - first);
    int ranked = 0;
    if (CE_T(ce_plain_index_rows)(c))
        ranked = CE_T(ce_plain_index_block)(c, first, n, losses + first);
    else if (CE_T(ce_plain_activation_rows)(c))
        CE_T(ce_plain_activation_block)(c, first, n);
    else
        for (ptrdiff_t i = first; i < first + n; i++)
            losses[i] = CE_T(ce_one_row)(c, i / c->inner, i % c->inner, 0, NULL);
    if (c->op[CE_RANKS].data != NULL && !ranked)
        CE_T(ce_rank_rows)(c, first, n, NULL);
}

static void CE_T(ce_rows_unit)(const ce_call *c, ptrdiff_t u, F *scratch, double *unit_sum)
{
    if (c->shared_rows)
        CE_T(ce_shared_rows_unit)(c, u);
    else
        CE_T(ce_row_block)(c, u, scratch, unit_sum);
}

/* The rows' losses of a shared-mode call, summed per block in row order as
 * ce_row_block sums them: the bits of the block path. */
static void CE_T(ce_sum_shared_rows)(const ce_call *c, double *acc)
{
    const F *losses = (const F *)c->row_losses;
    if (ce_is_activation_row_kernel(c->kernel))
        return;
    for (ptrdiff_t first = 0; first < c->n_rows; first += CE_BLOCK_ROWS)
        *acc += CE_T(ce_sum)(losses + first, ce_min(CE_BLOCK_ROWS, c->n_rows - first));
}

/* Where op's tile lives in scratch (elements), or -1 when its rows are used
 * in place (2-byte floats never are: they are widened into the tile). */
static ptrdiff_t CE_T(ce_stage_offset)(const ce_operand *op, ptrdiff_t tile_elems, ptrdiff_t *scratch_elems)
{
    ptrdiff_t offset;
    if (op->data == NULL || (!op->half && (op->shape[2] <= 1 || op->strides[2] == (ptrdiff_t)sizeof(F))))
        return -1;
    offset = *scratch_elems;
    *scratch_elems += tile_elems;
    return offset;
}

static int CE_T(ce_plan_rows)(ce_call *c, int n_threads)
{
    ptrdiff_t scratch_elems = 0, n_blocks, tile_elems, per_tile;
    c->inner = c->op[CE_X].shape[1];
    c->n_rows = c->op[CE_X].shape[0] * c->inner;
    c->n_classes = c->op[CE_X].shape[2];
    per_tile = CE_TILE_ELEMS / (c->n_classes > 1 ? c->n_classes : 1);
    c->tile_rows = per_tile < 1 ? 1 : ce_min(CE_BLOCK_ROWS, per_tile);
    if (CE_T(ce_fetched_ahead_half)(c))
        c->tile_rows = ce_min(c->tile_rows, CE_ROWS_AHEAD);
    tile_elems = c->tile_rows * c->n_classes;
    c->stage_x = CE_T(ce_stage_offset)(&c->op[CE_X], tile_elems, &scratch_elems);
    c->stage_y = CE_T(ce_stage_offset)(&c->op[CE_Y], tile_elems, &scratch_elems);
    c->stage_out = CE_T(ce_stage_offset)(&c->op[CE_OUT], tile_elems, &scratch_elems);
    c->stage_hess = CE_T(ce_stage_offset)(&c->op[CE_HESS], tile_elems, &scratch_elems);
    c->stage_work = -1;
    if (ce_is_logit_transform_kernel(c->kernel) && c->opt.softcap != 0 && c->op[CE_OUT].data == NULL) {
        /* Without a gradient buffer the capped logits of a row go here. */
        c->stage_work = scratch_elems;
        scratch_elems += c->n_classes;
    }
    n_blocks = ce_blocks_of(c->n_rows, CE_BLOCK_ROWS);
    c->work = c->n_rows * c->n_classes;
    /* Objectives run by tiles only (ce_objective_tile). */
    if (scratch_elems == 0 && n_blocks < n_threads && !ce_is_objective_row_kernel(c->kernel) && c->n_rows > 1 && c->work >= CE_PARALLEL_MIN_WORK) {
        /* Fewer blocks than threads (a few wide rows, e.g. 32 x 128 000 is one
         * block): the threads share the rows.  A row's result does not depend
         * on the thread computing it.  Where rows go to a batched function,
         * a few runs of consecutive rows per thread let it fetch a run's next
         * row during the current row's exps. */
        c->threads = (int)ce_min(n_threads, c->n_rows);
        c->run_rows = ce_min(CE_BLOCK_ROWS, c->n_rows / (4 * c->threads));
        if (c->run_rows < 1 || !(CE_T(ce_plain_index_rows)(c) || CE_T(ce_plain_activation_rows)(c)))
            c->run_rows = 1;
        c->n_units = ce_blocks_of(c->n_rows, c->run_rows);
        c->scratch_bytes = 0;
        c->shared_rows = 1;
        c->row_losses = malloc((size_t)c->n_rows * sizeof(F));
        return c->row_losses == NULL ? CE_ERR_NOMEM : CE_OK;
    }
    c->n_units = n_blocks;
    c->scratch_bytes = (size_t)scratch_elems * sizeof(F);
    c->threads = ce_threads_for(c->work, n_blocks, n_threads);
    c->grab = ce_blocks_per_grab(n_blocks, c->threads);
    return CE_OK;
}
