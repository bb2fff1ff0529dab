import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from deepmle.core.likelihood import (
    accuracy_from_logits,
    log_likelihood,
    log_likelihood_from_logits,
    mean_log_likelihood,
)
from deepmle.core.model import init_params


def test_two_example_value_by_hand():
    # logits 0 and ln 3: ŷ = 1/2 and 3/4; labels 1 and 0.
    z = jnp.array([0.0, np.log(3.0)])
    y = jnp.array([1.0, 0.0])
    expected = np.log(0.5) + np.log(1 - 0.75)
    np.testing.assert_allclose(log_likelihood_from_logits(z, y), expected, rtol=1e-6)


def test_log_likelihood_of_params_is_the_sum_over_the_batch(rng):
    params = init_params(jax.random.key(0), (784, 3, 1))
    x = jnp.asarray(rng.uniform(size=(4, 784)), jnp.float32)
    y = jnp.array([1.0, 0.0, 0.0, 1.0])
    parts = [log_likelihood(params, x[i : i + 1], y[i : i + 1]) for i in range(4)]
    np.testing.assert_allclose(log_likelihood(params, x, y), sum(parts), rtol=1e-5)
    np.testing.assert_allclose(mean_log_likelihood(params, x, y), sum(parts) / 4, rtol=1e-5)


def test_finite_for_saturated_units():
    z = jnp.array([1e4, -1e4, 1e4, -1e4], jnp.float32)
    y = jnp.array([1.0, 0.0, 0.0, 1.0])
    ll = log_likelihood_from_logits(z, y)
    assert np.isfinite(ll)
    # right answers cost ~0, wrong ones cost |z| each: log σ(−1e4) = −1e4.
    np.testing.assert_allclose(ll, -2e4, rtol=1e-6)
    g = jax.grad(log_likelihood_from_logits)(z, y)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, y - jax.nn.sigmoid(z))


def test_naive_formula_would_not_be_finite():
    """The reason for log-sigmoid: log(ŷ) with ŷ rounded to 0 is −inf in float32."""
    z, y = jnp.float32(-1e4), 1.0
    naive = y * jnp.log(jax.nn.sigmoid(z))
    assert not np.isfinite(naive)
    assert np.isfinite(log_likelihood_from_logits(jnp.array([z]), jnp.array([y])))


def test_check_grads(rng):
    with jax.enable_x64(True):
        params = jax.tree.map(
            lambda a: a.astype(jnp.float64), init_params(jax.random.key(0), (784, 6, 4, 1))
        )
        x = jnp.asarray(rng.uniform(size=(5, 784)))
        y = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0])
        check_grads(lambda p: log_likelihood(p, x, y), (params,), order=2, modes=("rev",))


def test_accuracy():
    z = jnp.array([2.0, -1.0, 0.5, -3.0])
    y = jnp.array([1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(accuracy_from_logits(z, y), 0.5)
