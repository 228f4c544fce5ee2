/*
 * crossent_objectives_typed.h -- gradient-boosting objectives: the gradient
 * AND the Hessian of a per-row loss with respect to raw margins, in one pass
 * (python/crossent/objectives.py, docs/boosting.md).  Not a normal header:
 * crossent_rows_typed.h includes it at its end, so it is compiled like the
 * rest of that file for float32 and float64 and for every SIMD variant, with
 * CE_REAL, CE_FN and CE_MATH of the variant.
 *
 * The Hessian rules (hessian_rule), with h the per-row curvature and s the
 * sample weight (1 without one):
 *   CE_HESSIAN_FLOOR_THEN_WEIGH  max(factor p(1-p), min_hessian) * s
 *   CE_HESSIAN_WEIGH_THEN_FLOOR  max(factor p(1-p) * s, min_hessian)
 *                                (XGBoost's multi:softprob floors last)
 *   CE_HESSIAN_RESIDUAL          max(|p - y|, min_hessian) * s
 * A NaN Hessian stays NaN (the floor is a compare, not fmax), and
 * min_hessian = -inf floors nothing.  The gradient is (p - y) * s.
 */
#ifndef CE_OBJECTIVES_RULES
#define CE_OBJECTIVES_RULES
#define CE_HESSIAN_FLOOR_THEN_WEIGH 0
#define CE_HESSIAN_WEIGH_THEN_FLOOR 1
#define CE_HESSIAN_RESIDUAL 2
#endif

/* One entry's Hessian from its gradient g = p - y (unweighted) and its
 * curvature factor * p(1-p), by the rule. */
CE_INLINE CE_REAL CE_FN(objective_hessian)(CE_REAL g, CE_REAL curvature, CE_REAL s, int rule,
                                           CE_REAL min_h)
{
    CE_REAL residual = g < 0 ? -g : g;
    CE_REAL h = rule == CE_HESSIAN_RESIDUAL ? residual : curvature;
    CE_REAL weighted = h * s;
    CE_REAL floored_first = (h < min_h ? min_h : h) * s;
    CE_REAL floored_last = weighted < min_h ? min_h : weighted;
    return rule == CE_HESSIAN_WEIGH_THEN_FLOOR ? floored_last : floored_first;
}

/* Binary logistic loss of a margin z and a target y in [0, 1]:
 *   l = softplus(z) - y z,  dl/dz = sigmoid(z) - y,  d2l/dz2 = sigmoid(z) sigmoid(-z).
 * The gradient is written (1-y) sigmoid(z) - y sigmoid(-z) and the
 * curvature sigmoid(z) sigmoid(-z), both without 1 - p, so that they keep
 * their relative accuracy at large |z| (at z = 40, 1 - p is 0 while
 * sigmoid(-z) is 4e-18).  e = exp(-|z|) and r = 1/(1 + e) come in computed. */
CE_INLINE void CE_FN(logistic_objective_point)(CE_REAL z, CE_REAL y, CE_REAL s, int rule,
                                               CE_REAL factor, CE_REAL min_h, CE_REAL e,
                                               CE_REAL r, CE_REAL *grad, CE_REAL *hess)
{
    CE_REAL er = e * r;
    CE_REAL sigmoid_z = z >= 0 ? r : er, sigmoid_minus_z = z >= 0 ? er : r;
    CE_REAL g = (1 - y) * sigmoid_z - y * sigmoid_minus_z;
    CE_REAL curvature = factor * (sigmoid_z * sigmoid_minus_z);
    *grad = g * s;
    *hess = CE_FN(objective_hessian)(g, curvature, s, rule, min_h);
}

/* exp(-|z|) and 1/(1 + exp(-|z|)) of a block, in passes (see bce_logits_loop). */
CE_INLINE void CE_FN(logistic_exp_parts)(const CE_REAL *zb, ptrdiff_t len, CE_REAL *e, CE_REAL *r)
{
    CE_FN(exp_minus_abs)(zb, e, len);
    for (ptrdiff_t i = 0; i < len; i++)
        r[i] = 1 / (1 + e[i]);
}

/* has_s: a constant after inlining (a branch-free loop either way). */
CE_INLINE void CE_FN(logistic_objective_loop)(const CE_REAL *z, const CE_REAL *y, const CE_REAL *s,
                                              int rule, CE_REAL factor, CE_REAL min_h,
                                              CE_REAL *grad, CE_REAL *hess, ptrdiff_t n, int has_s)
{
    CE_REAL e[CE_BCE_BLOCK], r[CE_BCE_BLOCK];
    for (ptrdiff_t start = 0; start < n; start += CE_BCE_BLOCK) {
        ptrdiff_t len = n - start < CE_BCE_BLOCK ? n - start : CE_BCE_BLOCK;
        CE_FN(logistic_exp_parts)(z + start, len, e, r);
        for (ptrdiff_t i = 0; i < len; i++)
            CE_FN(logistic_objective_point)(z[start + i], y[start + i], has_s ? s[start + i] : 1,
                                            rule, factor, min_h, e[i], r[i], grad + start + i,
                                            hess + start + i);
    }
}

static void CE_FN(ce_logistic_objective_block)(const CE_REAL *z, const CE_REAL *y, const CE_REAL *s,
                                               ptrdiff_t rule, double factor, double min_hessian,
                                               CE_REAL *grad, CE_REAL *hess, ptrdiff_t n)
{
    CE_REAL factor_r = (CE_REAL)factor, min_h = (CE_REAL)min_hessian;
    if (s)
        CE_FN(logistic_objective_loop)(z, y, s, (int)rule, factor_r, min_h, grad, hess, n, 1);
    else
        CE_FN(logistic_objective_loop)(z, y, s, (int)rule, factor_r, min_h, grad, hess, n, 0);
}

/* Binary focal loss of a margin z and a 0/1 target y (docs/math.md section
 * 8), as a function of u = z (y = 1) or -z (y = 0), with p = sigmoid(u) the
 * probability of the true class, q = 1 - p = sigmoid(-u), ce = -log p =
 * softplus(-u) and a = alpha_t:
 *   l = a ce q^g,
 *   dl/du = -a q^g (q + g p ce),
 *   d2l/du2 = a q^g (p q (1 + 2g) + g p ce (g p - q)),
 * and dl/dz = +-dl/du, d2l/dz2 = d2l/du2.  The Hessian is negative for badly
 * wrong margins when g > 0 (ce large, p small): min_hessian floors it.
 * q^g = exp(g log q) with log q = -softplus(u), exact where q underflows;
 * p ce is 0 where p is (its limit, never 0 * inf). */
CE_INLINE void CE_FN(focal_objective_point)(CE_REAL z, CE_REAL y, CE_REAL s, CE_REAL alpha_r,
                                            CE_REAL one_minus_alpha_r, int weigh_alpha,
                                            CE_REAL gamma_r, CE_REAL min_h, CE_REAL e,
                                            CE_REAL log1p_e, CE_REAL r, CE_REAL *grad,
                                            CE_REAL *hess)
{
    int positive = y == 1;
    CE_REAL er = e * r, minus_z = -z;
    CE_REAL sigmoid_z = z >= 0 ? r : er, sigmoid_minus_z = z >= 0 ? er : r;
    CE_REAL softplus_z = (z > 0 ? z : 0) + log1p_e;
    CE_REAL softplus_minus_z = (z < 0 ? minus_z : 0) + log1p_e;
    CE_REAL p = positive ? sigmoid_z : sigmoid_minus_z;
    CE_REAL q = positive ? sigmoid_minus_z : sigmoid_z;
    CE_REAL ce = positive ? softplus_minus_z : softplus_z;
    CE_REAL log_q = positive ? -softplus_z : -softplus_minus_z;
    CE_REAL power = CE_MATH(exp)(gamma_r * log_q);
    CE_REAL modulator = gamma_r == 0 ? 1 : power;
    CE_REAL alpha_t = weigh_alpha ? (positive ? alpha_r : one_minus_alpha_r) : 1;
    CE_REAL p_ce_any = p * ce;
    CE_REAL p_ce = p == 0 ? 0 : p_ce_any;
    CE_REAL weighted_modulator = alpha_t * modulator;
    CE_REAL slope = weighted_modulator * (q + gamma_r * p_ce);
    CE_REAL g = positive ? -slope : slope;
    CE_REAL curvature =
        weighted_modulator * (p * q * (1 + 2 * gamma_r) + gamma_r * p_ce * (gamma_r * p - q));
    *grad = g * s;
    *hess = (curvature < min_h ? min_h : curvature) * s;
}

CE_INLINE void CE_FN(focal_objective_loop)(const CE_REAL *z, const CE_REAL *y, const CE_REAL *s,
                                           double alpha, double gamma, CE_REAL min_h, CE_REAL *grad,
                                           CE_REAL *hess, ptrdiff_t n, int has_s)
{
    CE_REAL e[CE_BCE_BLOCK], log1p_e[CE_BCE_BLOCK], r[CE_BCE_BLOCK];
    int weigh_alpha = alpha >= 0;
    CE_REAL alpha_r = (CE_REAL)alpha, one_minus_alpha_r = (CE_REAL)(1.0 - alpha);
    CE_REAL gamma_r = (CE_REAL)gamma;
    for (ptrdiff_t start = 0; start < n; start += CE_BCE_BLOCK) {
        ptrdiff_t len = n - start < CE_BCE_BLOCK ? n - start : CE_BCE_BLOCK;
        CE_FN(logistic_parts)(z + start, len, e, log1p_e, r);
        for (ptrdiff_t i = 0; i < len; i++)
            CE_FN(focal_objective_point)(z[start + i], y[start + i], has_s ? s[start + i] : 1,
                                         alpha_r, one_minus_alpha_r, weigh_alpha, gamma_r, min_h,
                                         e[i], log1p_e[i], r[i], grad + start + i, hess + start + i);
    }
}

static void CE_FN(ce_focal_objective_block)(const CE_REAL *z, const CE_REAL *y, const CE_REAL *s,
                                            double alpha, double gamma, double min_hessian,
                                            CE_REAL *grad, CE_REAL *hess, ptrdiff_t n)
{
    CE_REAL min_h = (CE_REAL)min_hessian;
    if (s)
        CE_FN(focal_objective_loop)(z, y, s, alpha, gamma, min_h, grad, hess, n, 1);
    else
        CE_FN(focal_objective_loop)(z, y, s, alpha, gamma, min_h, grad, hess, n, 0);
}

/* The gradient and Hessian of `rows` softmax rows that lie one after the
 * other in memory (row k at grad + k*n, hess + k*n, y + k*n), p (the rows'
 * softmax) already in grad: grad = (p - y) s, y the one-hot row of target[k]
 * (target not NULL) or the soft row; s NULL: weights of 1.  Each step is a
 * pass over all rows*n entries (or over each row's n), which the vectoriser
 * takes whole even for short rows; every entry goes through the operations
 * of objective_hessian in the same order (p - 0 is p, h * 1 is h). */
static void CE_FN(softmax_objective_span)(const CE_REAL *y, const ptrdiff_t *target,
                                          const CE_REAL *s, ptrdiff_t rows, ptrdiff_t n, int rule,
                                          CE_REAL factor, CE_REAL min_h, CE_REAL *grad,
                                          CE_REAL *hess)
{
    ptrdiff_t total = rows * n;
    if (rule != CE_HESSIAN_RESIDUAL)
        for (ptrdiff_t i = 0; i < total; i++)
            hess[i] = factor * (grad[i] * (1 - grad[i]));
    if (y)
        for (ptrdiff_t i = 0; i < total; i++)
            grad[i] = grad[i] - y[i];
    else
        for (ptrdiff_t k = 0; k < rows; k++)
            grad[k * n + target[k]] -= 1;
    if (rule == CE_HESSIAN_RESIDUAL)
        for (ptrdiff_t i = 0; i < total; i++)
            hess[i] = grad[i] < 0 ? -grad[i] : grad[i];
    if (!s) {
        /* a weight of 1: both floor orders give max(h, min_h) */
        for (ptrdiff_t i = 0; i < total; i++)
            hess[i] = hess[i] < min_h ? min_h : hess[i];
        return;
    }
    for (ptrdiff_t k = 0; k < rows; k++) {
        CE_REAL w = s[k], *g = grad + k * n, *h = hess + k * n;
        if (rule == CE_HESSIAN_WEIGH_THEN_FLOOR) {
            for (ptrdiff_t c = 0; c < n; c++) {
                CE_REAL weighted = h[c] * w;
                h[c] = weighted < min_h ? min_h : weighted;
            }
        } else {
            for (ptrdiff_t c = 0; c < n; c++)
                h[c] = (h[c] < min_h ? min_h : h[c]) * w;
        }
        for (ptrdiff_t c = 0; c < n; c++)
            g[c] = g[c] * w;
    }
}

/* Whether rows 0..rows-1 of each array follow one another (row k at
 * rows_of[0] + k*n); y may be NULL. */
static int CE_FN(rows_follow)(CE_REAL *const *a, CE_REAL *const *b, const CE_REAL *const *y,
                              ptrdiff_t rows, ptrdiff_t n)
{
    for (ptrdiff_t k = 1; k < rows; k++)
        if (a[k] != a[0] + k * n || b[k] != b[0] + k * n || (y && y[k] != y[0] + k * n))
            return 0;
    return 1;
}

/* Softmax rows: p = softmax(z[k]) by ce_softmax_rows (the bits of
 * ce_softmax_row), then the gradient p - y and the Hessian by the rule, y the
 * one-hot row of target[k] (target not NULL) or the soft row y[k]; s NULL:
 * weights of 1.  Rows that follow one another in memory (C-contiguous
 * outputs, the usual case) go through softmax_objective_span together. */
static void CE_FN(ce_softmax_objective_rows)(const CE_REAL *const *z, ptrdiff_t rows, ptrdiff_t n,
                                             const ptrdiff_t *target, const CE_REAL *const *y,
                                             const CE_REAL *s, ptrdiff_t rule, double factor,
                                             double min_hessian, CE_REAL *const *grad,
                                             CE_REAL *const *hess)
{
    CE_REAL factor_r = (CE_REAL)factor, min_h = (CE_REAL)min_hessian;
    const CE_REAL *const *soft = target ? NULL : y;
    if (rows <= 0)
        return;
    CE_FN(ce_softmax_rows)(z, rows, n, grad);
    if (CE_FN(rows_follow)(grad, hess, soft, rows, n)) {
        CE_FN(softmax_objective_span)(soft ? soft[0] : NULL, target, s, rows, n, (int)rule,
                                      factor_r, min_h, grad[0], hess[0]);
        return;
    }
    for (ptrdiff_t k = 0; k < rows; k++)
        CE_FN(softmax_objective_span)(soft ? soft[k] : NULL, target ? target + k : NULL,
                                      s ? s + k : NULL, 1, n, (int)rule, factor_r, min_h, grad[k],
                                      hess[k]);
}
