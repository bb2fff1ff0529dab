"""The log-likelihood of eq. 3, computed from the logit so that it stays finite.

LL(θ) = Σ_i y log ŷ + (1 − y) log(1 − ŷ), with ŷ = σ(z). Since log ŷ = log σ(z) = z + log σ(−z)
and log(1 − ŷ) = log σ(−z), each term is y·z + log σ(−z): one log-sigmoid of the logit. For a
saturated unit (|z| ≳ 17 in float32) ŷ rounds to exactly 0 or 1 and log ŷ would be −inf,
while log σ(−z) stays finite (≈ −z for large z). Its derivative in z is y − σ(z) = y − ŷ.
"""

import jax
import jax.numpy as jnp

from deepmle.core import checks
from deepmle.core.model import Activation, forward
from deepmle.core.types import Array, Params


def example_log_likelihoods(z: Array, y: Array) -> Array:
    """The terms of eq. 3, one per example: shape [batch] for logits z and labels y of [batch]."""
    checks.labels(y, checks.logits(z))
    return y * z + jax.nn.log_sigmoid(-z)


def log_likelihood_from_logits(z: Array, y: Array) -> Array:
    """Eq. 3 summed over the batch; z and y of shape [batch], y in {0., 1.}."""
    return jnp.sum(example_log_likelihoods(z, y))


def log_likelihood(
    params: Params, x: Array, y: Array, activation: Activation = jax.nn.sigmoid
) -> Array:
    """LL(θ) of eq. 3: a scalar, the sum over the batch. x: [batch, 784], y: [batch] of 0/1."""
    checks.labels(y, checks.inputs(x, checks.params(params)[0]))
    return log_likelihood_from_logits(forward(params, x, activation), y)


def mean_log_likelihood(
    params: Params, x: Array, y: Array, activation: Activation = jax.nn.sigmoid
) -> Array:
    """LL(θ) / batch: the per-example average that training ascends (scale-free in batch size)."""
    return log_likelihood(params, x, y, activation) / y.shape[0]


def accuracy_from_logits(z: Array, y: Array) -> Array:
    """Fraction of examples where (ŷ > 1/2) equals y; z and y of shape [batch]."""
    checks.labels(y, checks.logits(z))
    return jnp.mean((z > 0) == (y > 0.5))
