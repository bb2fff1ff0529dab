import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepmle.core.backprop import closed_form_grad, literal_output_delta
from deepmle.core.likelihood import log_likelihood
from deepmle.core.model import init_params


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


@pytest.mark.parametrize("sizes", [(784, 1), (784, 16, 1), (784, 16, 8, 1), (784, 12, 8, 4, 1)])
def test_closed_form_equals_jax_grad_in_float64(sizes, embedded):
    """Depth 0-3 hidden layers, on real digits of both classes, within 1e-10 relative."""
    with jax.enable_x64(True):
        params = _f64(init_params(jax.random.key(len(sizes)), sizes))
        params = jax.tree.map(lambda a: a + 0.05, params)  # non-zero biases exercise "b"
        x = jnp.asarray(embedded.train.x[:64], jnp.float64)
        y = jnp.asarray(embedded.train.y[:64], jnp.float64)
        assert 0 < float(y.sum()) < 64
        ours = closed_form_grad(params, x, y)
        autodiff = jax.grad(log_likelihood)(params, x, y)
        chex.assert_trees_all_equal_structs(ours, params)
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(autodiff), strict=True):
            scale = max(float(jnp.max(jnp.abs(b))), 1e-300)
            assert float(jnp.max(jnp.abs(a - b))) / scale < 1e-10


def test_closed_form_is_finite_where_the_literal_product_is_nan():
    """ŷ rounds to 1 in float32 for z ≳ 17: the notes' product is ∞·0, y − ŷ is fine."""
    params = [{"w": jnp.full((784, 1), 1.0, jnp.float32), "b": jnp.zeros((1,), jnp.float32)}]
    x = jnp.ones((2, 784), jnp.float32)  # z = 784: saturated
    y = jnp.array([0.0, 1.0])
    y_hat = jax.nn.sigmoid(x @ params[0]["w"])[:, 0]
    assert np.all(np.asarray(y_hat) == 1.0)
    assert np.isnan(literal_output_delta(y, y_hat)[0])
    grads = closed_form_grad(params, x, y)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    np.testing.assert_allclose(grads[0]["w"][:, 0], -1.0)  # (0 − 1)·x_i for the first example


def test_literal_product_equals_simplified_where_finite():
    y = jnp.array([1.0, 0.0, 1.0])
    y_hat = jnp.array([0.3, 0.6, 0.9])
    np.testing.assert_allclose(literal_output_delta(y, y_hat), y - y_hat, rtol=1e-6)
