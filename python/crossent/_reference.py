"""The NumPy reference backend ("numpy"): the readable oracle.

One function per kernel of the kernel interface (docs/kernels.md), with the
same positional signatures as the compiled backends, so that every test can run
the same call on every backend and compare.  Operands arrive canonical and
validated: elementwise operands are 2-D ``(R, K)``, row operands 3-D
``(A, B, C)`` with the class axis last, all of the computation dtype ``F``
except ``class_weight`` (float64, length C) and a float16 or bfloat16 first
operand, widened to float32 on entry (the end of this file).  Elementwise math is done in ``F``;
every reduction is accumulated in float64, block by block in the same fixed
blocks as the compiled kernels, so that a chunked evaluation gives the one-shot
bits here too.
"""
import functools

import numpy as np

from ._blocking import BLOCK_ELEMS, BLOCK_ROWS

NAME = "numpy"

# Clamp of log terms and floor of the BCE gradient's denominator, as PyTorch
# (whose floor is the float constant 1e-12f, also for float64 inputs).
LOG_CLAMP = -100.0
GRAD_EPS = float(np.float32(1e-12))


def info():
    return {"simd": "numpy", "simd_available": "numpy", "openmp": False,
            "build_flags": "", "max_threads": 1}


# ---------------------------------------------------------------- helpers

_FIRST = np.zeros(1, np.intp)


def ordered_sum(values, block, acc=0.0):
    """``acc`` plus the float64 sum of ``values`` (C order), block by block.

    Each block of ``block`` consecutive values is summed on its own, and the
    block sums are added to ``acc`` one at a time in block order (``cumsum`` is
    sequential), so that feeding the same values in block-aligned chunks, each
    chunk's result passed as the next one's ``acc``, gives the same bits.
    """
    flat = np.ravel(values).astype(np.float64, copy=False)
    if flat.size == 0:
        return float(acc)
    if flat.size <= block:  # one block: the cumsum below is acc + its sum
        return float(acc + np.add.reduceat(flat, _FIRST)[0])
    starts = np.arange(0, flat.size, block)
    block_sums = np.add.reduceat(flat, starts)
    return float(np.cumsum(np.concatenate(([acc], block_sums)))[-1])


def _softplus(x):
    """log(1 + exp(x)) without overflow."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _shift_by_row_max(z):
    """z − max(z) along the last axis, with the limits SPEC §1.7 asks for.

    A row whose max is +inf has a limit only when one entry is +inf: that
    entry shifts to 0 and every other to −inf (softmax → one-hot); with
    several +inf entries there is none (NaN).  A NaN anywhere makes the row
    NaN; a row of −inf stays −inf (its softmax is 0/0 = NaN, as PyTorch).
    """
    m = np.max(z, axis=-1, keepdims=True)
    finite_m = np.where(np.isfinite(m), m, 0).astype(z.dtype)
    shifted = z - finite_m
    at_inf = m == np.inf
    if np.any(at_inf):
        single = np.sum(z == np.inf, axis=-1, keepdims=True) == 1
        limit = np.where(z == np.inf, np.where(single, 0, np.nan), -np.inf).astype(z.dtype)
        shifted = np.where(at_inf, limit, shifted)
    return shifted


def _log_softmax(z):
    shifted = _shift_by_row_max(z)
    with np.errstate(divide="ignore"):
        lse = np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True, dtype=np.float64))
    return shifted - lse.astype(z.dtype)


def _nan_rows(x):
    """True for the rows (last axis) that hold a NaN: their loss is NaN even
    where the formula reads only the target's entry (SPEC §1.7)."""
    return np.isnan(x).any(axis=-1)


def _clamped_log(p):
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(p), LOG_CLAMP)


def _write(out, values):
    if out is not None:
        out[...] = values


def _times(a, *weights):
    """a multiplied by every weight that is not None."""
    for w in weights:
        if w is not None:
            a = a * w
    return a


def _finish_elementwise(loss, grad, weight, sample_weight, losses_out, grad_out,
                        grad_scale, acc):
    """Weight, write and sum an elementwise loss and its gradient."""
    weighted = _times(loss, weight, sample_weight)
    _write(losses_out, weighted)
    if grad_out is not None:
        grad_out[...] = _times(grad * grad_scale, weight, sample_weight)
    return ordered_sum(weighted, BLOCK_ELEMS, acc)


def _finish_rows(loss, grad, sample_weight, losses_out, grad_out, grad_scale, acc,
                 touched=None):
    """Weight, write and sum per-row losses (A, B) and their gradient (A, B, C).
    Gradient entries not ``touched`` (those of ignored rows; for nll_loss,
    those of the classes other than the target's, which its loss does not
    depend on) are 0 as in the kernels, even when a weight or the scale
    (1 / a NaN denominator) is NaN."""
    weighted = _times(loss, sample_weight)
    _write(losses_out, weighted)
    if grad_out is not None:
        scale = grad_scale if sample_weight is None else (grad_scale * sample_weight)[..., None]
        grad_out[...] = grad * scale if touched is None else np.where(touched, grad * scale, 0)
    return ordered_sum(weighted, BLOCK_ROWS, acc)


# ------------------------------------------------------------ activations

def sigmoid(x2, out2, n_threads):
    out2[...] = _sigmoid(x2)


def log_sigmoid(x2, out2, n_threads):
    out2[...] = -_softplus(-x2)


def softmax(x3, out3, n_threads):
    e = np.exp(_shift_by_row_max(x3))
    out3[...] = e / np.sum(e, axis=-1, keepdims=True, dtype=np.float64).astype(x3.dtype)


def log_softmax(x3, out3, n_threads):
    out3[...] = _log_softmax(x3)


def logsumexp(x3, out2, n_threads):
    m = np.max(x3, axis=-1)
    finite_m = np.where(np.isfinite(m), m, 0).astype(x3.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.log(np.sum(np.exp(x3 - finite_m[..., None]), axis=-1, dtype=np.float64))
    # a +inf entry makes the sum +inf, however many there are
    out2[...] = np.where(m == np.inf, np.inf, s + finite_m).astype(x3.dtype)


# ---------------------------------------------------------- binary losses

def bce(p2, y2, weight2, sample_weight2, losses_out2, grad_out2, grad_scale,
        n_threads, acc):
    with np.errstate(divide="ignore"):
        loss = -(y2 * _clamped_log(p2) + (1 - y2) * np.maximum(np.log1p(-p2), LOG_CLAMP))
    grad = (p2 - y2) / np.maximum(p2 * (1 - p2), p2.dtype.type(GRAD_EPS))
    return _finish_elementwise(loss, grad, weight2, sample_weight2, losses_out2,
                               grad_out2, grad_scale, acc)


def bce_with_logits(z2, y2, weight2, pos_weight2, sample_weight2, label_smoothing,
                    losses_out2, grad_out2, grad_scale, n_threads, acc):
    y = y2 * (1 - label_smoothing) + label_smoothing / 2 if label_smoothing else y2
    pw = 1 if pos_weight2 is None else pos_weight2
    neg_coef = 1 - y
    pos_coef = pw * y
    # (1 - y)·softplus(z) + pw·y·softplus(-z); a zero coefficient gives a zero
    # term even where softplus is infinite (the limit at z = ±inf).
    with np.errstate(invalid="ignore"):
        loss = (np.where(neg_coef == 0, 0, neg_coef * _softplus(z2))
                + np.where(pos_coef == 0, 0, pos_coef * _softplus(-z2)))
    loss = np.where(np.isnan(z2), np.nan, loss).astype(z2.dtype)
    grad = (1 + (pw - 1) * y) * _sigmoid(z2) - pos_coef
    return _finish_elementwise(loss, grad, weight2, sample_weight2, losses_out2,
                               grad_out2, grad_scale, acc)


def mse(x2, t2, weight2, sample_weight2, losses_out2, grad_out2, grad_scale,
        n_threads, acc):
    d = x2 - t2
    return _finish_elementwise(d * d, 2 * d, weight2, sample_weight2, losses_out2,
                               grad_out2, grad_scale, acc)


def _focal_terms(z, y, gamma):
    """The focal loss's pieces in the stable form of docs/math.md §8:
    ce (BCE with logits), m = q^γ with q = 1 − p_t, σ(z) − y, and
    ratio = σ(z)σ(−z)/q.

    q^γ is exp(γ·log q) with log q = log σ(∓z) = −softplus(±z) for a 0/1
    target (never log 0 while the true q is positive, even where q
    underflows); ratio is σ(z) or σ(−z) there, which q = 0 at z = ±inf would
    make 0/0.  Zero coefficients drop their terms, so z = ±inf gives the
    limit (0·inf is never formed).
    """
    e = np.exp(-np.abs(z))
    log1p_e = np.log1p(e)
    r = 1 / (1 + e)
    er = e * r
    s = np.where(z >= 0, r, er)            # σ(z)
    s_minus = np.where(z >= 0, er, r)      # σ(−z) = 1 − σ(z), without cancellation
    softplus_z = np.maximum(z, 0) + log1p_e
    softplus_minus_z = np.maximum(-z, 0) + log1p_e
    pos, neg = y, 1 - y
    with np.errstate(invalid="ignore", divide="ignore"):
        ce = (np.where(pos == 0, 0, pos * softplus_minus_z)
              + np.where(neg == 0, 0, neg * softplus_z)).astype(z.dtype)
        q = neg * s + pos * s_minus
        log_q = np.where(y == 1, -softplus_z, np.where(y == 0, -softplus_minus_z, np.log(q)))
        ratio = np.where(y == 1, s, np.where(y == 0, s_minus, s * s_minus / q))
        modulator = np.ones_like(z) if gamma == 0 else np.exp(gamma * log_q)
    return ce, modulator, neg * s - pos * s_minus, neg - pos, ratio


def focal(z2, y2, weight2, sample_weight2, alpha, gamma, losses_out2, grad_out2, grad_scale,
          n_threads, acc):
    """Binary focal loss from logits (torchvision.ops.sigmoid_focal_loss):
    l = α_t·ce·(1 − p_t)^γ, α_t = αy + (1 − α)(1 − y) (1 when α < 0)."""
    ce, modulator, ce_grad, one_minus_2y, ratio = _focal_terms(z2, y2, gamma)
    if alpha >= 0:
        alpha_t = alpha * y2 + (1 - alpha) * (1 - y2)
    else:
        alpha_t = np.ones_like(y2)
    loss = alpha_t * (ce * modulator)
    grad = None
    if grad_out2 is not None:
        # d(q^γ)/dz = q^γ·γ(1 − 2y)·ratio; a zero ratio (z = ±inf) drops the
        # term even where ce is infinite.
        with np.errstate(invalid="ignore"):
            modulator_grad = np.where(ratio == 0, 0, gamma * one_minus_2y * ce * ratio)
        grad = alpha_t * (modulator * (ce_grad + modulator_grad.astype(z2.dtype)))
    return _finish_elementwise(loss, grad, weight2, sample_weight2, losses_out2,
                               grad_out2, grad_scale, acc)


def kl_div(x2, t2, weight2, sample_weight2, log_target, losses_out2, grad_out2, grad_scale,
           n_threads, acc):
    """torch.nn.functional.kl_div elementwise, x a log-probability:
    l = t·(log t − x) (log_target: exp(t)·(t − x)); ∂l/∂x = −t (−exp(t)).

    A target probability of exactly 0 (t = 0, or t = −inf with log_target)
    gives 0 whatever x is, ±inf included (the 0·log 0 = 0 rule; the loss is 0
    for every x there, so that is also its limit), except that a NaN x gives
    NaN (SPEC §1.7).
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if log_target:
            p, log_p = np.exp(t2), t2
        else:
            p, log_p = t2, np.log(t2)
        loss = p * (log_p - x2)
    loss = np.where(log_p == -np.inf, np.where(np.isnan(x2), x2, 0), loss).astype(x2.dtype)
    return _finish_elementwise(loss, -p, weight2, sample_weight2, losses_out2, grad_out2,
                               grad_scale, acc)


# ------------------------------------------------------ multiclass losses

def _index_terms(target2, class_weight, ignore_index, n_classes, dtype):
    """Per-row: valid mask, safe target (0 where ignored), class weight w_t,
    and the class weights as a row vector (ones when absent)."""
    valid = target2 != ignore_index
    safe = np.where(valid, target2, 0).astype(np.intp)
    w = np.ones(n_classes, dtype) if class_weight is None else class_weight.astype(dtype)
    return valid, safe, w[safe], w


def _one_hot(safe, n_classes, dtype):
    return (safe[..., None] == np.arange(n_classes)).astype(dtype)


def _smoothed_index_loss(neglog, target2, class_weight, ignore_index, label_smoothing):
    """(1-ε)·w_t·neglog_t + (ε/C)·Σ_c w_c·neglog_c per row, 0 where ignored."""
    n_classes = neglog.shape[-1]
    valid, safe, w_t, w = _index_terms(target2, class_weight, ignore_index, n_classes, neglog.dtype)
    picked = np.take_along_axis(neglog, safe[..., None], axis=-1)[..., 0]
    loss = (1 - label_smoothing) * w_t * picked
    if label_smoothing:
        loss = loss + (label_smoothing / n_classes) * np.sum(neglog * w, axis=-1)
    loss = np.where(_nan_rows(neglog), np.nan, loss)
    return np.where(valid, loss, 0).astype(neglog.dtype), valid, safe, w_t, w


def _smoothed_soft_targets(y3, label_smoothing):
    if not label_smoothing:
        return y3
    return y3 * (1 - label_smoothing) + label_smoothing / y3.shape[-1]


def _smoothed_index_grad(logp, safe, w_t, w, label_smoothing, dtype):
    """∂l/∂z of the smoothed, class-weighted index loss, from the row's
    log-probabilities (docs/math.md)."""
    n_classes = logp.shape[-1]
    p = np.exp(logp)
    grad = (1 - label_smoothing) * w_t[..., None] * (p - _one_hot(safe, n_classes, dtype))
    if label_smoothing:
        grad = grad + (label_smoothing / n_classes) * (np.sum(w) * p - w)
    return grad


def softmax_xent_index(z3, target2, class_weight, sample_weight2, ignore_index,
                       label_smoothing, losses_out2, grad_out3, grad_scale, n_threads, acc):
    logp = _log_softmax(z3)
    loss, valid, safe, w_t, w = _smoothed_index_loss(-logp, target2, class_weight,
                                                     ignore_index, label_smoothing)
    grad = None
    if grad_out3 is not None:
        grad = _smoothed_index_grad(logp, safe, w_t, w, label_smoothing, z3.dtype)
        grad = np.where(valid[..., None], grad, 0).astype(z3.dtype)
    return _finish_rows(loss, grad, _ignored_weigh_nothing(valid, sample_weight2), losses_out2,
                        grad_out3, grad_scale, acc, valid[..., None])


def _soft_loss(logp, y3, class_weight, label_smoothing, with_grad):
    """The smoothed, class-weighted soft-target loss of each row and its
    gradient with respect to the logits (None without with_grad)."""
    y = _smoothed_soft_targets(y3, label_smoothing)
    wy = y if class_weight is None else y * class_weight.astype(logp.dtype)
    # a class of weight 0 and probability 0 adds the limit of 0 * log p, 0
    terms = np.where((wy == 0) & (logp == -np.inf), 0, wy * logp)
    loss = -np.sum(terms, axis=-1)
    grad = np.exp(logp) * np.sum(wy, axis=-1, keepdims=True) - wy if with_grad else None
    return loss, grad


def softmax_xent_soft(z3, y3, class_weight, sample_weight2, label_smoothing,
                      losses_out2, grad_out3, grad_scale, n_threads, acc):
    logp = _log_softmax(z3)
    loss, grad = _soft_loss(logp, y3, class_weight, label_smoothing, grad_out3 is not None)
    return _finish_rows(loss, grad, sample_weight2, losses_out2, grad_out3, grad_scale, acc)


def _neglog_grad(p3):
    """d(-max(log p, -100))/dp, with the floor PyTorch puts under p."""
    return -1 / np.maximum(p3, p3.dtype.type(GRAD_EPS))


def categorical_xent_index(p3, target2, class_weight, sample_weight2, ignore_index,
                           label_smoothing, losses_out2, grad_out3, grad_scale, n_threads, acc):
    loss, valid, safe, w_t, w = _smoothed_index_loss(-_clamped_log(p3), target2, class_weight,
                                                     ignore_index, label_smoothing)
    grad = None
    if grad_out3 is not None:
        n_classes = p3.shape[-1]
        coef = (1 - label_smoothing) * w_t[..., None] * _one_hot(safe, n_classes, p3.dtype)
        if label_smoothing:
            coef = coef + (label_smoothing / n_classes) * w
        grad = np.where(valid[..., None], coef * _neglog_grad(p3), 0).astype(p3.dtype)
    return _finish_rows(loss, grad, _ignored_weigh_nothing(valid, sample_weight2), losses_out2,
                        grad_out3, grad_scale, acc, valid[..., None])


def categorical_xent_soft(p3, y3, class_weight, sample_weight2, label_smoothing,
                          losses_out2, grad_out3, grad_scale, n_threads, acc):
    y = _smoothed_soft_targets(y3, label_smoothing)
    wy = y if class_weight is None else y * class_weight.astype(p3.dtype)
    loss = -np.sum(wy * _clamped_log(p3), axis=-1)
    grad = None if grad_out3 is None else wy * _neglog_grad(p3)
    return _finish_rows(loss, grad, sample_weight2, losses_out2, grad_out3, grad_scale, acc)


def nll_index(x3, target2, class_weight, sample_weight2, ignore_index,
              losses_out2, grad_out3, grad_scale, n_threads, acc):
    loss, valid, safe, w_t, _ = _smoothed_index_loss(-x3, target2, class_weight, ignore_index, 0.0)
    grad = None
    if grad_out3 is not None:
        one_hot = _one_hot(safe, x3.shape[-1], x3.dtype)
        grad = np.where(valid[..., None], -w_t[..., None] * one_hot, 0).astype(x3.dtype)
    touched = valid[..., None] & _one_hot(safe, x3.shape[-1], bool)
    return _finish_rows(loss, grad, _ignored_weigh_nothing(valid, sample_weight2), losses_out2,
                        grad_out3, grad_scale, acc, touched)


# ------------------------------------------------------- target helpers

def index_weight_sum(target2, class_weight, sample_weight2, ignore_index, n_threads, acc):
    valid = target2 != ignore_index
    if class_weight is None:
        w = valid.astype(np.float64)
    else:
        w = np.where(valid, class_weight[np.where(valid, target2, 0)], 0.0)
    if sample_weight2 is not None:
        w = _ignored_weigh_nothing(valid, sample_weight2) * w
    return ordered_sum(w, BLOCK_ROWS, acc)


def sample_weight_sum(sample_weight2, n_threads, acc):
    return ordered_sum(sample_weight2, BLOCK_ROWS, acc)


def elementwise_weight_sum(x2, weight2, n_threads, acc):
    return ordered_sum(x2 if weight2 is None else x2 * weight2, BLOCK_ELEMS, acc)


def outside_unit_count(x2, n_threads, acc):
    """How many entries lie outside [0, 1]; a NaN is not counted."""
    return ordered_sum((x2 < 0) | (x2 > 1), BLOCK_ELEMS, acc)


def _ignored_weigh_nothing(valid, sample_weight2):
    """The sample weights with 0 at ignored samples (SPEC §1.5), not 0 times
    the weight: an ignored sample of NaN or infinite weight weighs nothing."""
    return None if sample_weight2 is None else np.where(valid, sample_weight2, 0)


def first_bad_index(target2, n_classes, ignore_index):
    bad = ((target2 < 0) | (target2 >= n_classes)) & (target2 != ignore_index)
    flat = np.flatnonzero(bad)
    return int(flat[0]) if flat.size else -1


# ------------------------------------------------- gradient-boosting objectives

from ._reference_objectives import (focal_objective, logistic_objective,  # noqa: E402,F401
                                    softmax_objective_index, softmax_objective_soft)


# ------------------------------------- cross_entropy's z_loss and softcap

def _softcapped(z3, softcap):
    """softcap·tanh(z/softcap) in float64, rounded once (softcap 0: z)."""
    if not softcap:
        return z3
    return (softcap * np.tanh(z3.astype(np.float64) / softcap)).astype(z3.dtype)


def _row_lse(v3):
    """Each row's log-sum-exp in float64, shifted as the kernels shift it."""
    shifted = _shift_by_row_max(v3)
    m = np.max(v3, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_sum = np.log(np.sum(np.exp(shifted), axis=-1, dtype=np.float64))
        single_inf = np.sum(v3 == np.inf, axis=-1) == 1
        shift = np.where(np.isfinite(m), m,
                         np.where(m == -np.inf, 0.0, np.where(single_inf, m, np.nan)))
        return shift.astype(np.float64) + log_sum


def _with_logit_transforms(loss, grad, v3, logp, w_sample, z_loss, softcap):
    """Add z_loss·w·lse² to the loss and its gradient 2·z_loss·w·lse·p, then
    the softcap's chain rule: ∂v/∂z = 1 − (v/softcap)²."""
    lse = _row_lse(v3)
    with np.errstate(invalid="ignore", over="ignore"):
        loss = (loss + z_loss * w_sample * lse * lse).astype(v3.dtype)
        if grad is not None:
            grad = grad + (2 * z_loss * w_sample * lse)[..., None] * np.exp(logp)
            if softcap:
                grad = grad * (1 - (v3.astype(np.float64) / softcap) ** 2)
            grad = grad.astype(v3.dtype)
    return loss, grad, lse


def softmax_xent_index_ext(z3, target2, class_weight, sample_weight2, ignore_index,
                           label_smoothing, z_loss, softcap, lse_out2, losses_out2, grad_out3,
                           grad_scale, n_threads, acc):
    v = _softcapped(z3, softcap)
    logp = _log_softmax(v)
    loss, valid, safe, w_t, w = _smoothed_index_loss(-logp, target2, class_weight,
                                                     ignore_index, label_smoothing)
    grad = None
    if grad_out3 is not None:
        grad = _smoothed_index_grad(logp, safe, w_t, w, label_smoothing, z3.dtype)
    loss, grad, lse = _with_logit_transforms(loss, grad, v, logp, w_t, z_loss, softcap)
    loss = np.where(valid, loss, 0).astype(z3.dtype)
    if grad is not None:
        grad = np.where(valid[..., None], grad, 0).astype(z3.dtype)
    _write(lse_out2, np.where(valid, lse, 0))
    return _finish_rows(loss, grad, sample_weight2, losses_out2, grad_out3, grad_scale, acc)


def softmax_xent_soft_ext(z3, y3, class_weight, sample_weight2, label_smoothing, z_loss,
                          softcap, lse_out2, losses_out2, grad_out3, grad_scale, n_threads, acc):
    v = _softcapped(z3, softcap)
    logp = _log_softmax(v)
    loss, grad = _soft_loss(logp, y3, class_weight, label_smoothing, grad_out3 is not None)
    loss, grad, lse = _with_logit_transforms(loss, grad, v, logp, 1.0, z_loss, softcap)
    _write(lse_out2, lse)
    return _finish_rows(loss, grad, sample_weight2, losses_out2, grad_out3, grad_scale, acc)


# ------------------------------------------------------------- evaluation

def target_ranks(x3, target2, ignore_index):
    """Each row's target rank: #{c: x_c > x_t} + #{c < t: x_c == x_t}, so 0
    exactly when ``numpy.argmax`` of the row is the target; C for a row
    holding a NaN (never correct); NaN for an ignored row."""
    n_classes = x3.shape[-1]
    valid = target2 != ignore_index
    safe = np.where(valid, target2, 0).astype(np.intp)
    picked = np.take_along_axis(x3, safe[..., None], axis=-1)
    before = np.arange(n_classes) < safe[..., None]
    rank = np.sum((x3 > picked) | ((x3 == picked) & before), axis=-1)
    rank = np.where(_nan_rows(x3), n_classes, rank)
    return np.where(valid, rank, np.nan).astype(x3.dtype)


def _write_ranks(ranks_out2, x3, target2, ignore_index):
    if ranks_out2 is not None:
        ranks_out2[...] = target_ranks(x3, target2, ignore_index)


def softmax_xent_index_eval(z3, target2, class_weight, sample_weight2, ignore_index,
                            label_smoothing, losses_out2, ranks_out2, n_threads, acc):
    _write_ranks(ranks_out2, z3, target2, ignore_index)
    return softmax_xent_index(z3, target2, class_weight, sample_weight2, ignore_index,
                              label_smoothing, losses_out2, None, 1.0, n_threads, acc)


def categorical_xent_index_eval(p3, target2, class_weight, sample_weight2, ignore_index,
                                label_smoothing, losses_out2, ranks_out2, n_threads, acc):
    _write_ranks(ranks_out2, p3, target2, ignore_index)
    return categorical_xent_index(p3, target2, class_weight, sample_weight2, ignore_index,
                                  label_smoothing, losses_out2, None, 1.0, n_threads, acc)


def nll_index_eval(x3, target2, class_weight, sample_weight2, ignore_index, losses_out2,
                   ranks_out2, n_threads, acc):
    _write_ranks(ranks_out2, x3, target2, ignore_index)
    return nll_index(x3, target2, class_weight, sample_weight2, ignore_index, losses_out2, None,
                     1.0, n_threads, acc)


# ------------------------------------------- 2-byte predictions (float16, bfloat16)

def _as_compiled(kernel):
    """``kernel`` as the compiled kernels behave: a float16 or bfloat16 first
    operand read as float32 (the widening is exact), and no floating-point
    warnings (an overflow or an inf - inf in the arithmetic gives its inf or
    NaN result silently, as in C)."""
    @functools.wraps(kernel)   # (its signature too: tests compare it with the table's)
    def run(x, *rest):
        if x.dtype.itemsize == 2 and x.dtype.kind in "fV":
            x = x.astype(np.float32)
        with np.errstate(all="ignore"):
            return kernel(x, *rest)
    return run


for _name in ("sigmoid", "log_sigmoid", "softmax", "log_softmax", "logsumexp", "bce",
              "bce_with_logits", "mse", "focal", "kl_div", "softmax_xent_index",
              "softmax_xent_soft", "categorical_xent_index", "categorical_xent_soft", "nll_index",
              "softmax_xent_index_ext", "softmax_xent_soft_ext", "softmax_xent_index_eval",
              "categorical_xent_index_eval", "nll_index_eval", "outside_unit_count"):
    globals()[_name] = _as_compiled(globals()[_name])
del _name
