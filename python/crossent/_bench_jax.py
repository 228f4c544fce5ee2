"""JAX as a peer of ``crossent bench``: the formulas a JAX user would call.

The losses are optax's, transcribed here for ``axis=-1`` and no ``where=``
(optax 0.2.8, ``optax/losses/_classification.py`` and ``_regression.py``), so
that a run does not depend on optax being installed; the tests check them
against optax where it is.  The functions optax lacks use the standard
``jax.nn`` / ``jax.numpy`` formula, named beside each.

A loss is timed as a training step calls it: ``jax.jit(jax.value_and_grad(
mean of the per-sample losses))``; an activation as ``jax.jit(formula)``.
Imported only when the JAX peer is prepared (it imports jax).
"""
import jax
import jax.numpy as jnp


def softmax_cross_entropy_with_integer_labels(logits, labels):
    """optax.softmax_cross_entropy_with_integer_labels: the label's logit is
    taken from the raw logits and only the normalizer is subtracted."""
    label_logits = jnp.take_along_axis(logits, jnp.expand_dims(labels, -1), axis=-1).take(0, axis=-1)
    log_normalizers = jax.nn.logsumexp(logits, axis=-1)
    return log_normalizers - label_logits


def softmax_cross_entropy(logits, labels):
    """optax.softmax_cross_entropy: labels are class probabilities."""
    log_probs = jax.nn.log_softmax(logits, -1)
    return -(labels * log_probs).sum(-1)


def cross_entropy(logits, labels):
    """optax's integer-label or soft-label cross-entropy, as ``labels`` are.
    The dtype is known when tracing, so the choice costs nothing per call."""
    if jnp.issubdtype(labels.dtype, jnp.integer):
        return softmax_cross_entropy_with_integer_labels(logits, labels)
    return softmax_cross_entropy(logits, labels)


def nll_loss(log_probs, labels):
    """No optax function: the label's log-probability picked with
    ``jnp.take_along_axis``, as optax's integer-label cross-entropy picks the
    label's logit."""
    return -jnp.take_along_axis(log_probs, jnp.expand_dims(labels, -1), axis=-1).take(0, axis=-1)


def sigmoid_binary_cross_entropy(logits, labels):
    """optax.sigmoid_binary_cross_entropy."""
    labels = labels.astype(logits.dtype)
    log_p = jax.nn.log_sigmoid(logits)
    # log(1 - sigmoid(x)) = log_sigmoid(-x), the latter more numerically stable
    log_not_p = jax.nn.log_sigmoid(-logits)
    return -labels * log_p - (1.0 - labels) * log_not_p


def squared_error(predictions, targets):
    """optax.squared_error (optax.l2_loss is half of it; crossent's mse_loss is not)."""
    errors = predictions - targets
    return errors**2


# crossent function -> per-sample (or per-element) loss; the mean is crossent's
# default reduction for each of them.
LOSSES = {
    "cross_entropy": cross_entropy,
    "nll_loss": nll_loss,
    "binary_cross_entropy_with_logits": sigmoid_binary_cross_entropy,
    "mse_loss": squared_error,
}

# crossent function -> the jax.nn function of the same name and axis.
ACTIVATIONS = {
    "softmax": lambda z: jax.nn.softmax(z, axis=-1),
    "log_softmax": lambda z: jax.nn.log_softmax(z, axis=-1),
    "logsumexp": lambda z: jax.nn.logsumexp(z, axis=-1),
    "sigmoid": jax.nn.sigmoid,
    "log_sigmoid": jax.nn.log_sigmoid,
}

FUNCTIONS = frozenset(LOSSES) | frozenset(ACTIVATIONS)


def mean_of(loss):
    """The mean of ``loss``'s per-sample values: the scalar a gradient is of."""
    return lambda prediction, target: jnp.mean(loss(prediction, target))


def jitted(function):
    """The jitted call a JAX user would time for crossent's ``function``: the
    loss with its gradient with respect to the prediction, or the activation."""
    if function in LOSSES:
        return jax.jit(jax.value_and_grad(mean_of(LOSSES[function])))
    return jax.jit(ACTIVATIONS[function])


def ready_call(function, arrays):
    """A call of ``function`` on ``arrays`` whose every use is a timed step:
    the arrays moved to the device and the function compiled here, so that the
    calls time neither a transfer nor a compile, and each call waits for its
    result (JAX dispatches asynchronously)."""
    compiled = jitted(function)
    on_device = [jax.device_put(a) for a in arrays]
    jax.block_until_ready(compiled(*on_device))  # traces and compiles

    def run():
        return jax.block_until_ready(compiled(*on_device))
    return run
