"""The figures' numpy ŷ is the network's own ŷ, for every activation a config can name."""

import jax
import numpy as np
import pytest

from deepmle.analysis import predict
from deepmle.core import registry
from deepmle.core.model import init_params, predict_proba


def test_every_registered_activation_has_a_numpy_twin():
    assert list(predict.ACTIVATIONS) == list(registry.ACTIVATIONS)


@pytest.mark.parametrize("name", list(registry.ACTIVATIONS))
def test_numpy_probabilities_equal_the_models(name, rng):
    """Two hidden layers, weights scaled up, digits from blank to fully inked: ŷ far from one
    value (relu and tanh reach both ends)."""
    params = [
        {"w": 4 * layer["w"], "b": layer["b"]}
        for layer in init_params(jax.random.key(1), (784, 16, 8, 1))
    ]
    x = (rng.uniform(size=(256, 784)) < rng.uniform(size=(256, 1))).astype(np.float32)
    want = np.asarray(predict_proba(params, x, registry.activation(name)))
    got = predict.predict_proba([{k: np.asarray(v) for k, v in p.items()} for p in params], x, name)
    assert got.dtype == np.float32 and got.shape == (256,)
    assert want.max() - want.min() > 0.35
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)  # float32 sums, another order


def test_an_activation_without_a_numpy_twin_is_named():
    with pytest.raises(ValueError, match="no numpy activation 'swish'"):
        predict.predict_proba(
            [{"w": np.ones((784, 1)), "b": np.zeros(1)}], np.zeros((1, 784)), "swish"
        )
