"""The founding note's models: a logistic unit and softmax regression.

Each function returns the loss of a linear model and its gradient with respect
to the model's parameters, ready for a gradient-descent step.  The matrix
products go through NumPy (BLAS); every per-sample loss and its derivative
with respect to the logits comes from the public crossent losses, so there is
one implementation of each loss in the package.  The derivations are in
docs/math.md (sections 4 and 5).

Dtypes: the computation dtype is X's float dtype (float32 or float64; float16
computes in float32, integer and bool X in float64); the other operands are
converted to it and the results are returned in it.
"""
import numpy as np

# The facade functions are looked up on the package at call time, so that this
# module can be imported while crossent/__init__.py is still running.
import crossent as _crossent
from crossent._validate import as_array

LOGISTIC_LOSSES = ("bce", "mse")


# ---------------------------------------------------------------- validation

def _computation_dtype(X):
    if X.dtype.kind == "f":
        return np.dtype(np.float64) if X.dtype == np.float64 else np.dtype(np.float32)
    if X.dtype.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(f"X: expected a real numeric array (float, integer or bool); "
                    f"got dtype {X.dtype}")


def _as_real(value, name, dtype):
    """``value`` as an array of ``dtype``; TypeError for non-real input."""
    array = as_array(value, name)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array; got dtype {array.dtype}")
    return array.astype(dtype, copy=False)


def _check_shape(array, name, expected, meaning):
    if array.shape != expected:
        raise ValueError(f"{name}: expected shape {expected} ({meaning}); got shape {array.shape}")


def _design_matrix(X):
    X = as_array(X, "X")
    dtype = _computation_dtype(X)
    if X.ndim != 2:
        raise ValueError(f"X: expected a 2-D array of shape (n_samples, n_features); "
                         f"got {X.ndim}-D shape {X.shape}")
    return X.astype(dtype, copy=False), dtype


def _sample_weights(sample_weight, n, dtype):
    if sample_weight is None:
        return None
    sample_weight = _as_real(sample_weight, "sample_weight", dtype)
    _check_shape(sample_weight, "sample_weight", (n,), "one weight per row of X")
    return sample_weight


def _column_sum(G, dtype):
    # float64 accumulation, rounded once (SPEC §1.2), also for float32 inputs.
    return G.sum(axis=0, dtype=np.float64).astype(dtype)


# ------------------------------------------------------------ logistic unit

def _sigmoid_derivative(z, sigmoid_z=None, backend=None, n_threads=None):
    """sigma'(z), as sigma(z) * sigma(-z): unlike a * (1 - a) this keeps its
    relative accuracy where 1 - a rounds to 0 (large positive z)."""
    if sigmoid_z is None:
        sigmoid_z = _crossent.sigmoid(z, backend=backend, n_threads=n_threads)
    return sigmoid_z * _crossent.sigmoid(-z, backend=backend, n_threads=n_threads)


def _logistic_logit_grad(z, y, loss, sample_weight=None, reduction="mean",
                         backend=None, n_threads=None):
    """``(L, dL/dz)`` of the logistic loss ``loss`` at logits ``z``.

    ``"bce"`` is the binary cross-entropy of ``sigmoid(z)``; ``"mse"`` is half
    the squared error of ``sigmoid(z)``, the note's ``(a - y)² / 2`` per
    sample.  With ``reduction="sum"`` the gradient is each sample's own
    derivative (``crossent demo`` plots it against z).
    """
    common = {"sample_weight": sample_weight, "reduction": reduction, "return_grad": True,
              "backend": backend, "n_threads": n_threads}
    if loss == "bce":
        return _crossent.binary_cross_entropy_with_logits(z, y, **common)
    a = _crossent.sigmoid(z, backend=backend, n_threads=n_threads)
    squared_error, grad_a = _crossent.mse_loss(a, y, **common)
    half = z.dtype.type(0.5)
    return half * squared_error, half * grad_a * _sigmoid_derivative(z, a, backend, n_threads)


def logistic(X, y, w, b=0.0, *, loss="bce", sample_weight=None, backend=None,
             n_threads=None):
    r"""Loss and gradient of a logistic unit ``a = sigmoid(X @ w + b)``.

    ``loss="bce"`` is the mean binary cross-entropy (computed from the logits
    by :func:`crossent.binary_cross_entropy_with_logits`)::

        L = -1/n Σ_i [y_i log a_i + (1 - y_i) log(1 - a_i)]
        dL/dw = Xᵀ(a - y) / n,    dL/db = mean(a - y)

    ``loss="mse"`` is the founding note's mean squared error, computed with
    :func:`crossent.sigmoid` and :func:`crossent.mse_loss`::

        L = 1/(2n) Σ_i (a_i - y_i)²
        dL/dw = Xᵀ[(a - y) σ'(z)] / n,    dL/db = mean((a - y) σ'(z))

    whose gradient carries the factor ``σ'(z) = a(1 - a)`` that makes it
    vanish when the unit saturates (docs/math.md, section 4).

    Parameters
    ----------
    X : array_like, shape (n, d)
        One sample per row.
    y : array_like, shape (n,)
        Targets in [0, 1] (usually 0 or 1).
    w : array_like, shape (d,)
        Weights.
    b : float
        Bias.
    loss : {"bce", "mse"}
    sample_weight : array_like, shape (n,), optional
        Per-sample weights; the mean becomes ``Σ s_i l_i / Σ s_i``.
    backend, n_threads
        As for every crossent function.

    Returns
    -------
    loss : scalar, dw : ndarray of shape (d,), db : scalar
        In the computation dtype (X's float dtype; float64 for integer X).

    Examples
    --------
    >>> import numpy as np, crossent
    >>> X = np.array([[1.0, 2.0], [-1.0, 0.5]])
    >>> loss, dw, db = crossent.linear.logistic(X, [1, 0], np.zeros(2))
    >>> round(float(loss), 6)  # log 2: a = 1/2 for both samples
    0.693147
    >>> dw, float(db)  # Xᵀ(a - y)/n with a - y = (-1/2, 1/2)
    (array([-0.5  , -0.375]), 0.0)
    """
    X, dtype = _design_matrix(X)
    n, d = X.shape
    if not isinstance(loss, str) or loss not in LOGISTIC_LOSSES:
        raise ValueError(f"loss: expected one of {LOGISTIC_LOSSES}; got {loss!r}")
    y = _as_real(y, "y", dtype)
    _check_shape(y, "y", (n,), "one target per row of X")
    w = _as_real(w, "w", dtype)
    _check_shape(w, "w", (d,), "one weight per column of X")
    b = _as_real(b, "b", dtype)
    _check_shape(b, "b", (), "a scalar bias")
    sample_weight = _sample_weights(sample_weight, n, dtype)

    z = X @ w + b
    value, grad_z = _logistic_logit_grad(z, y, loss, sample_weight,
                                         backend=backend, n_threads=n_threads)
    return value, X.T @ grad_z, _column_sum(grad_z, dtype)


# --------------------------------------------------------- softmax regression

def _class_targets(y, n, n_classes, dtype):
    y = as_array(y, "y")
    if y.dtype.kind in "iu" and y.shape == (n,):
        return y
    if y.dtype.kind == "f" and y.shape == (n, n_classes):
        return y.astype(dtype, copy=False)
    expected = (f"integer class labels of shape ({n},) or class probabilities "
                f"of shape ({n}, {n_classes})")
    got = f"dtype {y.dtype}, shape {y.shape}"
    if y.dtype.kind in "iuf":
        raise ValueError(f"y: expected {expected}; got {got}")
    raise TypeError(f"y: expected {expected}; got {got}")


def softmax(X, y, W, b=None, *, sample_weight=None, label_smoothing=0.0,
            backend=None, n_threads=None):
    r"""Loss and gradient of softmax regression ``p = softmax(X @ W + b)``.

    The loss is the mean softmax cross-entropy, computed by
    :func:`crossent.cross_entropy` with PyTorch's semantics::

        L = -1/n Σ_i log p_{i, y_i}
        dL/dW = Xᵀ(P - Y) / n,    dL/db = Σ_i (P - Y)_i / n

    with ``Y`` the one-hot targets (smoothed by ``label_smoothing``:
    ``(1 - ε) Y + ε/C``).  The gradient ``softmax(z) - y`` is derived in
    docs/math.md, section 5.

    Parameters
    ----------
    X : array_like, shape (n, d)
    y : array_like of int, shape (n,)
        Class labels in [0, C); a label equal to -100 is ignored (PyTorch's
        ``ignore_index``).  A float array of shape (n, C) is taken as class
        probabilities (soft targets).
    W : array_like, shape (d, C)
    b : array_like, shape (C,), optional
        Bias; None means no bias (``db`` is still returned: the gradient with
        respect to a bias of zero).
    sample_weight : array_like, shape (n,), optional
        The mean becomes ``Σ s_i l_i / Σ s_i`` over the samples not ignored.
    label_smoothing : float in [0, 1]
    backend, n_threads
        As for every crossent function.

    Returns
    -------
    loss : scalar, dW : ndarray (d, C), db : ndarray (C,)
        In the computation dtype (X's float dtype; float64 for integer X).

    Examples
    --------
    >>> import numpy as np, crossent
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss, dW, db = crossent.linear.softmax(X, [0, 2], np.zeros((2, 3)))
    >>> round(float(loss), 6)  # log 3: uniform predictions over 3 classes
    1.098612
    >>> db  # mean of (1/3 - one-hot) over the two samples
    array([-0.16666667,  0.33333333, -0.16666667])
    """
    X, dtype = _design_matrix(X)
    n, d = X.shape
    W = _as_real(W, "W", dtype)
    if W.ndim != 2 or W.shape[0] != d:
        raise ValueError(f"W: expected shape ({d}, n_classes) (one row per column of X); "
                         f"got shape {W.shape}")
    n_classes = W.shape[1]
    logits = X @ W
    if b is not None:
        b = _as_real(b, "b", dtype)
        _check_shape(b, "b", (n_classes,), "one bias per column of W")
        logits += b
    y = _class_targets(y, n, n_classes, dtype)
    sample_weight = _sample_weights(sample_weight, n, dtype)

    value, grad_logits = _crossent.cross_entropy(
        logits, y, sample_weight=sample_weight, label_smoothing=label_smoothing,
        return_grad=True, backend=backend, n_threads=n_threads)
    return value, X.T @ grad_logits, _column_sum(grad_logits, dtype)
