"""Parity with ``sklearn.metrics.log_loss`` (its mean, with and without
``sample_weight``): binary via ``binary_cross_entropy`` on probabilities,
multiclass via ``categorical_cross_entropy`` on probabilities and
``cross_entropy`` / ``nll_loss`` on log-probabilities.  Probabilities stay
inside (0.01, 0.99), where scikit-learn's clipping at float eps is inactive."""
import numpy as np
import pytest

import crossent

pytestmark = pytest.mark.peers

N_SAMPLES, N_CLASSES = 40, 5


def sample_weights(rng, weighted):
    return rng.uniform(0.2, 3.0, size=N_SAMPLES) if weighted else None


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_log_loss(backend, sklearn_metrics, weighted):
    rng = np.random.default_rng(20)
    p = rng.uniform(0.01, 0.99, size=N_SAMPLES)
    y = rng.integers(0, 2, size=N_SAMPLES)
    s = sample_weights(rng, weighted)
    expected = sklearn_metrics.log_loss(y, p, sample_weight=s)
    got = crossent.binary_cross_entropy(p, y.astype(float), sample_weight=s, backend=backend)
    assert got == pytest.approx(expected, rel=1e-13)


def _multiclass_case(rng, weighted):
    raw = rng.uniform(0.05, 1.0, size=(N_SAMPLES, N_CLASSES))
    probs = raw / raw.sum(axis=1, keepdims=True)
    labels = rng.integers(0, N_CLASSES, size=N_SAMPLES)
    labels[:N_CLASSES] = np.arange(N_CLASSES)  # every class present, as log_loss needs
    return probs, labels, sample_weights(rng, weighted)


@pytest.mark.parametrize("weighted", [False, True])
def test_multiclass_log_loss_from_probabilities(backend, sklearn_metrics, weighted):
    probs, labels, s = _multiclass_case(np.random.default_rng(21), weighted)
    expected = sklearn_metrics.log_loss(labels, probs, sample_weight=s)
    got = crossent.categorical_cross_entropy(probs, labels, sample_weight=s, backend=backend)
    assert got == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("function", [crossent.cross_entropy, crossent.nll_loss],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("weighted", [False, True])
def test_multiclass_log_loss_from_log_probabilities(backend, sklearn_metrics, function, weighted):
    """log-probabilities are their own logits: log_softmax(log p) = log p."""
    probs, labels, s = _multiclass_case(np.random.default_rng(22), weighted)
    expected = sklearn_metrics.log_loss(labels, probs, sample_weight=s)
    got = function(np.log(probs), labels, sample_weight=s, backend=backend)
    assert got == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("weighted", [False, True])
def test_multiclass_log_loss_one_hot_soft_targets(backend, sklearn_metrics, weighted):
    """One-hot soft targets give the same mean as their integer labels."""
    probs, labels, s = _multiclass_case(np.random.default_rng(23), weighted)
    expected = sklearn_metrics.log_loss(labels, probs, sample_weight=s)
    one_hot = np.eye(N_CLASSES)[labels]
    got = crossent.categorical_cross_entropy(probs, one_hot, sample_weight=s, backend=backend)
    assert got == pytest.approx(expected, rel=1e-13)
