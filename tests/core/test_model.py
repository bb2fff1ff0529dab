import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepmle.core import registry
from deepmle.core.model import forward, init_params, layer_sizes_of, predict_proba


@pytest.mark.parametrize("sizes", [(784, 32, 1), (784, 64, 32, 1), (784, 16, 16, 16, 1)])
def test_params_pytree_matches_layer_sizes(sizes):
    params = init_params(jax.random.key(0), sizes)
    assert len(params) == len(sizes) - 1
    for layer, n_in, n_out in zip(params, sizes[:-1], sizes[1:], strict=True):
        chex.assert_shape(layer["w"], (n_in, n_out))
        chex.assert_shape(layer["b"], (n_out,))
        np.testing.assert_array_equal(layer["b"], 0.0)
    assert layer_sizes_of(params) == sizes


def test_init_is_lecun_normal():
    w = init_params(jax.random.key(1), (784, 512, 1))[0]["w"]
    np.testing.assert_allclose(jnp.std(w), 1 / np.sqrt(784), rtol=0.02)
    assert abs(float(jnp.mean(w))) < 1e-3


def test_init_differs_by_key_and_repeats_for_same_key():
    a = init_params(jax.random.key(0), (784, 8, 1))
    b = init_params(jax.random.key(0), (784, 8, 1))
    c = init_params(jax.random.key(1), (784, 8, 1))
    chex.assert_trees_all_equal(a, b)
    assert not np.allclose(a[0]["w"], c[0]["w"])


def test_init_rejects_more_than_one_output():
    with pytest.raises(ValueError, match="1 output"):
        init_params(jax.random.key(0), (784, 8, 2))


def test_forward_is_the_notes_equations_1_and_2(rng):
    """ŷ = σ(Σ_j h_j θ^(ŷ)_j) with h_j = σ(Σ_i x_i θ^(h)_{i,j}), bias as the index-0 unit."""
    params = init_params(jax.random.key(2), (784, 5, 1))
    x = rng.uniform(size=(3, 784)).astype(np.float32)
    x0 = np.concatenate([np.ones((3, 1), np.float32), x], axis=1)  # the bias unit x_0 = 1
    theta_h = np.concatenate([params[0]["b"][None], params[0]["w"]])  # [785, 5]
    h = 1 / (1 + np.exp(-(x0 @ theta_h)))
    h0 = np.concatenate([np.ones((3, 1), np.float32), h], axis=1)
    theta_y = np.concatenate([params[1]["b"], params[1]["w"][:, 0]])
    y_hat = 1 / (1 + np.exp(-(h0 @ theta_y)))
    np.testing.assert_allclose(predict_proba(params, x), y_hat, rtol=1e-5)
    chex.assert_shape(forward(params, x), (3,))


def test_every_registered_activation_is_its_own_function(rng):
    params = init_params(jax.random.key(3), (784, 4, 1))
    x = rng.uniform(size=(2, 784)).astype(np.float32)
    outs = {name: forward(params, x, registry.activation(name)) for name in registry.ACTIVATIONS}
    for a, b in itertools.combinations(outs, 2):
        assert not np.allclose(outs[a], outs[b]), (a, b)


def _params():
    return init_params(jax.random.key(0), (784, 4, 1))


def test_an_activation_that_is_not_a_function_is_named():
    """Names are resolved at the config boundary (registry.activation), not in the model."""
    with pytest.raises(TypeError, match="activation: expected a function"):
        forward(_params(), jnp.zeros((2, 784)), "sigmoid")


def test_training_matmul_has_the_gradient_of_a_matmul(rng):
    """Its hand-written VJP (input on the left) equals JAX's own for a @ w."""
    from deepmle.core.model import training_matmul

    a = jnp.asarray(rng.normal(size=(5, 7)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(7, 3)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    ours = jax.vjp(training_matmul, a, w)[1](g)
    jaxs = jax.vjp(jnp.matmul, a, w)[1](g)
    chex.assert_trees_all_close(ours, jaxs, rtol=1e-6)
