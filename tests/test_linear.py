"""crossent.linear: the logistic unit and softmax regression of the founding
note.  Gradients are checked against 4th-order central differences, losses
against direct NumPy formulas, on every backend."""
import subprocess
import sys

import numpy as np
import pytest

import crossent
import crossent.linear as linear  # noqa: PLR0402 (crossent imports it lazily)

N_SAMPLES, N_FEATURES, N_CLASSES = 9, 3, 4


def central_difference(f, x, h=1e-3):
    """4th-order central difference of the scalar f at every entry of x."""
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        def f_at(offset, index=index):
            shifted = x.copy()
            shifted[index] += offset
            return float(f(shifted))
        grad[index] = (-f_at(2 * h) + 8 * f_at(h) - 8 * f_at(-h) + f_at(-2 * h)) / (12 * h)
    return grad


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def log_softmax(Z):
    shifted = Z - Z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


@pytest.fixture
def logistic_problem(rng):
    X = rng.standard_normal((N_SAMPLES, N_FEATURES))
    y = (rng.random(N_SAMPLES) < 0.5).astype(np.float64)
    w = rng.standard_normal(N_FEATURES)
    return X, y, w, 0.3


@pytest.fixture
def softmax_problem(rng):
    X = rng.standard_normal((N_SAMPLES, N_FEATURES))
    y = rng.integers(0, N_CLASSES, N_SAMPLES)
    W = rng.standard_normal((N_FEATURES, N_CLASSES))
    b = rng.standard_normal(N_CLASSES)
    return X, y, W, b


SAMPLE_WEIGHTS = [None, "random"]


def _sample_weight(kind, rng):
    return None if kind is None else rng.uniform(0.2, 2.0, N_SAMPLES)


# ------------------------------------------------------------------ logistic

@pytest.mark.parametrize("loss", ["bce", "mse"])
@pytest.mark.parametrize("weights", SAMPLE_WEIGHTS)
def test_logistic_gradient_matches_finite_differences(logistic_problem, loss, weights, rng,
                                                      backend):
    X, y, w, b = logistic_problem
    s = _sample_weight(weights, rng)
    _, dw, db = linear.logistic(X, y, w, b, loss=loss, sample_weight=s, backend=backend)

    def loss_at(w_, b_):
        return linear.logistic(X, y, w_, b_, loss=loss, sample_weight=s, backend=backend)[0]

    np.testing.assert_allclose(dw, central_difference(lambda w_: loss_at(w_, b), w),
                               rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(db, central_difference(lambda b_: loss_at(w, b_), b),
                               rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("weights", SAMPLE_WEIGHTS)
def test_logistic_bce_matches_numpy_formula(logistic_problem, weights, rng, backend):
    X, y, w, b = logistic_problem
    s = _sample_weight(weights, rng)
    v = np.ones(N_SAMPLES) if s is None else s
    a = sigmoid(X @ w + b)
    expected_loss = -np.sum(v * (y * np.log(a) + (1 - y) * np.log(1 - a))) / v.sum()
    g = v * (a - y) / v.sum()

    loss, dw, db = linear.logistic(X, y, w, b, loss="bce", sample_weight=s, backend=backend)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-12)
    np.testing.assert_allclose(dw, X.T @ g, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(db, g.sum(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("weights", SAMPLE_WEIGHTS)
def test_logistic_mse_matches_the_notes_formula(logistic_problem, weights, rng, backend):
    X, y, w, b = logistic_problem
    s = _sample_weight(weights, rng)
    v = np.ones(N_SAMPLES) if s is None else s
    a = sigmoid(X @ w + b)
    expected_loss = 0.5 * np.sum(v * (a - y) ** 2) / v.sum()
    g = v * (a - y) * a * (1 - a) / v.sum()

    loss, dw, db = linear.logistic(X, y, w, b, loss="mse", sample_weight=s, backend=backend)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-12)
    np.testing.assert_allclose(dw, X.T @ g, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(db, g.sum(), rtol=1e-12, atol=1e-15)


def test_logistic_mse_gradient_keeps_relative_accuracy_when_saturated(backend):
    # z = 30, y = 0: a(1 - a) in floating point loses most digits of 1 - a
    # (about 1e-13); the exact gradient is sigma(30) * sigma'(30).
    _, dw, db = linear.logistic([[1.0]], [0.0], [30.0], loss="mse", backend=backend)
    e = np.exp(-30.0)
    exact = (1 / (1 + e)) * e / (1 + e) ** 2
    np.testing.assert_allclose(db, exact, rtol=1e-13)
    np.testing.assert_allclose(dw, [exact], rtol=1e-13)


def test_logistic_bce_is_finite_far_on_the_wrong_side(backend):
    # a = sigma(-800) underflows to 0; the loss must still be the true 800.
    loss, dw, db = linear.logistic([[1.0]], [1.0], [-800.0], loss="bce", backend=backend)
    assert loss == pytest.approx(800.0, rel=1e-15)
    assert dw[0] == pytest.approx(-1.0) and db == pytest.approx(-1.0)


# ------------------------------------------------------------------- softmax

@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weights", SAMPLE_WEIGHTS)
def test_softmax_gradient_matches_finite_differences(softmax_problem, label_smoothing, weights,
                                                     rng, backend):
    X, y, W, b = softmax_problem
    s = _sample_weight(weights, rng)
    options = {"sample_weight": s, "label_smoothing": label_smoothing, "backend": backend}
    _, dW, db = linear.softmax(X, y, W, b, **options)

    np.testing.assert_allclose(
        dW, central_difference(lambda W_: linear.softmax(X, y, W_, b, **options)[0], W),
        rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(
        db, central_difference(lambda b_: linear.softmax(X, y, W, b_, **options)[0], b),
        rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weights", SAMPLE_WEIGHTS)
def test_softmax_matches_numpy_formula(softmax_problem, label_smoothing, weights, rng, backend):
    X, y, W, b = softmax_problem
    s = _sample_weight(weights, rng)
    v = np.ones(N_SAMPLES) if s is None else s
    log_p = log_softmax(X @ W + b)
    targets = (1 - label_smoothing) * np.eye(N_CLASSES)[y] + label_smoothing / N_CLASSES
    expected_loss = -np.sum(v * np.sum(targets * log_p, axis=1)) / v.sum()
    G = v[:, None] * (np.exp(log_p) - targets) / v.sum()

    loss, dW, db = linear.softmax(X, y, W, b, sample_weight=s,
                                  label_smoothing=label_smoothing, backend=backend)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-12)
    np.testing.assert_allclose(dW, X.T @ G, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(db, G.sum(axis=0), rtol=1e-12, atol=1e-15)


def test_softmax_accepts_class_probabilities(softmax_problem, rng, backend):
    X, _, W, b = softmax_problem
    targets = rng.dirichlet(np.ones(N_CLASSES), N_SAMPLES)
    log_p = log_softmax(X @ W + b)
    loss, dW, _ = linear.softmax(X, targets, W, b, backend=backend)
    np.testing.assert_allclose(loss, -np.mean(np.sum(targets * log_p, axis=1)), rtol=1e-12)
    np.testing.assert_allclose(dW, X.T @ (np.exp(log_p) - targets) / N_SAMPLES,
                               rtol=1e-12, atol=1e-15)


def test_softmax_ignores_label_minus_100(softmax_problem, backend):
    X, y, W, b = softmax_problem
    y_ignored = y.copy()
    y_ignored[[0, 4]] = -100
    kept = y_ignored != -100
    loss, dW, db = linear.softmax(X, y_ignored, W, b, backend=backend)
    loss_kept, dW_kept, db_kept = linear.softmax(X[kept], y[kept], W, b, backend=backend)
    np.testing.assert_allclose([loss, *dW.ravel(), *db], [loss_kept, *dW_kept.ravel(), *db_kept],
                               rtol=1e-12, atol=1e-15)


def test_softmax_without_bias_is_a_zero_bias(softmax_problem, backend):
    X, y, W, _ = softmax_problem
    without = linear.softmax(X, y, W, backend=backend)
    with_zero = linear.softmax(X, y, W, np.zeros(N_CLASSES), backend=backend)
    for got, expected in zip(without, with_zero):
        np.testing.assert_array_equal(got, expected)


# -------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("model", ["logistic-bce", "logistic-mse", "softmax"])
@pytest.mark.parametrize("x_dtype, expected", [(np.float32, np.float32), (np.float16, np.float32),
                                               (np.float64, np.float64), (np.int64, np.float64),
                                               (np.bool_, np.float64)])
def test_result_dtype_follows_X(logistic_problem, softmax_problem, model, x_dtype, expected,
                                backend):
    if model == "softmax":
        X, y, W, b = softmax_problem
        args, options = (y, W, b), {}
        call = linear.softmax
    else:
        X, y, W, b = logistic_problem
        args, options = (y, W, b), {"loss": model.split("-")[1]}
        call = linear.logistic
    X_cast = (X > 0) if x_dtype is np.bool_ else (X * 4).astype(x_dtype)
    result = call(X_cast, *args, backend=backend, **options)
    reference = call(X_cast.astype(np.float64), *args, backend=backend, **options)
    rtol = 1e-5 if expected == np.float32 else 1e-12
    for got, want in zip(result, reference):
        assert np.asarray(got).dtype == expected
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_inputs_are_not_modified(softmax_problem, logistic_problem, backend):
    X, y, W, b = softmax_problem
    copies = [a.copy() for a in (X, y, W, b)]
    linear.softmax(X, y, W, b, label_smoothing=0.1, backend=backend)
    for original, copy in zip((X, y, W, b), copies):
        np.testing.assert_array_equal(original, copy)
    X, y, w, _ = logistic_problem
    copies = [a.copy() for a in (X, y, w)]
    linear.logistic(X, y, w, loss="mse", backend=backend)
    for original, copy in zip((X, y, w), copies):
        np.testing.assert_array_equal(original, copy)


def test_reachable_as_crossent_linear():
    # A fresh interpreter: here crossent.linear is already imported by this file.
    code = "import crossent; print(crossent.linear.logistic.__module__)"
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "crossent.linear"
    assert crossent.linear.softmax is linear.softmax


# -------------------------------------------------------------------- errors

X4 = np.zeros((4, 2))


@pytest.mark.parametrize("call, error, words", [
    (lambda: linear.logistic(np.zeros(4), np.zeros(4), np.zeros(1)), ValueError, ["X", "2-D"]),
    (lambda: linear.logistic(X4, np.zeros(3), np.zeros(2)), ValueError, ["y", "(4,)", "(3,)"]),
    (lambda: linear.logistic(X4, np.zeros((4, 1)), np.zeros(2)), ValueError, ["y", "(4, 1)"]),
    (lambda: linear.logistic(X4, np.zeros(4), np.zeros(3)), ValueError, ["w", "(2,)", "(3,)"]),
    (lambda: linear.logistic(X4, np.zeros(4), np.zeros(2), b=np.zeros(2)), ValueError,
     ["b", "scalar"]),
    (lambda: linear.logistic(X4, np.zeros(4), np.zeros(2), loss="hinge"), ValueError,
     ["loss", "hinge", "bce"]),
    (lambda: linear.logistic(X4, np.zeros(4), np.zeros(2), sample_weight=np.ones(5)),
     ValueError, ["sample_weight", "(4,)", "(5,)"]),
    (lambda: linear.logistic(X4.astype(complex), np.zeros(4), np.zeros(2)), TypeError,
     ["X", "complex"]),
    (lambda: linear.logistic(X4, np.array(list("abcd")), np.zeros(2)), TypeError, ["y"]),
    (lambda: linear.softmax(np.zeros((4, 2, 1)), np.zeros(4, int), np.zeros((2, 3))),
     ValueError, ["X", "2-D"]),
    (lambda: linear.softmax(X4, np.zeros(4, int), np.zeros((3, 3))), ValueError,
     ["W", "(2, n_classes)", "(3, 3)"]),
    (lambda: linear.softmax(X4, np.zeros(4, int), np.zeros(2)), ValueError, ["W", "(2,)"]),
    (lambda: linear.softmax(X4, np.zeros(4, int), np.zeros((2, 3)), b=np.zeros(2)), ValueError,
     ["b", "(3,)", "(2,)"]),
    (lambda: linear.softmax(X4, np.zeros(4), np.zeros((2, 3))), ValueError,
     ["y", "integer", "float64"]),
    (lambda: linear.softmax(X4, np.zeros(5, int), np.zeros((2, 3))), ValueError, ["y", "(5,)"]),
    (lambda: linear.softmax(X4, np.zeros(4, bool), np.zeros((2, 3))), TypeError, ["y", "bool"]),
    (lambda: linear.softmax(X4, np.array([0, 1, 3, 0]), np.zeros((2, 3))), ValueError, ["3"]),
    (lambda: linear.softmax(X4, np.zeros(4, int), np.zeros((2, 3)), label_smoothing=1.5),
     ValueError, ["label_smoothing"]),
])
def test_bad_input_raises_a_message_naming_it(call, error, words):
    with pytest.raises(error) as excinfo:
        call()
    message = str(excinfo.value)
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"
