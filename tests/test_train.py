"""The one definition of training: one member, driven by a JAX key (make_train) or by host draws."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepmle import config as config_lib
from deepmle import train
from deepmle.core import member, model
from deepmle.errors import UserError
from deepmle.population import randomness

from .helpers import member_alone


def _config(**train_kw) -> config_lib.Config:
    return config_lib.Config(
        model=config_lib.ModelConfig(hidden_sizes=((8,),)),
        train=config_lib.TrainConfig(**{"epochs": 2, "batch_size": 64, "seeds": 2} | train_kw),
    )


def _spec(small, **train_kw) -> train.Spec:
    return train.spec_from_config(_config(**train_kw), (784, 8, 1), small.train.y.shape[0])


def test_training_ascends_the_log_likelihood(small):
    run = jax.jit(train.make_train(_config(), small))  # the suite's one 2-epoch program
    _, metrics = run(jax.random.key(0), 1.0, small)
    curve = np.asarray(metrics["curves"]["train_ll"])
    assert curve.shape == (2,)
    assert curve[-1] > curve[0]
    assert float(metrics["val_accuracy"]) > 0.9
    assert int(metrics["diverged_epoch"]) == -1


def test_same_key_same_result_and_new_key_new_result(small):
    run = jax.jit(train.make_train(_config(), small))
    data = jax.device_put(small)
    a, b, c = (run(jax.random.key(k), 0.5, data) for k in (3, 3, 4))
    chex.assert_trees_all_equal(a, b)
    assert not np.allclose(a[0][0]["w"], c[0][0]["w"])


def test_learning_rate_and_seed_sweep_compiles_once(small):
    counted = jax.jit(chex.assert_max_traces(train.make_train(_config(epochs=1), small), n=1))
    data = jax.device_put(small)
    for seed, lr in [(0, 0.1), (1, 0.3), (2, 1.0), (3, 3.0)]:
        counted(jax.random.key(seed), lr, data)


def test_make_train_vmaps_over_keys_and_learning_rates(small):
    one = train.make_train(_config(epochs=1), small)
    many = jax.jit(jax.vmap(jax.vmap(one, (None, 0, None)), (0, None, None)))
    keys, lrs = jax.random.split(jax.random.key(0), 3), jnp.array([0.1, 1.0])
    data = jax.device_put(small)
    params, metrics = many(keys, lrs, data)
    assert params[0]["w"].shape == (3, 2, 784, 8) and metrics["val_accuracy"].shape == (3, 2)
    alone_params, alone = jax.jit(one)(keys[2], lrs[1], data)
    chex.assert_trees_all_close(
        jax.tree.map(lambda a: a[2, 1], params), alone_params, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(metrics["val_ll"][2, 1], alone["val_ll"], rtol=1e-4)


def test_every_epoch_sees_a_fresh_shuffle(small):
    """Each epoch's minibatches come from its own permutation (a stale shuffle is a real bug)."""
    spec = _spec(small, epochs=3)
    orders = np.asarray(member.key_orders(spec, jax.random.key(0)))
    assert orders.shape == (3, spec.steps_per_epoch, 64)
    for e in range(3):
        assert len(np.unique(orders[e])) == orders[e].size  # a permutation, no repeats
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])


def _diverged(metrics) -> tuple[int, int]:
    return int(metrics["diverged_epoch"]), int(metrics["diverged_reason"])


def test_huge_learning_rate_diverges_by_getting_worse_than_its_start(small):
    """lr 1000 keeps a sigmoid network finite but makes it far worse than its initialisation:
    that is divergence, and the member freezes at its initial parameters."""
    spec = _spec(small, epochs=2)
    state, curves, metrics = member_alone(spec, small, seed=0, lr=1000.0)
    assert _diverged(metrics) == (0, member.WORSE_THAN_INIT)
    assert float(curves["train_ll"][0]) < -1.0  # what the epoch did, recorded
    assert np.isnan(float(curves["train_ll"][1]))  # frozen: no train metrics after
    initial = model.from_normals(randomness.init_normals(0, spec.layer_sizes))
    chex.assert_trees_all_equal(state.params, jax.tree.map(jnp.asarray, initial))


def test_non_finite_epoch_diverges_and_freezes(small):
    spec = _spec(small, epochs=2)
    state, _, metrics = member_alone(spec, small, seed=1, lr=1e38)
    assert _diverged(metrics) == (0, member.NON_FINITE)
    assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(state.params))


def test_a_good_learning_rate_does_not_diverge(small):
    _, curves, metrics = member_alone(_spec(small, epochs=2), small, seed=0, lr=0.3)
    assert _diverged(metrics) == (-1, member.HEALTHY)
    assert np.all(np.diff(np.asarray(curves["train_ll"])) > 0)


def test_a_member_that_turns_bad_later_keeps_its_last_good_epoch(small):
    """Diverging in epoch k restores the parameters at the end of epoch k-1, exactly."""
    spec = _spec(small, epochs=2)
    params = model.from_normals(randomness.init_normals(0, spec.layer_sizes))
    orders = randomness.epoch_orders(0, spec.n_train, spec.batch_size, spec.epochs)
    data = jax.tree.map(jnp.asarray, small)
    one = train.member(spec)

    @jax.jit
    def two_epochs(params, orders):
        baseline = one.start_lls(params, data)
        state = one.init(jnp.float32(0.5), params, member.Shared(data, jnp.int32(0)))
        out = []
        for e, lr in enumerate((0.5, 1e38)):  # a good epoch, then a poisoned one
            seed, shared = member.Seed(orders[e], baseline), member.Shared(data, jnp.int32(e))
            hparams = {**state.hparams, "learning_rate": jnp.float32(lr)}
            state, _ = member.run_epoch(one, state._replace(hparams=hparams), seed, shared)
            out.append(state)
        return out

    after_good, after_bad = two_epochs(params, orders)
    assert int(after_good.diverged_epoch) == -1 and int(after_bad.diverged_epoch) == 1
    chex.assert_trees_all_equal(after_bad.params, after_good.params)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_other_optimizers_train(small, optimizer):
    lr = {"momentum": 0.1, "adam": 0.01}[optimizer]
    run = jax.jit(train.make_train(_config(optimizer=optimizer, epochs=2), small))
    _, metrics = run(jax.random.key(0), lr, small)
    assert float(metrics["val_accuracy"]) > 0.9


def test_no_ragged_last_batch(small):
    spec = _spec(small, batch_size=100)
    assert spec.steps_per_epoch == small.train.y.shape[0] // 100
    orders = randomness.epoch_orders(0, 1050, 100, 2)
    assert orders.shape == (2, 10, 100)


def test_batch_larger_than_data_is_a_user_error(small):
    with pytest.raises(UserError, match="batch_size"):
        train.make_train(_config(batch_size=5000), small)


def test_strings_are_resolved_before_tracing(small):
    spec = _spec(small)
    assert callable(spec.activation) and not isinstance(spec.activation, str)
    assert spec == _spec(small) and hash(spec) == hash(_spec(small))  # equal configs share programs


def test_make_train_takes_the_data_as_an_argument_not_a_constant(small):
    """Closed over, jit would bake the dataset into the program text."""
    lowered = jax.jit(train.make_train(_config(epochs=1), small)).lower(
        jax.random.key(0), 0.5, jax.device_put(small)
    )
    assert len(lowered.as_text()) < 2_000_000  # the small set alone is 1.6M floats


def test_train_refuses_data_of_another_training_size(small, embedded):
    """Its minibatch orders index the split it was made for: on a larger one it would train on
    the first examples only (gathers clamp), on a smaller one on repeated ones."""
    run = train.make_train(_config(epochs=1), small)
    with pytest.raises(ValueError, match=r"data\.train: 11430 examples, but .* made for 1024"):
        run(jax.random.key(0), 0.5, embedded)
    with pytest.raises(ValueError, match="made for 1024"):
        jax.jit(run)(jax.random.key(0), 0.5, embedded)  # shapes are static: inside jit too


def test_train_refuses_a_learning_rate_array_outside_vmap_and_bad_labels(small):
    run = train.make_train(_config(epochs=1), small)
    with pytest.raises(ValueError, match=r"learning_rate: expected a scalar, got shape \[2\]"):
        run(jax.random.key(0), jnp.array([0.1, 1.0]), small)
    y = small.train.y.copy()
    y[0] = 2
    bad = small._replace(train=small.train._replace(y=y))
    with pytest.raises(ValueError, match=r"data.train.y: labels must be 0 or 1, got \[2.0\]"):
        run(jax.random.key(0), 0.5, bad)


def test_a_nearly_flat_epoch_at_a_tiny_learning_rate_is_not_divergence(small):
    """At lr 1e-7 the epoch's train LL equals its start up to float32 rounding, which the
    tolerance must absorb (a tolerance of the wrong sign would call this member diverged)."""
    run = jax.jit(train.make_train(_config(epochs=2), small))
    _, metrics = run(jax.random.key(0), 1e-7, small)
    assert int(metrics["diverged_epoch"]) == -1


def _end_epoch_inputs(small, batch_size):
    spec = _spec(small, batch_size=batch_size)
    params = model.from_normals(randomness.init_normals(0, spec.layer_sizes))
    shared = member.Shared(jax.tree.map(jnp.asarray, small), jnp.int32(0))
    state = member.init(spec, jnp.float32(0.5), params, shared)
    steps = spec.steps_per_epoch
    order = jnp.arange(steps * batch_size, dtype=jnp.int32).reshape(steps, batch_size)
    return spec, shared, state, member.Seed(order, member.start_lls(spec, params, shared.data))


def test_the_divergence_baseline_is_the_ll_of_the_examples_the_epoch_saw(small):
    """1024 examples in batches of 100: 1000 seen, 24 sit out. The seen ones start at LL -0.1
    and the others at -50, so an epoch at -2.5 is more than WORSE_NATS (2) below its own
    examples' start, though within 2 of the mean over all examples (-1.27). A stop records
    the two LLs it compared."""
    spec, shared, state, seed = _end_epoch_inputs(small, 100)
    order = seed.order
    assert spec.n_train == 1024 and order.size == 1000 and member.WORSE_NATS == 2.0
    seed = seed._replace(start_lls=jnp.full(1024, -50.0).at[order.ravel()].set(-0.1))
    for train_ll, diverges in ((-2.5, True), (-1.9, False), (-0.05, False)):
        lls, accs = jnp.full(10, train_ll), jnp.ones(10)
        new, _ = member.end_epoch(spec, member.Epoch(state, state, lls, accs), seed, shared)
        assert (int(new.diverged_epoch) == 0) == diverges, train_ll
        if diverges:
            assert int(new.diverged_reason) == member.WORSE_THAN_INIT
            np.testing.assert_allclose(new.diverged_train_ll, train_ll, rtol=1e-6)
            np.testing.assert_allclose(new.diverged_start_ll, -0.1, rtol=1e-5)
        else:
            assert np.isnan(new.diverged_train_ll) and np.isnan(new.diverged_start_ll)


def test_a_slow_start_on_a_plateau_is_not_divergence(small):
    """The referee's case: a deep sigmoid network's first epoch sits a little below its initial
    LL (-0.75 against -0.69) and then trains. That dip, or one of a whole nat, is no stop."""
    spec, shared, state, seed = _end_epoch_inputs(small, 64)
    seed = seed._replace(start_lls=jnp.full(1024, -0.69))
    for train_ll in (-0.75, -1.69):
        lls, accs = jnp.full(seed.order.shape[0], train_ll), jnp.full(seed.order.shape[0], 0.5)
        new, _ = member.end_epoch(spec, member.Epoch(state, state, lls, accs), seed, shared)
        assert int(new.diverged_epoch) == -1, train_ll


def test_validation_is_measured_on_the_parameters_after_the_epochs_update(small):
    spec, shared, state, seed = _end_epoch_inputs(small, 64)
    data, steps = shared.data, seed.order.shape[0]
    updated = jax.tree.map(lambda p: p + 0.05, state.params)
    lls, accs = jnp.zeros(steps), jnp.ones(steps)  # LL 0: the best there is
    epoch = member.Epoch(state, state._replace(params=updated), lls, accs)
    new, metrics = member.end_epoch(spec, epoch, seed, shared)
    assert int(new.diverged_epoch) == -1
    after = member.evaluate(spec, updated, data.validation.x, data.validation.y)
    before = member.evaluate(spec, state.params, data.validation.x, data.validation.y)
    assert float(metrics["val_ll"]) == float(after[0]) != float(before[0])
    assert float(metrics["val_accuracy"]) == float(after[1])


def test_train_outside_jit_takes_numpy_data(small):
    """A notebook's first call: numpy arrays, no jit; the same result as on device arrays."""
    numpy_data = jax.tree.map(np.asarray, small)
    assert isinstance(numpy_data.train.x, np.ndarray)
    run = train.make_train(_config(epochs=1), numpy_data)
    params, metrics = run(jax.random.key(0), 0.5, numpy_data)
    jitted = jax.jit(train.make_train(_config(epochs=1), small))(
        jax.random.key(0), 0.5, jax.device_put(small)
    )
    chex.assert_trees_all_close((params, metrics), jitted, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="data: every split's x and y must be numeric"):
        run(
            jax.random.key(0),
            0.5,
            numpy_data._replace(test=numpy_data.test._replace(y=np.array(["one"] * 4))),
        )


def test_make_train_validates_a_config_changed_in_code(small):
    from dataclasses import replace

    config = _config()
    with pytest.raises(config_lib.ConfigError, match=r"\[train\] learning_rate: must be finite"):
        train.make_train(
            replace(config, train=replace(config.train, learning_rate=(np.nan,))), small
        )
