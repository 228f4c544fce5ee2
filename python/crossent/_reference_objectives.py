"""The NumPy reference of the gradient-boosting objective kernels
(``logistic_objective``, ``focal_objective``, ``softmax_objective_index``,
``softmax_objective_soft``), with the signatures of the kernel table;
``_reference`` exports them.  Each writes the gradient and the Hessian of each
sample's loss with respect to its raw margin into ``grad_out`` and
``hess_out``, computed in the operands' dtype.  The formulas are in
docs/boosting.md and csrc/crossent_objectives_typed.h.
"""
import numpy as np

# Hessian rules (csrc/crossent_objectives_typed.h, CE_HESSIAN_*).
FLOOR_THEN_WEIGH = 0   # max(factor·p(1−p), floor)·s
WEIGH_THEN_FLOOR = 1   # max(factor·p(1−p)·s, floor), XGBoost's multi:softprob
RESIDUAL = 2           # max(|p − y|, floor)·s


def _floor(h, floor):
    """max(h, floor), a NaN staying NaN."""
    return np.where(h < floor, floor, h).astype(h.dtype, copy=False)


def _hessian(g, curvature, s, rule, floor):
    """The Hessian by the rule, from the unweighted gradient g = p − y."""
    h = np.abs(g) if rule == RESIDUAL else curvature
    if rule == WEIGH_THEN_FLOOR:
        return _floor(h * s, floor)
    return _floor(h, floor) * s


def _sigmoids(z):
    """σ(z) and σ(−z), each from exp(−|z|) so that neither is 1 − the other."""
    e = np.exp(-np.abs(z))
    r = 1 / (1 + e)
    return np.where(z >= 0, r, e * r), np.where(z >= 0, e * r, r)


def _weights(sample_weight, dtype):
    return dtype.type(1) if sample_weight is None else sample_weight


def logistic_objective(z2, y2, sample_weight2, hessian_rule, hessian_factor, min_hessian,
                       grad_out2, hess_out2, n_threads):
    dtype = z2.dtype
    floor = dtype.type(min_hessian)
    s = _weights(sample_weight2, dtype)
    p, q = _sigmoids(z2)
    g = (1 - y2) * p - y2 * q
    curvature = dtype.type(hessian_factor) * (p * q)
    grad_out2[...] = g * s
    hess_out2[...] = _hessian(g, curvature, s, hessian_rule, floor)


def focal_objective(z2, y2, sample_weight2, alpha, gamma, min_hessian, grad_out2, hess_out2,
                    n_threads):
    """u = z for y = 1, −z for y = 0; p = σ(u), q = σ(−u), ce = softplus(−u):
    dl/du = −a q^γ (q + γ p ce), d²l/du² = a q^γ (p q (1 + 2γ) + γ p ce (γ p − q))."""
    dtype = z2.dtype
    g_ = dtype.type(gamma)
    positive = y2 == 1
    u = np.where(positive, z2, -z2)
    p, q = _sigmoids(u)
    ce = np.maximum(-u, 0) + np.log1p(np.exp(-np.abs(u)))
    log_q = -(np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u))))
    with np.errstate(invalid="ignore", over="ignore"):
        modulator = np.ones_like(u) if gamma == 0 else np.exp(g_ * log_q)
        p_ce = np.where(p == 0, 0, p * ce).astype(dtype)
    if alpha >= 0:
        a = np.where(positive, dtype.type(alpha), dtype.type(1.0 - alpha))
    else:
        a = dtype.type(1)
    slope = a * modulator * (q + g_ * p_ce)
    curvature = a * modulator * (p * q * (1 + 2 * g_) + g_ * p_ce * (g_ * p - q))
    s = _weights(sample_weight2, dtype)
    grad_out2[...] = np.where(positive, -slope, slope) * s
    hess_out2[...] = _floor(curvature, dtype.type(min_hessian)) * s


def _softmax(z3):
    from ._reference import _shift_by_row_max
    e = np.exp(_shift_by_row_max(z3))
    with np.errstate(invalid="ignore"):   # a row of -inf or NaN is NaN (SPEC 1.7)
        return e / np.sum(e, axis=-1, keepdims=True, dtype=np.float64).astype(z3.dtype)


def _softmax_objective(z3, y3, sample_weight2, hessian_rule, hessian_factor, min_hessian,
                       grad_out3, hess_out3):
    dtype = z3.dtype
    p = _softmax(z3)
    g = p - y3
    curvature = dtype.type(hessian_factor) * (p * (1 - p))
    s = _weights(None if sample_weight2 is None else sample_weight2[..., None], dtype)
    grad_out3[...] = g * s
    hess_out3[...] = _hessian(g, curvature, s, hessian_rule, dtype.type(min_hessian))


def softmax_objective_index(z3, target2, sample_weight2, hessian_rule, hessian_factor,
                            min_hessian, grad_out3, hess_out3, n_threads):
    one_hot = (np.arange(z3.shape[-1]) == target2[..., None]).astype(z3.dtype)
    _softmax_objective(z3, one_hot, sample_weight2, hessian_rule, hessian_factor, min_hessian,
                       grad_out3, hess_out3)


def softmax_objective_soft(z3, y3, sample_weight2, hessian_rule, hessian_factor, min_hessian,
                           grad_out3, hess_out3, n_threads):
    _softmax_objective(z3, y3, sample_weight2, hessian_rule, hessian_factor, min_hessian,
                       grad_out3, hess_out3)
