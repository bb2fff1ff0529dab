import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepmle import config as config_lib
from deepmle.errors import UserError
from deepmle.train import (
    Spec,
    device_data,
    make_train,
    seed_keys,
    spec_from_config,
    train_group,
    train_member,
)


def _config(**train):
    base = config_lib.Config()
    return config_lib.Config(
        model=config_lib.ModelConfig(hidden_sizes=((8,),)),
        train=config_lib.TrainConfig(**{"epochs": 2, "batch_size": 64, "seeds": 2} | train),
        data=base.data,
    )


def test_training_ascends_the_log_likelihood(small):
    train = jax.jit(make_train(_config(epochs=3), small))
    _, metrics = train(jax.random.key(0), 1.0)
    curve = np.asarray(metrics["curves"]["train_ll"])
    assert curve.shape == (3,)
    assert curve[-1] > curve[0]
    assert float(metrics["val_accuracy"]) > 0.9
    assert int(metrics["diverged_epoch"]) == -1


def test_same_key_same_result_and_new_key_new_result(small):
    train = jax.jit(make_train(_config(), small))
    a = train(jax.random.key(3), 0.5)
    b = train(jax.random.key(3), 0.5)
    c = train(jax.random.key(4), 0.5)
    chex.assert_trees_all_equal(a, b)
    assert not np.allclose(a[0][0]["w"], c[0][0]["w"])


def test_learning_rate_and_seed_sweep_compiles_once(small):
    train = make_train(_config(epochs=1), small)
    counted = jax.jit(chex.assert_max_traces(train, n=1))
    for seed, lr in [(0, 0.1), (1, 0.3), (2, 1.0), (3, 3.0)]:
        counted(jax.random.key(seed), lr)


def test_vmapped_member_equals_member_trained_alone(small):
    config = _config(epochs=2)
    spec = spec_from_config(config, (784, 8, 1), small.train.y.shape[0])
    data = device_data(small)
    lrs = jnp.array([0.1, 1.0, 3.0])
    keys = seed_keys(np.arange(3))
    params, metrics = jax.jit(lambda k, lr: train_group(spec, data, k, lr))(keys, lrs)
    alone = jax.jit(lambda k, lr: train_member(spec, data, k, lr))
    for s, li in [(0, 0), (2, 1), (1, 2)]:
        p1, m1 = alone(keys[s], lrs[li])
        member = jax.tree.map(lambda a, s=s, li=li: a[s, li], params)
        chex.assert_trees_all_close(member, p1, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(metrics["val_ll"][s, li], m1["val_ll"], rtol=1e-4)
        np.testing.assert_allclose(
            metrics["curves"]["train_ll"][:, s, li], m1["curves"]["train_ll"], rtol=1e-4
        )


def test_group_seed_does_not_depend_on_how_many_seeds_run(small):
    spec = spec_from_config(_config(epochs=1), (784, 8, 1), small.train.y.shape[0])
    data = device_data(small)
    run = jax.jit(lambda k, lr: train_group(spec, data, k, lr))
    lrs = jnp.array([0.5])
    p2, _ = run(seed_keys(np.arange(2)), lrs)
    p4, _ = run(seed_keys(np.arange(4)), lrs)
    chex.assert_trees_all_close(
        jax.tree.map(lambda a: a[:2], p2), jax.tree.map(lambda a: a[:2], p4), rtol=1e-5
    )


def test_diverging_member_is_frozen_and_its_neighbours_unaffected(small):
    spec = spec_from_config(_config(epochs=2), (784, 8, 1), small.train.y.shape[0])
    data = device_data(small)
    keys = seed_keys(np.arange(1))
    run = jax.jit(lambda k, lr: train_group(spec, data, k, lr))
    params, metrics = run(keys, jnp.array([0.5, 1e38]))
    assert int(metrics["diverged_epoch"][0, 0]) == -1
    assert int(metrics["diverged_epoch"][0, 1]) == 0
    assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(params))
    alone, _ = run(keys, jnp.array([0.5]))
    chex.assert_trees_all_close(
        jax.tree.map(lambda a: a[0, 0], params), jax.tree.map(lambda a: a[0, 0], alone)
    )


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_other_optimizers_train(small, optimizer):
    lr = {"momentum": 0.1, "adam": 0.01}[optimizer]
    train = jax.jit(make_train(_config(optimizer=optimizer, epochs=2), small))
    _, metrics = train(jax.random.key(0), lr)
    assert float(metrics["val_accuracy"]) > 0.9


def test_no_ragged_last_batch():
    spec = Spec(layer_sizes=(784, 4, 1), batch_size=100, n_train=1050)
    assert spec.steps_per_epoch == 10


def test_batch_larger_than_data_is_a_user_error(small):
    with pytest.raises(UserError, match="batch_size"):
        make_train(_config(batch_size=5000), small)
