"""A shape's host draws: each seed its own initial weights, minibatch orders and key."""

import numpy as np

from deepmle import config as config_lib
from deepmle import train
from deepmle.core import model
from deepmle.population import groups, programs, randomness


def test_each_seed_starts_from_its_own_weights(small):
    config = config_lib.Config(model=config_lib.ModelConfig(hidden_sizes=((8,),)))
    spec = train.spec_from_config(config, (784, 8, 1), small.train.y.shape[0])
    params, orders, keys = groups._host_draws(spec, programs.plan(3, 2))
    assert orders.shape[0] == 3 and keys.shape == (3, 2)
    for s in range(3):
        alone = model.from_normals(randomness.init_normals(s, spec.layer_sizes))
        for layer, own in zip(params, alone, strict=True):
            np.testing.assert_array_equal(layer["w"][s], own["w"])
        if s:
            assert not np.allclose(params[0]["w"][s], params[0]["w"][0])
            assert not np.allclose(params[1]["w"][s], params[1]["w"][0])
