/*
 * crossent_rows_typed.h -- one dtype's row/block functions; included by
 * crossent_rows_impl.h with CE_REAL = float, CE_TS = f32 and again with
 * CE_REAL = double, CE_TS = f64.  No include guard on purpose.
 *
 * Precision: elementwise math runs in the row's dtype (the float32
 * primitives of crossent_math.h are accurate to a few ulp); every sum over a
 * row or block runs in float64 lanes; scalars per row (log of the sum, the
 * loss) are float64 and rounded once.
 */

/* ---- reductions ------------------------------------------------------- */

static double CE_FN(ce_sum)(const CE_REAL *x, ptrdiff_t n)
{
    double acc[CE_LANES] = {0};
    ptrdiff_t i = 0;
    for (; i + CE_LANES <= n; i += CE_LANES)
        for (int j = 0; j < CE_LANES; j++)
            acc[j] += (double)x[i + j];
    for (int j = 0; i + j < n; j++)
        acc[j] += (double)x[i + j];
    return CE_VARIANT_NAME(ce_lanes_total)(acc);
}

/* The last n % CE_LANES entries of a row, copied into a full chunk whose
 * missing entries are `pad`: every loop then runs one fixed-width body over
 * whole chunks, vectorised, with no scalar tail.  The pads are neutral
 * (-inf for a max, +inf for a min) or their results are replaced by a
 * neutral value (see sum_exp_block), so a padded chunk gives the bits of
 * the unpadded reduction. */
CE_INLINE void CE_FN(pad_chunk)(CE_REAL *chunk, const CE_REAL *src, ptrdiff_t len, CE_REAL pad)
{
    /* One conditional load per lane (a masked vector load where the target
     * has one) rather than a copy: no store-forwarding stall on the chunk. */
    for (int j = 0; j < CE_LANES; j++) {
        CE_REAL v = pad;
        if (j < len)
            v = src[j];
        chunk[j] = v;
    }
}

/* m = max(m, v) per lane by the plain select (maxps), and a separate NaN
 * lane: a select between ready values of one width is what vectorises (a
 * combined condition such as (v > m) | (v != v) compiles to branches).
 * with_min: also lo = min(lo, v), NaN ignored. */
CE_INLINE void CE_FN(max_chunk)(const CE_REAL *z, CE_REAL *m, CE_REAL *nan, CE_REAL *lo,
                                int with_min)
{
    CE_NO_UNROLL
    for (int j = 0; j < CE_LANES; j++) {
        CE_REAL v = z[j];
        m[j] = v > m[j] ? v : m[j];
        nan[j] = v != v ? v : nan[j];
        if (with_min)
            lo[j] = v < lo[j] ? v : lo[j];
    }
}

/* The row maximum, NaN if the row holds a NaN; with_min, *lowest = the
 * smallest entry (NaN ignored), in the same pass over memory. */
CE_INLINE double CE_FN(row_max_loop)(const CE_REAL *z, ptrdiff_t n, CE_REAL *lowest,
                                     int with_min)
{
    CE_REAL m[CE_LANES], nan[CE_LANES], lo[CE_LANES];
    for (int j = 0; j < CE_LANES; j++) {
        m[j] = -(CE_REAL)INFINITY;
        nan[j] = 0;
        lo[j] = (CE_REAL)INFINITY;
    }
    ptrdiff_t i = 0;
    for (; i + CE_LANES <= n; i += CE_LANES)
        CE_FN(max_chunk)(z + i, m, nan, lo, with_min);
    if (i < n) {
        CE_REAL chunk[CE_LANES];
        CE_FN(pad_chunk)(chunk, z + i, n - i, -(CE_REAL)INFINITY);
        CE_FN(max_chunk)(chunk, m, nan, lo, 0);
        if (with_min) {
            CE_FN(pad_chunk)(chunk, z + i, n - i, (CE_REAL)INFINITY);
            for (int j = 0; j < CE_LANES; j++)
                lo[j] = chunk[j] < lo[j] ? chunk[j] : lo[j];
        }
    }
    for (int width = CE_LANES / 2; width > 0; width /= 2)
        for (int j = 0; j < width; j++) {
            CE_REAL a = m[j], b = m[j + width];
            m[j] = b > a ? b : a;
            nan[j] += nan[j + width];
            if (with_min)
                lo[j] = lo[j + width] < lo[j] ? lo[j + width] : lo[j];
        }
    if (with_min)
        *lowest = lo[0];
    return nan[0] != nan[0] ? (double)nan[0] : (double)m[0];
}

static double CE_FN(ce_row_max)(const CE_REAL *z, ptrdiff_t n)
{
    return CE_FN(row_max_loop)(z, n, NULL, 0);
}

/* The shift of a max-shifted row, with the limits of SPEC 1.7 (as the NumPy
 * reference): the row max when it is finite; 0 for an all -inf row (so that
 * its sum is exp(-inf) = 0, not exp(-inf - -inf) = NaN); +inf when exactly
 * one entry is +inf (with shifted() below, that entry shifts to 0 and the
 * others to -inf: the softmax is one-hot); NaN when several entries are +inf
 * (no limit) or the row holds a NaN.
 *
 * *moderate: every z - shift is in [CE_EXP_MODERATE, 0], where
 * exp_moderate gives the exp's bits (z - shift >= lowest - shift, the
 * subtraction being monotone). */
static CE_REAL CE_FN(row_shift)(const CE_REAL *z, ptrdiff_t n, int *moderate)
{
    CE_REAL lowest;
    CE_REAL m = (CE_REAL)CE_FN(row_max_loop)(z, n, &lowest, 1);
    *moderate = m - m == 0 && lowest - m >= CE_EXP_MODERATE;
    if (m - m == 0 || m != m)
        return m;
    if (m < 0)
        return 0;
    ptrdiff_t infinite = 0;
    for (ptrdiff_t c = 0; c < n; c++)
        infinite += z[c] == m;
    return infinite == 1 ? m : (CE_REAL)NAN;
}

/* z - shift, but 0 where z == shift, so that the single +inf entry of a row
 * shifts to 0 rather than inf - inf = NaN (finite z: z - z is 0 anyway). */
CE_INLINE CE_REAL CE_FN(shifted)(CE_REAL z, CE_REAL shift)
{
    CE_REAL d = z - shift;
    int same = z == shift;
    return same ? 0 : d;
}

/* exp(z - shift) of a row entry: z - shift is <= 0 or NaN. */
CE_INLINE CE_REAL CE_FN(shifted_exp)(CE_REAL z, CE_REAL shift)
{
    return CE_MATH(exp_nonpositive)(CE_FN(shifted)(z, shift));
}

/* shift - z in float64 (exact for float32 rows), with the same rule. */
CE_INLINE double CE_FN(gap)(CE_REAL z, CE_REAL shift)
{
    double d = (double)shift - (double)z;
    int same = z == shift;
    return same ? 0.0 : d;
}

/* e_c = exp(z_c - shift) over a block of whole chunks, then acc_j += e_c
 * in the lanes: two loops, each of one width.  One loop doing both runs
 * 1.4x slower for float32: GCC widens the exp's final selects
 * to the float64 lanes of the sum, and the long mixed-width body fills the
 * out-of-order window.  Same operations, same order, same bits.  Entries
 * from `live` on are padding: their exps are replaced by +0, which leaves a
 * lane sum (>= +0 or NaN) as it is. */
CE_INLINE void CE_FN(sum_exp_block)(const CE_REAL *z, CE_REAL *e, ptrdiff_t len, ptrdiff_t live,
                                    CE_REAL shift, int moderate, double *acc)
{
    /* shifted(z, shift) is plain z - shift unless shift is +inf (see
     * shifted): rows without a +inf entry skip its select, and rows
     * within the moderate range (see row_shift) the exp's slow scaling. */
    if (moderate)
        for (ptrdiff_t c = 0; c < len; c++)
            e[c] = CE_MATH(exp_moderate)(z[c] - shift);
    else if (shift == (CE_REAL)INFINITY)
        for (ptrdiff_t c = 0; c < len; c++)
            e[c] = CE_FN(shifted_exp)(z[c], shift);
    else
        for (ptrdiff_t c = 0; c < len; c++)
            e[c] = CE_MATH(exp_nonpositive)(z[c] - shift);
    if (live < len)
        for (ptrdiff_t c = 0; c < len; c++)
            e[c] = c < live ? e[c] : 0;
    for (ptrdiff_t c = 0; c < len; c += CE_LANES)
        for (int j = 0; j < CE_LANES; j++)
            acc[j] += (double)e[c + j];
}

/* Entries per sum_exp_block: a multiple of CE_LANES whose exps stay in L1
 * between the two loops. */
#define CE_EXP_BLOCK (16 * CE_LANES)

/* Bytes of a cache line, the step of the prefetches. */
#define CE_CACHE_LINE 64

/* sum_c exp(z_c - shift), float64 lanes; with store, also out_c = the
 * exp (out may be z).  The tail runs as a chunk padded with the shift,
 * whose exp (1, within the moderate range) sum_exp_block replaces by +0:
 * the bits of the unpadded sum.  next (may be NULL): a row of n entries
 * that comes next, fetched into the cache block by block while the exps,
 * which do not wait on memory, are computed -- so that its max pass, the
 * first read of a long row, does not wait on memory either. */
CE_INLINE double CE_FN(sum_exp_loop)(const CE_REAL *z, CE_REAL *out, ptrdiff_t n,
                                     CE_REAL shift, int moderate, int store,
                                     const CE_REAL *next)
{
    double acc[CE_LANES] = {0};
    CE_REAL scratch[CE_EXP_BLOCK];
    ptrdiff_t whole = n - n % CE_LANES, i = 0;
    for (; i < whole; i += CE_EXP_BLOCK) {
        ptrdiff_t len = whole - i < CE_EXP_BLOCK ? whole - i : CE_EXP_BLOCK;
        if (next)
            for (ptrdiff_t c = 0; c < len; c += CE_CACHE_LINE / sizeof(CE_REAL))
                __builtin_prefetch(next + i + c);
        CE_FN(sum_exp_block)(z + i, store ? out + i : scratch, len, len, shift, moderate, acc);
    }
    if (whole < n) {
        CE_REAL chunk[CE_LANES], e[CE_LANES];
        CE_FN(pad_chunk)(chunk, z + whole, n - whole, shift);
        CE_FN(sum_exp_block)(chunk, e, CE_LANES, n - whole, shift, moderate, acc);
        if (store)
            for (int j = 0; j < n - whole; j++)
                out[whole + j] = e[j];
    }
    return CE_VARIANT_NAME(ce_lanes_total)(acc);
}

static double CE_FN(sum_exp_shifted)(const CE_REAL *z, ptrdiff_t n, CE_REAL shift,
                                     int moderate)
{
    return CE_FN(sum_exp_loop)(z, NULL, n, shift, moderate, 0, NULL);
}

/* sum_c w_c * coef_c * (shift - z_c) and sum_c w_c * coef_c, with
 * coef_c = y_c * keep + spread (y NULL: y_c = 1; w NULL: w_c = 1).  Every
 * term of the first sum is >= 0 when shift is the row max, so the loss
 * log(sum)*W + D adds two non-negative numbers: no cancellation.  With
 * limits, a class of weight 0 at an infinite gap (z_c = -inf, or the row's
 * one +inf beside a finite z_c) adds 0, the limit of 0 * log p_c as
 * p_c -> 0, not 0 * inf; other terms are the same. */
CE_INLINE double CE_FN(weighted_gap_loop)(const CE_REAL *z, const CE_REAL *y, const double *w,
                                          double keep, double spread, ptrdiff_t n,
                                          CE_REAL shift, double *weight_total, int has_y,
                                          int has_w, int limits)
{
    double gap[CE_LANES] = {0}, wsum[CE_LANES] = {0};
    for (ptrdiff_t i = 0; i < n; i += CE_LANES) {
        ptrdiff_t len = n - i < CE_LANES ? n - i : CE_LANES;
        for (int j = 0; j < len; j++) {
            double coef = (has_y ? (double)y[i + j] * keep : keep) + spread;
            double wc = (has_w ? w[i + j] : 1.0) * coef;
            double g = CE_FN(gap)(z[i + j], shift), term = wc * g;
            if (limits && wc == 0 && g == INFINITY)
                term = 0.0;
            gap[j] += term;
            wsum[j] += wc;
        }
    }
    *weight_total = CE_VARIANT_NAME(ce_lanes_total)(wsum);
    return CE_VARIANT_NAME(ce_lanes_total)(gap);
}

static double CE_FN(weighted_gap_sum)(const CE_REAL *z, const CE_REAL *y, const double *w,
                                      double keep, double spread, ptrdiff_t n, CE_REAL shift,
                                      double *weight_total)
{
    double d;
    if (y && w)
        d = CE_FN(weighted_gap_loop)(z, y, w, keep, spread, n, shift, weight_total, 1, 1, 0);
    else if (y)
        d = CE_FN(weighted_gap_loop)(z, y, w, keep, spread, n, shift, weight_total, 1, 0, 0);
    else if (w)
        d = CE_FN(weighted_gap_loop)(z, y, w, keep, spread, n, shift, weight_total, 0, 1, 0);
    else
        d = CE_FN(weighted_gap_loop)(z, y, w, keep, spread, n, shift, weight_total, 0, 0, 0);
    /* NaN: a NaN logit (NaN again below), or 0 * inf, whose limit is 0.
     * The select would slow every row's loop by 2x, so only these rows take it. */
    if (d != d)
        d = CE_FN(weighted_gap_loop)(z, y, w, keep, spread, n, shift, weight_total, y != NULL,
                                     w != NULL, 1);
    return d;
}

/* ---- elementwise blocks ------------------------------------------------ */

/* Elements per block of the logistic functions' passes (their buffers stay
 * in L1). */
#define CE_BCE_BLOCK 256

/* e_i = exp(-|x_i|) over a block.  Where every |x_i| is within the moderate
 * exp's range (NaN is not), the moderate exp gives the same bits without
 * the full exp's scaling: nearly every block of real logits. */
CE_INLINE void CE_FN(exp_minus_abs)(const CE_REAL *x, CE_REAL *e, ptrdiff_t n)
{
    int moderate = 1;
    for (ptrdiff_t i = 0; i < n; i++) {
        CE_REAL abs_x = x[i] < 0 ? -x[i] : x[i];
        moderate &= abs_x <= -CE_EXP_MODERATE;
    }
    if (moderate)
        for (ptrdiff_t i = 0; i < n; i++) {
            CE_REAL abs_x = x[i] < 0 ? -x[i] : x[i];
            e[i] = CE_MATH(exp_moderate)(-abs_x);
        }
    else
        for (ptrdiff_t i = 0; i < n; i++) {
            CE_REAL abs_x = x[i] < 0 ? -x[i] : x[i];
            e[i] = CE_MATH(exp_nonpositive)(-abs_x); /* NaN stays NaN */
        }
}

/* ce_math_sigmoid, the exps of a block first (exp_minus_abs). */
static void CE_FN(ce_sigmoid)(const CE_REAL *x, CE_REAL *out, ptrdiff_t n)
{
    CE_REAL e[CE_BCE_BLOCK];
    for (ptrdiff_t start = 0; start < n; start += CE_BCE_BLOCK) {
        ptrdiff_t len = n - start < CE_BCE_BLOCK ? n - start : CE_BCE_BLOCK;
        const CE_REAL *xb = x + start;
        CE_FN(exp_minus_abs)(xb, e, len);
        for (ptrdiff_t i = 0; i < len; i++) {
            CE_REAL r = 1 / (1 + e[i]), er = e[i] * r;
            out[start + i] = xb[i] >= 0 ? r : er;
        }
    }
}

/* ce_math_log_sigmoid(x) = -log1pexp(-x), the exps of a block first. */
static void CE_FN(ce_log_sigmoid)(const CE_REAL *x, CE_REAL *out, ptrdiff_t n)
{
    CE_REAL e[CE_BCE_BLOCK];
    for (ptrdiff_t start = 0; start < n; start += CE_BCE_BLOCK) {
        ptrdiff_t len = n - start < CE_BCE_BLOCK ? n - start : CE_BCE_BLOCK;
        const CE_REAL *xb = x + start;
        CE_FN(exp_minus_abs)(xb, e, len);
        for (ptrdiff_t i = 0; i < len; i++)
            out[start + i] = -CE_MATH(log1pexp_given)(-xb[i], e[i]);
    }
}

/* loss *= w*s and grad *= w*s*grad_scale, elementwise (NULL: ones). */
static void CE_FN(apply_weights)(const CE_REAL *w, const CE_REAL *s, CE_REAL *loss,
                                 CE_REAL *grad, double grad_scale, ptrdiff_t n)
{
    const CE_REAL *factors[2] = {w, s};
    for (int f = 0; f < 2; f++) {
        const CE_REAL *factor = factors[f];
        if (!factor)
            continue;
        for (ptrdiff_t i = 0; i < n; i++)
            loss[i] *= factor[i];
        if (grad)
            for (ptrdiff_t i = 0; i < n; i++)
                grad[i] *= factor[i];
    }
    if (grad && grad_scale != 1.0) {
        CE_REAL scale = (CE_REAL)grad_scale;
        for (ptrdiff_t i = 0; i < n; i++)
            grad[i] *= scale;
    }
}

/* max(log v, -100) as PyTorch clamps; a NaN stays NaN (no fmax). */
static inline CE_REAL CE_FN(clamped_log)(CE_REAL v)
{
    CE_REAL l = CE_MATH(log)(v);
    return l < (CE_REAL)-100 ? (CE_REAL)-100 : l;
}

/* log1p(-p) rather than log(1 - p): exact where 1 - p would round. */
static inline CE_REAL CE_FN(clamped_log1m)(CE_REAL p)
{
    CE_REAL l = CE_MATH(log1p)(-p);
    return l < (CE_REAL)-100 ? (CE_REAL)-100 : l;
}

/* max(v, 1e-12f) as PyTorch's BCE/categorical gradient (its floor is the float constant 1e-12f for both dtypes); NaN stays NaN. */
static inline CE_REAL CE_FN(at_least_eps)(CE_REAL v)
{
    return v < (CE_REAL)1e-12f ? (CE_REAL)1e-12f : v;
}

static void CE_FN(ce_bce_block)(const CE_REAL *p, const CE_REAL *y, const CE_REAL *w,
                                const CE_REAL *s, CE_REAL *loss, CE_REAL *grad,
                                double grad_scale, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        loss[i] = (y[i] - 1) * CE_FN(clamped_log1m)(p[i]) - y[i] * CE_FN(clamped_log)(p[i]);
    if (grad)
        for (ptrdiff_t i = 0; i < n; i++)
            grad[i] = (p[i] - y[i]) / CE_FN(at_least_eps)((1 - p[i]) * p[i]);
    CE_FN(apply_weights)(w, s, loss, grad, grad_scale, n);
}

/* One element of BCE with logits, in the cancellation-free form
 *   l = pw*y'*softplus(-z) + (1-y')*softplus(z),
 *   dl/dz = (1-y')*sigmoid(z) - pw*y'*sigmoid(-z),
 * which equals docs/kernels.md's (1-y')z + lw*softplus(-z) and
 * lw*sigmoid(z) - pw*y' exactly, with lw = 1 + (pw-1)y'.  A zero coefficient
 * drops its term, so z = +inf, y' = 1 gives 0 (the limit), not 0*inf.
 * e = exp(-|z|), log1p_e = log1p(e) and r = 1 / (1 + e) come in computed
 * (bce_logits_loop). */
CE_INLINE void CE_FN(bce_logits_point)(CE_REAL z, CE_REAL y, CE_REAL pw, CE_REAL keep,
                                       CE_REAL spread, CE_REAL e, CE_REAL log1p_e, CE_REAL r,
                                       CE_REAL *loss, CE_REAL *grad)
{
    CE_REAL ys = y * keep + spread;
    CE_REAL pos_coef = pw * ys, neg_coef = 1 - ys;
    CE_REAL minus_z = -z;
    CE_REAL softplus_z = (z > 0 ? z : 0) + log1p_e;
    CE_REAL softplus_minus_z = (z < 0 ? minus_z : 0) + log1p_e;
    CE_REAL er = e * r;
    CE_REAL sigmoid_z = z >= 0 ? r : er, sigmoid_minus_z = z >= 0 ? er : r;
    /* Selects between ready values only (see crossent_math.h on vectorising). */
    CE_REAL pos_product = pos_coef * softplus_minus_z, neg_product = neg_coef * softplus_z;
    CE_REAL pos_term = pos_coef == 0 ? 0 : pos_product;
    CE_REAL neg_term = neg_coef == 0 ? 0 : neg_product;
    *loss = pos_term + neg_term;
    *grad = neg_coef * sigmoid_z - pos_coef * sigmoid_minus_z;
}

/* The shared parts of a logistic loss over a chunk of len logits, each
 * pass its own loop (docs/kernels.md, "Loops in passes"): e = exp(-|z|),
 * log1p(e) and r = 1/(1 + e); the loss's own pass follows. */
CE_INLINE void CE_FN(logistic_parts)(const CE_REAL *zb, ptrdiff_t len, CE_REAL *e, CE_REAL *log1p_e,
                                     CE_REAL *r)
{
    CE_FN(exp_minus_abs)(zb, e, len);
    for (ptrdiff_t i = 0; i < len; i++) {
        log1p_e[i] = CE_MATH(log1p_unit)(e[i]);
        r[i] = 1 / (1 + e[i]);
    }
}

/* Three passes over each block -- the exps, then log1p and the reciprocal,
 * then the rest -- rather than one loop doing all: one element's whole
 * computation is a dependency chain too long for the out-of-order window to
 * overlap several elements (in passes, 10^6 elements run 1.6x faster).
 * The same operations on each element, so the same bits.
 * has_pw, has_grad: constants after inlining, so that each of the four
 * loops is branch-free and vectorises. */
CE_INLINE void CE_FN(bce_logits_loop)(const CE_REAL *z, const CE_REAL *y, const CE_REAL *pw,
                                      CE_REAL keep, CE_REAL spread, CE_REAL *loss,
                                      CE_REAL *grad, ptrdiff_t n, int has_pw, int has_grad)
{
    CE_REAL e[CE_BCE_BLOCK], log1p_e[CE_BCE_BLOCK], r[CE_BCE_BLOCK];
    for (ptrdiff_t start = 0; start < n; start += CE_BCE_BLOCK) {
        ptrdiff_t len = n - start < CE_BCE_BLOCK ? n - start : CE_BCE_BLOCK;
        const CE_REAL *zb = z + start;
        CE_FN(logistic_parts)(zb, len, e, log1p_e, r);
        for (ptrdiff_t i = 0; i < len; i++) {
            CE_REAL l, g;
            CE_FN(bce_logits_point)(zb[i], y[start + i], has_pw ? pw[start + i] : 1, keep, spread,
                                    e[i], log1p_e[i], r[i], &l, &g);
            loss[start + i] = l;
            if (has_grad)
                grad[start + i] = g;
        }
    }
}

static void CE_FN(ce_bce_logits_block)(const CE_REAL *z, const CE_REAL *y, const CE_REAL *w,
                                       const CE_REAL *pw, const CE_REAL *s,
                                       double label_smoothing, CE_REAL *loss, CE_REAL *grad,
                                       double grad_scale, ptrdiff_t n)
{
    CE_REAL keep = (CE_REAL)(1.0 - label_smoothing), spread = (CE_REAL)(label_smoothing / 2);
    if (pw && grad)
        CE_FN(bce_logits_loop)(z, y, pw, keep, spread, loss, grad, n, 1, 1);
    else if (pw)
        CE_FN(bce_logits_loop)(z, y, pw, keep, spread, loss, grad, n, 1, 0);
    else if (grad)
        CE_FN(bce_logits_loop)(z, y, pw, keep, spread, loss, grad, n, 0, 1);
    else
        CE_FN(bce_logits_loop)(z, y, pw, keep, spread, loss, grad, n, 0, 0);
    CE_FN(apply_weights)(w, s, loss, grad, grad_scale, n);
}

static void CE_FN(ce_mse_block)(const CE_REAL *x, const CE_REAL *t, const CE_REAL *w,
                                const CE_REAL *s, CE_REAL *loss, CE_REAL *grad,
                                double grad_scale, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        loss[i] = (x[i] - t[i]) * (x[i] - t[i]);
    if (grad)
        for (ptrdiff_t i = 0; i < n; i++)
            grad[i] = 2 * (x[i] - t[i]);
    CE_FN(apply_weights)(w, s, loss, grad, grad_scale, n);
}

/* out = x * w (x without w), in the operands' dtype: the terms of a mean's
 * denominator (sample weights, times mse_loss's element weights), which the
 * elementwise_weight_sum kernel sums as it sums losses. */
static void CE_FN(ce_weight_product_block)(const CE_REAL *x, const CE_REAL *w, CE_REAL *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = w == NULL ? x[i] : x[i] * w[i];
}

/* out = 1 where x lies outside [0, 1], else 0 (a NaN is neither): the
 * terms the outside_unit_count kernel sums, so that checking probabilities
 * is one threaded pass over any layout.  Plain compares and no branch, so
 * the loop vectorises. */
static void CE_FN(ce_outside_unit_block)(const CE_REAL *x, CE_REAL *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = (CE_REAL)((x[i] < 0) | (x[i] > 1));
}

/* One element of the binary focal loss from logits (docs/math.md section 8):
 *   l = alpha_t * ce * q^gamma,  q = 1 - p_t = (1-y) sigmoid(z) + y sigmoid(-z),
 *   dl/dz = alpha_t * q^gamma * (sigmoid(z) - y + gamma (1-2y) ce ratio),
 * ratio = sigmoid(z) sigmoid(-z) / q, ce the BCE with logits in its
 * cancellation-free form (bce_logits_point).  For a 0/1 target, log q is
 * -softplus(+-z), exact where q itself underflows, and ratio is sigmoid(z)
 * or sigmoid(-z) (q = 0 at z = +-inf would make it 0/0).  A zero ratio drops
 * the modulator's term, so z = +-inf gives the limit and never 0 * inf.
 * e = exp(-|z|), log1p_e = log1p(e) and r = 1 / (1 + e) come in computed
 * (focal_loop); gamma_r is gamma in the row's dtype, alpha_r and
 * one_minus_alpha_r alpha and 1 - alpha (both 0 and 1 when alpha < 0: no
 * alpha weighting, as torchvision). */
CE_INLINE void CE_FN(focal_point)(CE_REAL z, CE_REAL y, CE_REAL alpha_r,
                                  CE_REAL one_minus_alpha_r, int weigh_alpha, CE_REAL gamma_r,
                                  CE_REAL e, CE_REAL log1p_e, CE_REAL r, CE_REAL *loss,
                                  CE_REAL *grad)
{
    CE_REAL pos = y, neg = 1 - y;
    CE_REAL minus_z = -z;
    CE_REAL softplus_z = (z > 0 ? z : 0) + log1p_e;
    CE_REAL softplus_minus_z = (z < 0 ? minus_z : 0) + log1p_e;
    CE_REAL er = e * r;
    CE_REAL sigmoid_z = z >= 0 ? r : er, sigmoid_minus_z = z >= 0 ? er : r;
    /* Selects between ready values only (see crossent_math.h on vectorising). */
    CE_REAL pos_product = pos * softplus_minus_z, neg_product = neg * softplus_z;
    CE_REAL pos_term = pos == 0 ? 0 : pos_product;
    CE_REAL neg_term = neg == 0 ? 0 : neg_product;
    CE_REAL ce = pos_term + neg_term;
    CE_REAL q = neg * sigmoid_z + pos * sigmoid_minus_z;
    CE_REAL log_q_any = CE_MATH(log)(q), ratio_any = sigmoid_z * sigmoid_minus_z / q;
    CE_REAL minus_softplus_z = -softplus_z, minus_softplus_minus_z = -softplus_minus_z;
    int positive = y == 1, negative = y == 0;
    CE_REAL log_q = negative ? minus_softplus_minus_z : log_q_any;
    log_q = positive ? minus_softplus_z : log_q;
    CE_REAL ratio = negative ? sigmoid_minus_z : ratio_any;
    ratio = positive ? sigmoid_z : ratio;
    CE_REAL power = CE_MATH(exp)(gamma_r * log_q);
    CE_REAL modulator = gamma_r == 0 ? 1 : power;
    CE_REAL alpha_weighted = alpha_r * y + one_minus_alpha_r * neg;
    CE_REAL alpha_t = weigh_alpha ? alpha_weighted : 1;
    CE_REAL ce_grad = neg * sigmoid_z - pos * sigmoid_minus_z;
    CE_REAL modulator_product = gamma_r * (neg - pos) * ce * ratio;
    CE_REAL modulator_grad = ratio == 0 ? 0 : modulator_product;
    *loss = alpha_t * (ce * modulator);
    *grad = alpha_t * (modulator * (ce_grad + modulator_grad));
}

/* The passes of bce_logits_loop (the exps, then log1p and the reciprocal,
 * then the rest), for the same reason; has_grad is a constant after
 * inlining. */
CE_INLINE void CE_FN(focal_loop)(const CE_REAL *z, const CE_REAL *y, double alpha, double gamma,
                                 CE_REAL *loss, CE_REAL *grad, ptrdiff_t n, int has_grad)
{
    CE_REAL e[CE_BCE_BLOCK], log1p_e[CE_BCE_BLOCK], r[CE_BCE_BLOCK];
    int weigh_alpha = alpha >= 0;
    CE_REAL alpha_r = (CE_REAL)alpha, one_minus_alpha_r = (CE_REAL)(1.0 - alpha);
    CE_REAL gamma_r = (CE_REAL)gamma;
    for (ptrdiff_t start = 0; start < n; start += CE_BCE_BLOCK) {
        ptrdiff_t len = n - start < CE_BCE_BLOCK ? n - start : CE_BCE_BLOCK;
        const CE_REAL *zb = z + start;
        CE_FN(logistic_parts)(zb, len, e, log1p_e, r);
        for (ptrdiff_t i = 0; i < len; i++) {
            CE_REAL l, g;
            CE_FN(focal_point)(zb[i], y[start + i], alpha_r, one_minus_alpha_r, weigh_alpha,
                               gamma_r, e[i], log1p_e[i], r[i], &l, &g);
            loss[start + i] = l;
            if (has_grad)
                grad[start + i] = g;
        }
    }
}

static void CE_FN(ce_focal_block)(const CE_REAL *z, const CE_REAL *y, const CE_REAL *w,
                                  const CE_REAL *s, double alpha, double gamma, CE_REAL *loss,
                                  CE_REAL *grad, double grad_scale, ptrdiff_t n)
{
    if (grad)
        CE_FN(focal_loop)(z, y, alpha, gamma, loss, grad, n, 1);
    else
        CE_FN(focal_loop)(z, y, alpha, gamma, loss, grad, n, 0);
    CE_FN(apply_weights)(w, s, loss, grad, grad_scale, n);
}

/* KL divergence of x = log q from the target, elementwise (as
 * torch.nn.functional.kl_div):
 *   l = t (log t - x),      dl/dx = -t        (log_target 0),
 *   l = exp(t) (t - x),     dl/dx = -exp(t)   (log_target 1).
 * A target probability of exactly 0 (log_p = -inf: t = 0, or t = -inf with
 * log_target) gives 0 whatever x is, +-inf included: 0 log 0 = 0, and the
 * loss is 0 for every x there, so 0 is also its limit.  A NaN x still gives
 * NaN (SPEC 1.7).  An exp(t) that merely underflows is not exactly 0: its
 * product with an infinite t - x stays NaN, as the true value is +inf. */
CE_INLINE CE_REAL CE_FN(kl_div_point)(CE_REAL x, CE_REAL log_p, CE_REAL p)
{
    CE_REAL term = p * (log_p - x);
    CE_REAL zero_or_nan = x != x ? x : 0;
    return log_p == -(CE_REAL)INFINITY ? zero_or_nan : term;
}

/* log_target, has_grad: constants after inlining (branch-free loops). */
CE_INLINE void CE_FN(kl_div_loop)(const CE_REAL *x, const CE_REAL *t, CE_REAL *loss,
                                  CE_REAL *grad, ptrdiff_t n, int log_target, int has_grad)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        CE_REAL p = log_target ? CE_MATH(exp)(t[i]) : t[i];
        CE_REAL log_p = log_target ? t[i] : CE_MATH(log)(t[i]);
        loss[i] = CE_FN(kl_div_point)(x[i], log_p, p);
        if (has_grad)
            grad[i] = -p;
    }
}

static void CE_FN(ce_kl_div_block)(const CE_REAL *x, const CE_REAL *t, const CE_REAL *w,
                                   const CE_REAL *s, int log_target, CE_REAL *loss,
                                   CE_REAL *grad, double grad_scale, ptrdiff_t n)
{
    if (log_target && grad)
        CE_FN(kl_div_loop)(x, t, loss, grad, n, 1, 1);
    else if (log_target)
        CE_FN(kl_div_loop)(x, t, loss, grad, n, 1, 0);
    else if (grad)
        CE_FN(kl_div_loop)(x, t, loss, grad, n, 0, 1);
    else
        CE_FN(kl_div_loop)(x, t, loss, grad, n, 0, 0);
    CE_FN(apply_weights)(w, s, loss, grad, grad_scale, n);
}

/* ---- rows -------------------------------------------------------------- */

/* A +inf entry makes the sum +inf, however many there are: a NaN shift
 * means several +inf (-> +inf) or a NaN in the row (-> NaN). */
/* The row functions of the activations, with next: the row computed after
 * this one, or NULL (see sum_exp_loop). */
CE_INLINE CE_REAL CE_FN(logsumexp_row)(const CE_REAL *z, ptrdiff_t n, const CE_REAL *next)
{
    int moderate;
    CE_REAL shift = CE_FN(row_shift)(z, n, &moderate);
    if (shift != shift)
        return (CE_REAL)CE_FN(ce_row_max)(z, n) == INFINITY ? (CE_REAL)INFINITY : shift;
    double sum = CE_FN(sum_exp_loop)(z, NULL, n, shift, moderate, 0, next);
    return (CE_REAL)((double)shift + ce_math_log_f64(sum));
}

/* The exps are stored by the sum pass and scaled in place: one exp per
 * entry (the same bits as recomputing them). */
CE_INLINE void CE_FN(softmax_row)(const CE_REAL *z, CE_REAL *out, ptrdiff_t n, const CE_REAL *next)
{
    int moderate;
    CE_REAL shift = CE_FN(row_shift)(z, n, &moderate);
    CE_REAL inv_sum = (CE_REAL)(1.0 / CE_FN(sum_exp_loop)(z, out, n, shift, moderate, 1, next));
    for (ptrdiff_t c = 0; c < n; c++)
        out[c] *= inv_sum;
}

/* (z - shift) - log(sum) rather than z - logsumexp: no loss of the small
 * log(sum) against a large shift. */
CE_INLINE void CE_FN(log_softmax_row)(const CE_REAL *z, CE_REAL *out, ptrdiff_t n, const CE_REAL *next)
{
    int moderate;
    CE_REAL shift = CE_FN(row_shift)(z, n, &moderate);
    double log_sum = ce_math_log_f64(CE_FN(sum_exp_loop)(z, NULL, n, shift, moderate, 0, next));
    for (ptrdiff_t c = 0; c < n; c++)
        out[c] = (CE_REAL)(-CE_FN(gap)(z[c], shift) - log_sum);
}

static CE_REAL CE_FN(ce_row_logsumexp)(const CE_REAL *z, ptrdiff_t n)
{
    return CE_FN(logsumexp_row)(z, n, NULL);
}

static void CE_FN(ce_softmax_row)(const CE_REAL *z, CE_REAL *out, ptrdiff_t n)
{
    CE_FN(softmax_row)(z, out, n, NULL);
}

static void CE_FN(ce_log_softmax_row)(const CE_REAL *z, CE_REAL *out, ptrdiff_t n)
{
    CE_FN(log_softmax_row)(z, out, n, NULL);
}

/* from_grad: grad already holds exp(z_c - shift), stored by the sum pass,
 * and is scaled in place (the same bits as recomputing the exp). */
CE_INLINE void CE_FN(softmax_grad_loop)(const CE_REAL *z, const CE_REAL *y, const double *w,
                                        CE_REAL shift, CE_REAL scale_e, CE_REAL scale_w,
                                        CE_REAL keep, CE_REAL spread, CE_REAL *grad,
                                        ptrdiff_t n, int has_y, int has_w, int from_grad)
{
    for (ptrdiff_t c = 0; c < n; c++) {
        CE_REAL coef = has_y ? y[c] * keep + spread : 1;
        CE_REAL wc = has_w ? (CE_REAL)w[c] : 1;
        CE_REAL e = from_grad ? grad[c] : CE_FN(shifted_exp)(z[c], shift);
        grad[c] = scale_e * e - scale_w * (wc * coef);
    }
}

CE_INLINE void CE_FN(softmax_grad_cases)(const CE_REAL *z, const CE_REAL *y, const double *w,
                                         CE_REAL shift, CE_REAL scale_e, CE_REAL scale_w,
                                         CE_REAL keep, CE_REAL spread, CE_REAL *grad,
                                         ptrdiff_t n, int from_grad)
{
    if (y && w)
        CE_FN(softmax_grad_loop)(z, y, w, shift, scale_e, scale_w, keep, spread, grad, n, 1, 1,
                                 from_grad);
    else if (y)
        CE_FN(softmax_grad_loop)(z, y, w, shift, scale_e, scale_w, keep, spread, grad, n, 1, 0,
                                 from_grad);
    else if (w)
        CE_FN(softmax_grad_loop)(z, y, w, shift, scale_e, scale_w, keep, spread, grad, n, 0, 1,
                                 from_grad);
    else
        CE_FN(softmax_grad_loop)(z, y, w, shift, scale_e, scale_w, keep, spread, grad, n, 0, 0,
                                 from_grad);
}

/* grad_c = scale_e * exp(z_c - shift) - scale_w * w_c * coef_c, with
 * coef_c = y_c*keep + spread (y NULL: coef_c = 1).  One loop per NULL
 * pattern, each branch-free.  from_grad: see softmax_grad_loop. */
static void CE_FN(softmax_grad_pass)(const CE_REAL *z, const CE_REAL *y, const double *w,
                                     CE_REAL shift, CE_REAL scale_e, CE_REAL scale_w,
                                     CE_REAL keep, CE_REAL spread, CE_REAL *grad, ptrdiff_t n,
                                     int from_grad)
{
    if (from_grad)
        CE_FN(softmax_grad_cases)(z, y, w, shift, scale_e, scale_w, keep, spread, grad, n, 1);
    else
        CE_FN(softmax_grad_cases)(z, y, w, shift, scale_e, scale_w, keep, spread, grad, n, 0);
}

/* The exp-sum pass of a softmax loss.  With a gradient buffer that is not
 * an input, the exps are stored in it (*stored = 1) for the gradient pass to
 * scale: one exp per entry instead of two.  next: see sum_exp_loop. */
static double CE_FN(sum_exp_for_grad)(const CE_REAL *z, const CE_REAL *y, CE_REAL *grad,
                                      ptrdiff_t n, CE_REAL shift, int moderate, int *stored,
                                      const CE_REAL *next)
{
    *stored = grad != NULL && grad != z && grad != y;
    return CE_FN(sum_exp_loop)(z, *stored ? grad : NULL, n, shift, moderate, *stored, next);
}

/* l = (1-eps)*w_t*(lse - z_t) + (eps/C)*sum_c w_c*(lse - z_c), with
 * lse - z_c = log(sum) + (shift - z_c), both terms >= 0.  next: the row
 * to be computed after this one, or NULL (see sum_exp_loop). */
CE_INLINE CE_REAL CE_FN(xent_index_row)(const CE_REAL *z, ptrdiff_t n, ptrdiff_t target,
                                        const double *class_weight, double label_smoothing,
                                        CE_REAL *grad, double grad_scale, const CE_REAL *next)
{
    double eps = label_smoothing, w_t = class_weight ? class_weight[target] : 1.0;
    int moderate, stored;
    CE_REAL shift = CE_FN(row_shift)(z, n, &moderate);
    double sum = CE_FN(sum_exp_for_grad)(z, NULL, grad, n, shift, moderate, &stored, next);
    double log_sum = ce_math_log_f64(sum);
    double loss = (1 - eps) * w_t * (log_sum + CE_FN(gap)(z[target], shift));
    double weight_total = 0;
    if (eps != 0) {
        double gap = CE_FN(weighted_gap_sum)(z, NULL, class_weight, 1.0, 0.0, n, shift,
                                             &weight_total);
        loss += eps / (double)n * (weight_total * log_sum + gap);
    }
    if (grad) {
        double a = (1 - eps) * w_t + eps / (double)n * weight_total;
        CE_REAL e_target = stored ? grad[target] : CE_FN(shifted_exp)(z[target], shift);
        /* The target's own term w_t*(1 - eps + eps/n).  With one class it
         * is a itself (weight_total = w_t), and is written as a: then
         * a*p_t - a is exactly 0 (p_t = 1), as PyTorch gives, where the two
         * expressions round apart. */
        CE_REAL target_term = n == 1 ? (CE_REAL)(grad_scale * a)
                                     : (CE_REAL)(grad_scale * w_t * (1 - eps + eps / (double)n));
        CE_FN(softmax_grad_pass)(z, NULL, class_weight, shift,
                                 (CE_REAL)(grad_scale * a / sum),
                                 (CE_REAL)(grad_scale * eps / (double)n), 1, 0, grad, n, stored);
        grad[target] = (CE_REAL)(grad_scale * a / sum) * e_target - target_term;
    }
    return (CE_REAL)loss;
}

static CE_REAL CE_FN(ce_softmax_xent_index_row)(const CE_REAL *z, ptrdiff_t n, ptrdiff_t target,
                                                const double *class_weight, double label_smoothing,
                                                CE_REAL *grad, double grad_scale)
{
    return CE_FN(xent_index_row)(z, n, target, class_weight, label_smoothing, grad, grad_scale,
                                 NULL);
}

/* ---- short and medium rows, several at a time --------------------------- */

/* Lanes of a pairwise lane tree that still hold data after the step of the
 * given width, when lanes [0, live) did before (the rest are neutral). */
CE_INLINE ptrdiff_t CE_FN(tree_step)(ptrdiff_t live, ptrdiff_t width)
{
    return live < width ? live : width;
}

/* zt[c][k] = rows[k][c] for c < n, k < CE_ROW_GROUP: whole tiles in
 * register shuffles where the variant has them, the rest one by one. */
CE_INLINE void CE_FN(transpose_in)(CE_REAL (*zt)[CE_ROW_GROUP], const CE_REAL *const *rows,
                                   ptrdiff_t n)
{
    ptrdiff_t c = 0;
#if CE_TILE_SHUFFLES
    for (; c + CE_TILE <= n; c += CE_TILE)
        for (int k = 0; k < CE_ROW_GROUP; k += CE_TILE) {
            CE_REAL *out[CE_TILE];
            for (int i = 0; i < CE_TILE; i++)
                out[i] = zt[c + i] + k;
            CE_FN(ce_transpose_tile)(rows + k, c, out, 0);
        }
#endif
    for (; c < n; c++)
        for (int k = 0; k < CE_ROW_GROUP; k++)
            zt[c][k] = rows[k][c];
}

#if CE_TILE_SHUFFLES
/* rows[k][c] = zt[c][k] for c < n and the rows k < count that are not
 * special (a special row's buffer may be its input, which the row function
 * still has to read): tiles of CE_TILE plain rows in register shuffles, the
 * rest one by one. */
CE_INLINE void CE_FN(transpose_out)(CE_REAL *const *rows, ptrdiff_t count, const int *special,
                                    CE_REAL (*zt)[CE_ROW_GROUP], ptrdiff_t n)
{
    for (ptrdiff_t k = 0; k < count; k += CE_TILE) {
        int plain = k + CE_TILE <= count;
        for (int i = 0; plain && i < CE_TILE; i++)
            plain = !special[k + i];
        if (!plain) {
            for (ptrdiff_t r = k; r < count && r < k + CE_TILE; r++)
                for (ptrdiff_t c = 0; !special[r] && c < n; c++)
                    rows[r][c] = zt[c][r];
            continue;
        }
        ptrdiff_t c = 0;
        for (; c + CE_TILE <= n; c += CE_TILE) {
            const CE_REAL *in[CE_TILE];
            for (int i = 0; i < CE_TILE; i++)
                in[i] = zt[c + i] + k;
            CE_FN(ce_transpose_tile)(in, 0, rows + k, c);
        }
        for (; c < n; c++)
            for (int i = 0; i < CE_TILE; i++)
                rows[k + i][c] = zt[c][k + i];
    }
}
#endif

/* The share of column j of a group's exp loop in fetching the next group's
 * rows (next[0 .. ahead), n >= CE_ROW_GROUP entries each) into the cache:
 * row j % CE_ROW_GROUP, its (j / CE_ROW_GROUP)-th run of CE_ROW_GROUP
 * entries, and with its first run its last entry (a row need not start on
 * a cache line).  Spread over the loop, the fetches overlap the exps and
 * never queue up at once: one burst of the whole group's lines at the
 * start left the next transposition waiting on memory as before. */
CE_INLINE void CE_FN(prefetch_next_group)(const CE_REAL *const *next, ptrdiff_t ahead, ptrdiff_t j,
                                          ptrdiff_t n)
{
    ptrdiff_t k = j % CE_ROW_GROUP, from = j - k;
    if (k >= ahead)
        return;
    for (ptrdiff_t q = from; q < from + CE_ROW_GROUP && q < n; q += CE_CACHE_LINE / sizeof(CE_REAL))
        __builtin_prefetch(next[k] + q);
    if (from == 0)
        __builtin_prefetch(next[k] + n - 1);
}

/* ce_target_ranks of a group's rows from their transposition (target[k]
 * the target of lane k): vertical compares and counts, before the exps
 * overwrite the entries.  A row holding a NaN gets garbage here: it is a
 * special row (group_exp_sums), which the caller ranks by ce_target_ranks. */
CE_INLINE void CE_FN(group_ranks)(CE_REAL (*zt)[CE_ROW_GROUP], ptrdiff_t n, const ptrdiff_t *target,
                                  CE_REAL *rank)
{
    enum { G = CE_ROW_GROUP };
    /* Counts and indices in the entries' own type (exact: n <= 160), so
     * that every select has one width and the lane loop vectorises. */
    CE_REAL at_target[G], before[G], above[G];
    for (int k = 0; k < G; k++) {
        at_target[k] = zt[target[k]][k];
        before[k] = (CE_REAL)target[k];
        above[k] = 0;
    }
    for (ptrdiff_t c = 0; c < n; c++) {
        CE_REAL index = (CE_REAL)c;
        CE_NO_UNROLL
        for (int k = 0; k < G; k++) {
            CE_REAL v = zt[c][k], one = 1, zero = 0;
            CE_REAL tie = index < before[k] ? one : zero;
            CE_REAL hit = v > at_target[k] ? one : (v == at_target[k] ? tie : zero);
            above[k] += hit;
        }
    }
    for (int k = 0; k < G; k++)
        rank[k] = above[k];
}

/* The first steps of the softmax row functions (row_shift, then
 * sum_exp_loop) for a group of up to CE_ROW_GROUP rows of n entries,
 * transposed into zt (n rows of CE_ROW_GROUP): lane k of every vector is
 * row k, so the row's max and sum -- horizontal, latency-bound work for one
 * short row -- become vertical operations over the group.  Each row goes
 * through the very operations of the row functions in the same order
 * (entry c goes to lane c % CE_LANES, then the same pairwise trees), so the
 * bits are the same.  Leaves the exps in zt, and per row its shift and
 * float64 sum of exps.  Rows whose max is not finite or that hold a NaN
 * are left to the row function (special[k] = 1 for each; their results
 * here are garbage). */
CE_INLINE void CE_FN(group_exp_sums)(CE_REAL (*zt)[CE_ROW_GROUP], ptrdiff_t zt_rows,
                                     const CE_REAL *const *z, ptrdiff_t count, ptrdiff_t ahead,
                                     ptrdiff_t n, const ptrdiff_t *target, CE_REAL *rank,
                                     CE_REAL *shift, double *sum, int *special)
{
    /* n <= zt_rows (the caller's promise), stated so that the compiler
     * drops the loops over c >= CE_LANES from the short rows' copy. */
    n = n < zt_rows ? n : zt_rows;
    enum { G = CE_ROW_GROUP };
    CE_REAL m[CE_LANES][G];
    ptrdiff_t lanes = n < CE_LANES ? n : CE_LANES;
    double acc[CE_LANES][G];
    /* Lanes k >= count repeat row 0: computed, never stored. */
    const CE_REAL *rows[G];
    for (int k = 0; k < G; k++)
        rows[k] = z[k < count ? k : 0];
    CE_FN(transpose_in)(zt, rows, n);
    if (rank != NULL)
        CE_FN(group_ranks)(zt, n, target, rank);
    /* ce_row_max: max_chunk on one padded chunk, then the lane tree.  A
     * padding lane (j >= n) holds max -inf, which leaves the lane it is
     * folded into as it is: the tree skips them.  Without the row max's
     * NaN lanes: a NaN entry leaves the max finite and makes the row's sum
     * of exps NaN, which marks the row special at the end. */
    /* In the same loops, the smallest entry of each row per lane (low),
     * for row_shift's moderate test, which the group takes as a whole
     * (special rows are recomputed, so their lanes may hold garbage). */
    CE_REAL low[CE_LANES][G];
    for (ptrdiff_t j = 0; j < lanes; j++)
        for (int k = 0; k < G; k++) {
            CE_REAL v = zt[j][k], lo = -(CE_REAL)INFINITY;
            m[j][k] = v > lo ? v : lo;
            low[j][k] = v;
        }
    /* Lane by lane (entries j, j + CE_LANES, ...: each lane's chain in its
     * order), so that a lane's running values stay in registers. */
    for (ptrdiff_t j = 0; j < lanes; j++)
        for (ptrdiff_t c = j + CE_LANES; c < n; c += CE_LANES)
            CE_NO_UNROLL
            for (int k = 0; k < G; k++) {
                CE_REAL v = zt[c][k];
                m[j][k] = v > m[j][k] ? v : m[j][k];
                low[j][k] = v < low[j][k] ? v : low[j][k];
            }
    for (ptrdiff_t width = CE_LANES / 2, live = lanes; width > 0;
         live = CE_FN(tree_step)(live, width), width /= 2)
        for (ptrdiff_t j = 0; j + width < live; j++)
            for (int k = 0; k < G; k++) {
                CE_REAL a = m[j][k], b = m[j + width][k];
                m[j][k] = b > a ? b : a;
                low[j][k] = low[j + width][k] < low[j][k] ? low[j + width][k] : low[j][k];
            }
    int moderate = 1;
    for (int k = 0; k < G; k++) {
        shift[k] = m[0][k];
        special[k] = !(shift[k] - shift[k] == 0);
        shift[k] = special[k] ? 0 : shift[k];
        moderate &= special[k] || low[0][k] - shift[k] >= CE_EXP_MODERATE;
    }
    /* sum_exp_loop: the exps (kept in zt) and their float64 lane tree.  A
     * padding lane's exp is exp(-inf - finite shift) = +0 exactly, so it is
     * written, not computed.  Exps and sums in two loops of one width each
     * (see sum_exp_block).  The shifts are finite here, so shifted() is
     * plain z - shift. */
    if (moderate)
        for (ptrdiff_t j = 0; j < n; j++) {
            CE_FN(prefetch_next_group)(z + G, ahead, j, n);
            for (int k = 0; k < G; k++)
                zt[j][k] = CE_MATH(exp_moderate)(zt[j][k] - shift[k]);
        }
    else
        for (ptrdiff_t j = 0; j < n; j++) {
            CE_FN(prefetch_next_group)(z + G, ahead, j, n);
            for (int k = 0; k < G; k++)
                zt[j][k] = CE_FN(shifted_exp)(zt[j][k], shift[k]);
        }
    for (ptrdiff_t j = 0; j < lanes; j++)
        for (int k = 0; k < G; k++)
            acc[j][k] = 0.0 + (double)zt[j][k];
    for (ptrdiff_t j = 0; j < lanes; j++)
        for (ptrdiff_t c = j + CE_LANES; c < n; c += CE_LANES)
            for (int k = 0; k < G; k++)
                acc[j][k] += (double)zt[c][k];
    /* A padding lane's sum is +0, and x + 0 = x for the sums (>= +0 or
     * NaN): skipped as above. */
    for (ptrdiff_t width = CE_LANES / 2, live = lanes; width > 0;
         live = CE_FN(tree_step)(live, width), width /= 2)
        for (ptrdiff_t j = 0; j + width < live; j++)
            for (int k = 0; k < G; k++)
                acc[j][k] += acc[j + width][k];
    for (int k = 0; k < G; k++) {
        sum[k] = acc[0][k];
        special[k] |= sum[k] != sum[k];
    }
}

/* ce_softmax_xent_index_row for a group of rows without label smoothing
 * (see group_exp_sums). */
CE_INLINE void CE_FN(xent_index_group)(CE_REAL (*zt)[CE_ROW_GROUP], ptrdiff_t zt_rows,
                                       const CE_REAL *const *z, ptrdiff_t count, ptrdiff_t ahead,
                                       ptrdiff_t n,
                                       const ptrdiff_t *target, const double *class_weight,
                                       CE_REAL *const *grad, const double *grad_scale,
                                       CE_REAL *loss, CE_REAL *rank, int *special)
{
    n = n < zt_rows ? n : zt_rows;
    enum { G = CE_ROW_GROUP };
    CE_REAL shift[G], group_rank[G];
    double sum[G];
    /* The per-row scalars, vectorised over the group: the row function's
     * expressions with label_smoothing = 0 written out. */
    double w_t[G], grad_scale_k[G];
    CE_REAL z_t[G], row_loss[G], scale_e[G], scale_w[G], target_term[G];
    ptrdiff_t t[G];
    for (int k = 0; k < G; k++) {
        ptrdiff_t row = k < count ? k : 0;
        t[k] = target[row];
        grad_scale_k[k] = grad_scale[row];
        w_t[k] = class_weight ? class_weight[t[k]] : 1.0;
        z_t[k] = z[row][t[k]];
    }
    CE_FN(group_exp_sums)(zt, zt_rows, z, count, ahead, n, t, rank ? group_rank : NULL, shift, sum,
                          special);
    for (ptrdiff_t k = 0; rank != NULL && k < count; k++)
        rank[k] = group_rank[k];
    for (int k = 0; k < G; k++) {
        double log_sum = ce_math_log_f64(sum[k]), eps = 0.0;
        double a = (1 - eps) * w_t[k] + eps / (double)n * 0.0;
        row_loss[k] = (CE_REAL)((1 - eps) * w_t[k] * (log_sum + CE_FN(gap)(z_t[k], shift[k])));
        scale_e[k] = (CE_REAL)(grad_scale_k[k] * a / sum[k]);
        scale_w[k] = (CE_REAL)(grad_scale_k[k] * eps / (double)n);
        target_term[k] = (CE_REAL)(grad_scale_k[k] * w_t[k] * (1 - eps + eps / (double)n));
    }
    for (ptrdiff_t k = 0; k < count; k++)
        loss[k] = row_loss[k];
    if (grad == NULL)
        return;
#if CE_TILE_SHUFFLES
    /* The gradient in zt, vertically, out by tiles, the target's entry last:
     * for medium rows, and for short ones too (10 classes: 1.13x faster than
     * row by row with AVX-512, as fast with AVX2). */
    CE_REAL e_t[G];
    for (int k = 0; k < G; k++)
        e_t[k] = zt[t[k]][k];
    for (ptrdiff_t c = 0; c < n; c++) {
        CE_REAL wc = class_weight ? (CE_REAL)class_weight[c] : 1;
        CE_NO_UNROLL /* see CE_NO_UNROLL; unrolled, GCC vectorises over c */
        for (int k = 0; k < G; k++)
            zt[c][k] = scale_e[k] * zt[c][k] - scale_w[k] * (wc * 1);
    }
    CE_FN(transpose_out)(grad, count, special, zt, n);
    for (ptrdiff_t k = 0; k < count; k++)
        if (!special[k])
            grad[k][t[k]] = scale_e[k] * e_t[k] - target_term[k];
#else
    for (ptrdiff_t k = 0; k < count; k++) {
        if (special[k])
            continue;
        for (ptrdiff_t c = 0; c < n; c++) {
            CE_REAL wc = class_weight ? (CE_REAL)class_weight[c] : 1;
            grad[k][c] = scale_e[k] * zt[c][k] - scale_w[k] * (wc * 1);
        }
        grad[k][t[k]] = scale_e[k] * zt[t[k]][k] - target_term[k];
    }
#endif
}

/* xent_index_group with its transposed rows on the stack, sized for short
 * rows (n <= CE_LANES) or for medium ones (n <= CE_GROUP_MAX_CLASSES): two
 * copies, because the short rows run 1.2x slower in the larger frame. */
static void CE_FN(xent_index_group_short)(const CE_REAL *const *z, ptrdiff_t count, ptrdiff_t n,
                                          const ptrdiff_t *target, const double *class_weight,
                                          CE_REAL *const *grad, const double *grad_scale,
                                          CE_REAL *loss, CE_REAL *rank, int *special)
{
    CE_REAL zt[CE_LANES][CE_ROW_GROUP];
    CE_FN(xent_index_group)(zt, CE_LANES, z, count, 0, n, target, class_weight, grad, grad_scale,
                            loss, rank, special);
}

/* ahead: the rows after the group, z[CE_ROW_GROUP ..], to fetch into the
 * cache meanwhile (at most CE_ROW_GROUP; see prefetch_next_group). */
static void CE_FN(xent_index_group_medium)(const CE_REAL *const *z, ptrdiff_t count, ptrdiff_t ahead,
                                           ptrdiff_t n, const ptrdiff_t *target,
                                           const double *class_weight, CE_REAL *const *grad,
                                           const double *grad_scale, CE_REAL *loss, CE_REAL *rank,
                                           int *special)
{
    CE_REAL zt[CE_GROUP_MAX_CLASSES][CE_ROW_GROUP];
    CE_FN(xent_index_group)(zt, CE_GROUP_MAX_CLASSES, z, count, ahead, n, target, class_weight,
                            grad, grad_scale, loss, rank, special);
}

/* ce_softmax_row, ce_log_softmax_row or ce_row_logsumexp (kind, a
 * CE_GROUP_* value) for a group of rows (see group_exp_sums): the row
 * functions' last steps written out, vectorised over the group;
 * logsumexp: value[k] = row k's. */
CE_INLINE void CE_FN(activation_group)(CE_REAL (*zt)[CE_ROW_GROUP], ptrdiff_t zt_rows,
                                       const CE_REAL *const *z, ptrdiff_t count, ptrdiff_t ahead,
                                       ptrdiff_t n,
                                       int kind, CE_REAL *const *out, CE_REAL *value,
                                       int *special)
{
    n = n < zt_rows ? n : zt_rows;
    enum { G = CE_ROW_GROUP };
    CE_REAL shift[G];
    double sum[G];
    CE_FN(group_exp_sums)(zt, zt_rows, z, count, ahead, n, NULL, NULL, shift, sum, special);
    if (kind == CE_GROUP_LOGSUMEXP) {
        for (ptrdiff_t k = 0; k < count; k++)
            value[k] = (CE_REAL)((double)shift[k] + ce_math_log_f64(sum[k]));
        return;
    }
    if (kind == CE_GROUP_LOG_SOFTMAX) {
        /* Row by row from the input, which out may be (entry by entry). */
        double log_sum[G];
        for (int k = 0; k < G; k++)
            log_sum[k] = ce_math_log_f64(sum[k]);
        for (ptrdiff_t k = 0; k < count; k++)
            for (ptrdiff_t c = 0; !special[k] && c < n; c++)
                out[k][c] = (CE_REAL)(-CE_FN(gap)(z[k][c], shift[k]) - log_sum[k]);
        return;
    }
    CE_REAL inv_sum[G];
    for (int k = 0; k < G; k++)
        inv_sum[k] = (CE_REAL)(1.0 / sum[k]);
#if CE_TILE_SHUFFLES
    /* Scaled in zt, out by tiles (see xent_index_group): for short rows
     * 1.14x faster than row by row with AVX-512, 1.08x with AVX2 (10
     * classes). */
    for (ptrdiff_t c = 0; c < n; c++) {
        CE_NO_UNROLL
        for (int k = 0; k < G; k++)
            zt[c][k] *= inv_sum[k];
    }
    CE_FN(transpose_out)(out, count, special, zt, n);
#else
    for (ptrdiff_t k = 0; k < count; k++)
        for (ptrdiff_t c = 0; !special[k] && c < n; c++)
            out[k][c] = zt[c][k] * inv_sum[k];
#endif
}

/* activation_group with its transposed rows on the stack, sized for short
 * or medium rows (see xent_index_group_short). */
static void CE_FN(activation_group_short)(const CE_REAL *const *z, ptrdiff_t count, ptrdiff_t n,
                                          int kind, CE_REAL *const *out, CE_REAL *value,
                                          int *special)
{
    CE_REAL zt[CE_LANES][CE_ROW_GROUP];
    CE_FN(activation_group)(zt, CE_LANES, z, count, 0, n, kind, out, value, special);
}

/* ahead: see xent_index_group_medium. */
static void CE_FN(activation_group_medium)(const CE_REAL *const *z, ptrdiff_t count,
                                           ptrdiff_t ahead, ptrdiff_t n, int kind,
                                           CE_REAL *const *out, CE_REAL *value, int *special)
{
    CE_REAL zt[CE_GROUP_MAX_CLASSES][CE_ROW_GROUP];
    CE_FN(activation_group)(zt, CE_GROUP_MAX_CLASSES, z, count, ahead, n, kind, out, value,
                            special);
}

/* The row function of kind for row k. */
static void CE_FN(activation_row)(const CE_REAL *z, ptrdiff_t n, int kind, CE_REAL *out,
                                  CE_REAL *value, const CE_REAL *next)
{
    if (kind == CE_GROUP_SOFTMAX)
        CE_FN(softmax_row)(z, out, n, next);
    else if (kind == CE_GROUP_LOG_SOFTMAX)
        CE_FN(log_softmax_row)(z, out, n, next);
    else
        *value = CE_FN(logsumexp_row)(z, n, next);
}

/* Whether the group functions beat the row function on the last `count`
 * rows of a batch (count < CE_ROW_GROUP at the tail): a group costs all its
 * lanes however few rows it holds.  The break-even (AVX-512, float32,
 * with the gradient): about 4 rows of 10 classes, 6-8 of 32-100;
 * one row of 10 classes takes 120 ns alone against 250 ns in a group. */
CE_INLINE int CE_FN(worth_a_group)(ptrdiff_t count, ptrdiff_t n)
{
    return count >= (n <= CE_LANES ? CE_ROW_GROUP / 4 : CE_ROW_GROUP / 2);
}

/* The rows of a batch of `rows` row pointers after the group that starts
 * at `first`, at most a group's worth: those the group fetches meanwhile. */
CE_INLINE ptrdiff_t CE_FN(rows_ahead)(ptrdiff_t first, ptrdiff_t rows)
{
    ptrdiff_t ahead = rows - first - CE_ROW_GROUP;
    return ahead < 0 ? 0 : ahead < CE_ROW_GROUP ? ahead : CE_ROW_GROUP;
}

/* The row function of kind for each of `rows` rows, the same bits; groups
 * of rows through activation_group where it is the faster way (the limits
 * of the softmax loss: with the gradient for rows written out, without for
 * logsumexp). */
static void CE_FN(activation_rows)(const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n,
                                   int kind, CE_REAL *const *out, CE_REAL *value)
{
    ptrdiff_t first = 0;
    int grouped = n >= 1 && n <= (kind == CE_GROUP_LOGSUMEXP ? CE_GROUP_MAX_CLASSES
                                                              : CE_GROUP_MAX_CLASSES_WITH_GRAD);
    if (grouped)
        for (; first < rows; first += CE_ROW_GROUP) {
            ptrdiff_t count = rows - first < CE_ROW_GROUP ? rows - first : CE_ROW_GROUP;
            if (!CE_FN(worth_a_group)(count, n))
                break;
            int special[CE_ROW_GROUP];
            CE_REAL *const *group_out = out ? out + first : NULL;
            CE_REAL *group_value = value ? value + first : NULL;
            if (n <= CE_LANES)
                CE_FN(activation_group_short)(z + first, count, n, kind, group_out, group_value,
                                              special);
            else
                CE_FN(activation_group_medium)(z + first, count, CE_FN(rows_ahead)(first, rows),
                                               n, kind, group_out, group_value, special);
            for (ptrdiff_t k = first; k < first + count; k++)
                if (special[k - first])
                    CE_FN(activation_row)(z[k], n, kind, out ? out[k] : NULL,
                                          value ? value + k : NULL, NULL);
        }
    for (ptrdiff_t k = first; k < rows; k++)
        CE_FN(activation_row)(z[k], n, kind, out ? out[k] : NULL, value ? value + k : NULL,
                              k + 1 < rows ? z[k + 1] : NULL);
}

static void CE_FN(ce_softmax_rows)(const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n,
                                   CE_REAL *const *out)
{
    CE_FN(activation_rows)(z, rows, n, CE_GROUP_SOFTMAX, out, NULL);
}

static void CE_FN(ce_log_softmax_rows)(const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n,
                                       CE_REAL *const *out)
{
    CE_FN(activation_rows)(z, rows, n, CE_GROUP_LOG_SOFTMAX, out, NULL);
}

static void CE_FN(ce_logsumexp_rows)(const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n,
                                     CE_REAL *value)
{
    CE_FN(activation_rows)(z, rows, n, CE_GROUP_LOGSUMEXP, NULL, value);
}

/* The loss of each row (and its gradient) as ce_softmax_xent_index_row
 * gives it, the same bits; groups of rows without label smoothing go through
 * xent_index_group where it is the faster way (CE_GROUP_MAX_CLASSES), every
 * other row through the row function. */
static void CE_FN(ce_softmax_xent_index_rows)(const CE_REAL *const *z, ptrdiff_t rows,
                                              ptrdiff_t after, ptrdiff_t n, const ptrdiff_t *target,
                                              const double *class_weight,
                                              double label_smoothing, CE_REAL *const *grad,
                                              const double *grad_scale, CE_REAL *loss)
{
    ptrdiff_t first = 0;
    int grouped = label_smoothing == 0
                  && n <= (grad ? CE_GROUP_MAX_CLASSES_WITH_GRAD : CE_GROUP_MAX_CLASSES);
    if (grouped)
        for (; first < rows; first += CE_ROW_GROUP) {
            ptrdiff_t count = rows - first < CE_ROW_GROUP ? rows - first : CE_ROW_GROUP;
            if (!CE_FN(worth_a_group)(count, n))
                break;
            int special[CE_ROW_GROUP];
            if (n <= CE_LANES)
                CE_FN(xent_index_group_short)(z + first, count, n, target + first, class_weight,
                                              grad ? grad + first : NULL, grad_scale + first,
                                              loss + first, NULL, special);
            else
                CE_FN(xent_index_group_medium)(z + first, count, CE_FN(rows_ahead)(first, rows + after),
                                               n, target + first, class_weight,
                                               grad ? grad + first : NULL, grad_scale + first,
                                               loss + first, NULL, special);
            for (ptrdiff_t k = first; k < first + count; k++)
                if (special[k - first])
                    loss[k] = CE_FN(ce_softmax_xent_index_row)(z[k], n, target[k], class_weight,
                                                               0.0, grad ? grad[k] : NULL,
                                                               grad_scale[k]);
        }
    for (ptrdiff_t k = first; k < rows; k++)
        loss[k] = CE_FN(xent_index_row)(z[k], n, target[k], class_weight, label_smoothing,
                                        grad ? grad[k] : NULL, grad_scale[k],
                                        k + 1 < rows + after ? z[k + 1] : NULL);
}

/* y'_c = y_c(1-eps) + eps/C;  l = sum_c w_c y'_c (lse - z_c);
 * dl/dz_c = p_c * sum_k w_k y'_k - w_c y'_c. */
static CE_REAL CE_FN(ce_softmax_xent_soft_row)(const CE_REAL *z, const CE_REAL *y, ptrdiff_t n,
                                               const double *class_weight, double label_smoothing,
                                               CE_REAL *grad, double grad_scale)
{
    double keep = 1 - label_smoothing, spread = label_smoothing / (double)n;
    int moderate, stored;
    CE_REAL shift = CE_FN(row_shift)(z, n, &moderate);
    double sum = CE_FN(sum_exp_for_grad)(z, y, grad, n, shift, moderate, &stored, NULL);
    double log_sum = ce_math_log_f64(sum);
    double weight_total;
    double gap = CE_FN(weighted_gap_sum)(z, y, class_weight, keep, spread, n, shift,
                                         &weight_total);
    if (grad && n == 1) {
        /* One class: dl/dz = p*W - W with W = weight_total and p = 1,
         * written with one W so that it is exactly 0, as PyTorch gives; the
         * pass below rebuilds the second W from y, w and eps in CE_REAL,
         * which rounds apart from the float64 W. */
        CE_REAL e = stored ? grad[0] : CE_FN(shifted_exp)(z[0], shift);
        grad[0] = (CE_REAL)(grad_scale * weight_total / sum) * e
                  - (CE_REAL)(grad_scale * weight_total);
    } else if (grad)
        CE_FN(softmax_grad_pass)(z, y, class_weight, shift,
                                 (CE_REAL)(grad_scale * weight_total / sum),
                                 (CE_REAL)grad_scale, (CE_REAL)keep, (CE_REAL)spread, grad, n,
                                 stored);
    return (CE_REAL)(weight_total * log_sum + gap);
}

/* ---- z-loss and softcap (docs/math.md, "Logit transforms") -------------- */

/* cap*tanh(z/cap) in float64, rounded once to the row's dtype.  libm's tanh
 * is one function for every SIMD variant, so every variant gets the same
 * bits. */
CE_INLINE CE_REAL CE_FN(softcapped)(CE_REAL z, double cap)
{
    return (CE_REAL)(cap * tanh((double)z / cap));
}

/* d(cap*tanh(z/cap))/dz = 1 - tanh^2, from the capped value v. */
CE_INLINE CE_REAL CE_FN(softcap_slope)(CE_REAL v, double cap)
{
    double t = (double)v / cap;
    return (CE_REAL)(1.0 - t * t);
}

/* grad_c = ((scale_e*e_c - scale_w*w_c*coef_c) + scale_z*e_c) * slope_c,
 * with e_c = exp(v_c - shift), coef_c = y_c*keep + spread (y NULL: 1) and
 * slope_c the softcap's (cap 0: 1); the z-loss's scale_z*e_c is added only
 * when scale_z is not 0, after the plain part has cancelled, so that a
 * small z-loss gradient keeps its digits (as the reference adds it).
 * Reads v_c before writing grad_c, so v may be grad. */
static void CE_FN(ext_grad_pass)(const CE_REAL *v, const CE_REAL *y, const double *w,
                                 CE_REAL shift, CE_REAL scale_e, CE_REAL scale_z,
                                 CE_REAL scale_w, CE_REAL keep, CE_REAL spread, double cap,
                                 CE_REAL *grad, ptrdiff_t n)
{
    int z_loss = scale_z != 0;
    for (ptrdiff_t c = 0; c < n; c++) {
        CE_REAL vc = v[c], e = CE_FN(shifted_exp)(vc, shift);
        CE_REAL coef = y ? y[c] * keep + spread : 1;
        CE_REAL wc = w ? (CE_REAL)w[c] : 1;
        CE_REAL g = scale_e * e - scale_w * (wc * coef), with_z = g + scale_z * e;
        g = z_loss ? with_z : g;
        grad[c] = cap != 0 ? g * CE_FN(softcap_slope)(vc, cap) : g;
    }
}

/* Softmax cross-entropy of the logits v = softcap*tanh(z/softcap) (v = z
 * when softcap is 0), plus z_loss*w*lse^2 with lse the log-sum-exp of v and
 * w the sample's class weight (w_t for an index target, 1 for soft targets):
 *   index t (y NULL): l = (1-eps)*w_t*(lse - v_t) + (eps/C)*sum_c w_c*(lse - v_c)
 *   soft y:           l = sum_c w_c*y'_c*(lse - v_c),  y'_c = y_c(1-eps) + eps/C
 *   dl/dv_c = (A + 2*z_loss*w*lse)*p_c - (the target's part), A the
 *   coefficient of p_c of the plain loss; dl/dz_c = dl/dv_c * (1 - (v_c/softcap)^2).
 * The capped logits are written to grad when it is wanted (grad may be z:
 * every pass reads entry c before the gradient pass writes it), else to
 * work (n entries; unused when softcap is 0).  *lse_out = lse. */
static CE_REAL CE_FN(ce_softmax_xent_ext_row)(const CE_REAL *z, const CE_REAL *y, ptrdiff_t n,
                                              ptrdiff_t target, const double *class_weight,
                                              double label_smoothing, double z_loss,
                                              double softcap, CE_REAL *grad, CE_REAL *work,
                                              double grad_scale, CE_REAL *lse_out)
{
    double eps = label_smoothing, keep = 1 - eps, spread = eps / (double)n;
    double weight_total = 0, loss, a, w_sample;
    const CE_REAL *v = z;
    int moderate;
    if (softcap != 0) {
        CE_REAL *capped = grad ? grad : work;
        for (ptrdiff_t c = 0; c < n; c++)
            capped[c] = CE_FN(softcapped)(z[c], softcap);
        v = capped;
    }
    CE_REAL shift = CE_FN(row_shift)(v, n, &moderate);
    double sum = CE_FN(sum_exp_shifted)(v, n, shift, moderate);
    double log_sum = ce_math_log_f64(sum);
    double lse = (double)shift + log_sum;
    if (y == NULL) {
        w_sample = class_weight ? class_weight[target] : 1.0;
        loss = keep * w_sample * (log_sum + CE_FN(gap)(v[target], shift));
        if (eps != 0) {
            double gap = CE_FN(weighted_gap_sum)(v, NULL, class_weight, 1.0, 0.0, n, shift,
                                                 &weight_total);
            loss += spread * (weight_total * log_sum + gap);
        }
        a = keep * w_sample + spread * weight_total;
    } else {
        double gap = CE_FN(weighted_gap_sum)(v, y, class_weight, keep, spread, n, shift,
                                             &weight_total);
        loss = weight_total * log_sum + gap;
        a = weight_total;
        w_sample = 1.0;
    }
    *lse_out = (CE_REAL)lse;
    if (grad) {
        /* The z-loss adds 2*z_loss*w*lse*p_c to the gradient: its own scale. */
        CE_REAL scale_e = (CE_REAL)(grad_scale * a / sum);
        CE_REAL scale_z = (CE_REAL)(z_loss != 0 ? grad_scale * 2 * z_loss * w_sample * lse / sum
                                                : 0.0);
        if (y == NULL) {
            CE_REAL v_t = v[target], e_t = CE_FN(shifted_exp)(v_t, shift);
            /* One class: p_t = 1 and the plain part a*p_t - a is exactly 0
             * when written with one a (as xent_index_row). */
            CE_REAL target_term = n == 1 ? (CE_REAL)(grad_scale * a)
                                         : (CE_REAL)(grad_scale * w_sample * (keep + spread));
            CE_REAL g_t = scale_e * e_t - target_term;
            if (scale_z != 0)
                g_t = g_t + scale_z * e_t;
            CE_FN(ext_grad_pass)(v, NULL, class_weight, shift, scale_e, scale_z,
                                 (CE_REAL)(grad_scale * spread), 1, 0, softcap, grad, n);
            grad[target] = softcap != 0 ? g_t * CE_FN(softcap_slope)(v_t, softcap) : g_t;
        } else {
            CE_FN(ext_grad_pass)(v, y, class_weight, shift, scale_e, scale_z, (CE_REAL)grad_scale,
                                 (CE_REAL)keep, (CE_REAL)spread, softcap, grad, n);
        }
    }
    if (z_loss != 0)
        loss += z_loss * w_sample * lse * lse;
    return (CE_REAL)loss;
}

CE_INLINE double CE_FN(weighted_clamped_log_loop)(const CE_REAL *p, const CE_REAL *y,
                                                  const double *w, double keep, double spread,
                                                  ptrdiff_t n, int has_y, int has_w)
{
    double acc[CE_LANES] = {0};
    for (ptrdiff_t i = 0; i < n; i += CE_LANES) {
        ptrdiff_t len = n - i < CE_LANES ? n - i : CE_LANES;
        for (int j = 0; j < len; j++) {
            double coef = (has_y ? (double)y[i + j] * keep : keep) + spread;
            double wc = (has_w ? w[i + j] : 1.0) * coef;
            acc[j] += wc * (double)CE_FN(clamped_log)(p[i + j]);
        }
    }
    return CE_VARIANT_NAME(ce_lanes_total)(acc);
}

/* sum_c w_c * coef_c * clamped_log(p_c), coef_c = y_c*keep + spread. */
static double CE_FN(weighted_clamped_log_sum)(const CE_REAL *p, const CE_REAL *y,
                                              const double *w, double keep, double spread,
                                              ptrdiff_t n)
{
    if (y && w)
        return CE_FN(weighted_clamped_log_loop)(p, y, w, keep, spread, n, 1, 1);
    if (y)
        return CE_FN(weighted_clamped_log_loop)(p, y, w, keep, spread, n, 1, 0);
    if (w)
        return CE_FN(weighted_clamped_log_loop)(p, y, w, keep, spread, n, 0, 1);
    return CE_FN(weighted_clamped_log_loop)(p, y, w, keep, spread, n, 0, 0);
}

CE_INLINE void CE_FN(categorical_grad_loop)(const CE_REAL *p, const CE_REAL *y, const double *w,
                                            CE_REAL scale, CE_REAL keep, CE_REAL spread,
                                            CE_REAL *grad, ptrdiff_t n, int has_y, int has_w)
{
    for (ptrdiff_t c = 0; c < n; c++) {
        CE_REAL coef = has_y ? y[c] * keep + spread : 1;
        CE_REAL wc = has_w ? (CE_REAL)w[c] : 1;
        grad[c] = 0 - scale * (wc * coef) / CE_FN(at_least_eps)(p[c]);
    }
}

/* grad_c = 0 - scale * w_c * coef_c / max(p_c, 1e-12); the 0 - keeps a zero
 * gradient +0. */
static void CE_FN(categorical_grad_pass)(const CE_REAL *p, const CE_REAL *y, const double *w,
                                         CE_REAL scale, CE_REAL keep, CE_REAL spread,
                                         CE_REAL *grad, ptrdiff_t n)
{
    if (y && w)
        CE_FN(categorical_grad_loop)(p, y, w, scale, keep, spread, grad, n, 1, 1);
    else if (y)
        CE_FN(categorical_grad_loop)(p, y, w, scale, keep, spread, grad, n, 1, 0);
    else if (w)
        CE_FN(categorical_grad_loop)(p, y, w, scale, keep, spread, grad, n, 0, 1);
    else
        CE_FN(categorical_grad_loop)(p, y, w, scale, keep, spread, grad, n, 0, 0);
}

/* SPEC 1.7: a NaN anywhere in a row makes its loss NaN, also where the
 * formula reads the target's entry only.  One vectorised pass of compares
 * (through the row max's lane tree the test costs 4x a short row's whole
 * NLL). */
static int CE_FN(row_has_nan)(const CE_REAL *x, ptrdiff_t n)
{
    int nan = 0;
    for (ptrdiff_t c = 0; c < n; c++)
        nan |= x[c] != x[c];
    return nan;
}

static CE_REAL CE_FN(ce_categorical_xent_index_row)(const CE_REAL *p, ptrdiff_t n,
                                                    ptrdiff_t target, const double *class_weight,
                                                    double label_smoothing, CE_REAL *grad,
                                                    double grad_scale)
{
    double eps = label_smoothing, w_t = class_weight ? class_weight[target] : 1.0;
    double loss = -(1 - eps) * w_t * (double)CE_FN(clamped_log)(p[target]);
    if (eps != 0)
        loss -= eps / (double)n
                * CE_FN(weighted_clamped_log_sum)(p, NULL, class_weight, 1.0, 0.0, n);
    else if (CE_FN(row_has_nan)(p, n))
        loss = NAN;
    if (grad) {
        CE_FN(categorical_grad_pass)(p, NULL, class_weight,
                                     (CE_REAL)(grad_scale * eps / (double)n), 1, 0, grad, n);
        grad[target] = 0 - (CE_REAL)(grad_scale * w_t * (1 - eps + eps / (double)n))
                               / CE_FN(at_least_eps)(p[target]);
    }
    return (CE_REAL)loss;
}

static CE_REAL CE_FN(ce_categorical_xent_soft_row)(const CE_REAL *p, const CE_REAL *y,
                                                   ptrdiff_t n, const double *class_weight,
                                                   double label_smoothing, CE_REAL *grad,
                                                   double grad_scale)
{
    double keep = 1 - label_smoothing, spread = label_smoothing / (double)n;
    double loss = -CE_FN(weighted_clamped_log_sum)(p, y, class_weight, keep, spread, n);
    if (grad)
        CE_FN(categorical_grad_pass)(p, y, class_weight, (CE_REAL)grad_scale, (CE_REAL)keep,
                                     (CE_REAL)spread, grad, n);
    return (CE_REAL)loss;
}

static CE_REAL CE_FN(ce_nll_index_row)(const CE_REAL *x, ptrdiff_t n, ptrdiff_t target,
                                       const double *class_weight, CE_REAL *grad,
                                       double grad_scale)
{
    double w_t = class_weight ? class_weight[target] : 1.0;
    if (grad) {
        for (ptrdiff_t c = 0; c < n; c++)
            grad[c] = 0;
        grad[target] = (CE_REAL)(0.0 - grad_scale * w_t);
    }
    return CE_FN(row_has_nan)(x, n) ? (CE_REAL)NAN : (CE_REAL)(-w_t * (double)x[target]);
}

/* ce_nll_index_row for `rows` rows, the same bits.  Rows that follow each
 * other in memory (inputs, and gradients when asked for) go by runs: one
 * memset zeroes a run's gradient rows and one scan looks for a NaN in all
 * its inputs (a short row's own memset or scan costs more than the rest of
 * its NLL); only a run holding a NaN is looked at row by row. */
static void CE_FN(ce_nll_index_rows)(const CE_REAL *const *x, ptrdiff_t rows, ptrdiff_t n,
                                     const ptrdiff_t *target, const double *class_weight,
                                     CE_REAL *const *grad, const double *grad_scale,
                                     CE_REAL *loss)
{
    ptrdiff_t first = 0;
    while (first < rows) {
        ptrdiff_t end = first + 1;
        while (end < rows && x[end] == x[end - 1] + n && (!grad || grad[end] == grad[end - 1] + n))
            end++;
        if (grad)
            memset(grad[first], 0, (size_t)(end - first) * (size_t)n * sizeof(CE_REAL));
        int run_has_nan = CE_FN(row_has_nan)(x[first], (end - first) * n);
        for (ptrdiff_t k = first; k < end; k++) {
            double w_t = class_weight ? class_weight[target[k]] : 1.0;
            if (grad)
                grad[k][target[k]] = (CE_REAL)(0.0 - grad_scale[k] * w_t);
            loss[k] = run_has_nan && CE_FN(row_has_nan)(x[k], n)
                          ? (CE_REAL)NAN
                          : (CE_REAL)(-w_t * (double)x[k][target[k]]);
        }
        first = end;
    }
}

/* ---- evaluation: the target's rank ---------------------------------------- */

/* The rank of one row's target in one branch-free pass over the row:
 * entry c counts when z_c > z_t, or z_c == z_t before the target.  The
 * counts and the entry indices are 32-bit, so that a compare mask fills a
 * whole vector (64-bit ones would halve it): rows of up to 2^31 - 1
 * entries (longer rows go by runs of that length). */
CE_INLINE ptrdiff_t CE_FN(count_above)(const CE_REAL *z, ptrdiff_t n, ptrdiff_t t, int *nan)
{
    CE_REAL zt = z[t];
    ptrdiff_t total = 0;
    int seen = 0;
    for (ptrdiff_t start = 0; start < n; start += INT32_MAX) {
        int32_t len = (int32_t)(n - start < INT32_MAX ? n - start : INT32_MAX);
        int32_t before = (int32_t)(t - start < 0 ? 0 : t - start < len ? t - start : len);
        const CE_REAL *row = z + start;
        int32_t above = 0;
        for (int32_t c = 0; c < len; c++) {
            CE_REAL v = row[c];
            int tie_before = (v == zt) & (c < before);
            above += (v > zt) | tie_before;
            seen |= v != v;
        }
        total += above;
    }
    *nan |= seen;
    return total;
}

static void CE_FN(ce_target_ranks)(const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n,
                                   const ptrdiff_t *target, CE_REAL *rank)
{
    for (ptrdiff_t k = 0; k < rows; k++) {
        int nan = 0;
        ptrdiff_t above = CE_FN(count_above)(z[k], n, target[k], &nan);
        rank[k] = (CE_REAL)(nan ? n : above);
    }
}

/* Fetches the n entries of each of the rows into the cache (a hint: an
 * address past the data does not fault). */
CE_INLINE void CE_FN(prefetch_rows)(const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n)
{
    for (ptrdiff_t k = 0; k < rows; k++)
        for (ptrdiff_t c = 0; c < n; c += CE_CACHE_LINE / sizeof(CE_REAL))
            __builtin_prefetch(z[k] + c);
}

/* ce_softmax_xent_index_rows without a gradient, for the evaluation
 * kernels: the same row and group functions on the same rows in the same
 * order, so the same bits, and rank (NULL: none) gets each row's target
 * rank, in a group from its transposed rows (group_ranks), else by
 * ce_target_ranks while the row is still in L1.  The first group's rows
 * are fetched at once (the others are fetched by the group before them). */
static void CE_FN(ce_softmax_xent_index_eval_rows)(const CE_REAL *const *z, ptrdiff_t rows,
                                                   ptrdiff_t after, ptrdiff_t n,
                                                   const ptrdiff_t *target,
                                                   const double *class_weight,
                                                   double label_smoothing, CE_REAL *loss,
                                                   CE_REAL *rank)
{
    enum { G = CE_ROW_GROUP };
    ptrdiff_t first = 0;
    double ones[G];
    for (int k = 0; k < G; k++)
        ones[k] = 1.0;
    if (label_smoothing == 0 && n <= CE_GROUP_MAX_CLASSES) {
        CE_FN(prefetch_rows)(z, rows < G ? rows : G, n);
        for (; first < rows; first += G) {
            ptrdiff_t count = rows - first < G ? rows - first : G;
            if (!CE_FN(worth_a_group)(count, n))
                break;
            int special[G];
            if (n <= CE_LANES)
                CE_FN(xent_index_group_short)(z + first, count, n, target + first, class_weight,
                                              NULL, ones, loss + first, rank ? rank + first : NULL,
                                              special);
            else
                CE_FN(xent_index_group_medium)(z + first, count, CE_FN(rows_ahead)(first, rows + after),
                                               n, target + first, class_weight, NULL, ones,
                                               loss + first, rank ? rank + first : NULL, special);
            for (ptrdiff_t k = first; k < first + count; k++)
                if (special[k - first]) {
                    loss[k] = CE_FN(ce_softmax_xent_index_row)(z[k], n, target[k], class_weight,
                                                               0.0, NULL, 1.0);
                    if (rank)
                        CE_FN(ce_target_ranks)(z + k, 1, n, target + k, rank + k);
                }
        }
    }
    for (ptrdiff_t k = first; k < rows; k++) {
        loss[k] = CE_FN(xent_index_row)(z[k], n, target[k], class_weight, label_smoothing, NULL,
                                        1.0, k + 1 < rows + after ? z[k + 1] : NULL);
        if (rank)
            CE_FN(ce_target_ranks)(z + k, 1, n, target + k, rank + k);
    }
}

/* ---- primitive blocks (tests and timing only) -------------------------- */

static void CE_FN(ce_exp_block)(const CE_REAL *x, CE_REAL *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = CE_MATH(exp)(x[i]);
}

/* x in exp_moderate's range (garbage outside). */
static void CE_FN(ce_exp_moderate_block)(const CE_REAL *x, CE_REAL *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = CE_MATH(exp_moderate)(x[i]);
}

static void CE_FN(ce_log_block)(const CE_REAL *x, CE_REAL *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = CE_MATH(log)(x[i]);
}

static void CE_FN(ce_log1p_block)(const CE_REAL *x, CE_REAL *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = CE_MATH(log1p)(x[i]);
}

static void CE_FN(ce_log1pexp_block)(const CE_REAL *x, CE_REAL *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = CE_MATH(log1pexp)(x[i]);
}

/* ---- gradient-boosting objectives ---------------------------------------- */

#include "crossent_objectives_typed.h"
