"""Training by MLE: gradient ascent on the mean log-likelihood of each minibatch, through optax.

A whole run is a pure function of (key, learning rate): ``make_train(config, dataset)``
returns ``train(key, learning_rate) -> (params, metrics)``, jittable and vmappable over both.
Shapes (layer sizes, batch size, epochs) are static; the key and the learning rate are
traced, so one compile serves every seed and every learning rate of a network shape.

``group_program`` holds the pieces every sweep runs: the same ``train_epoch``, vmapped over
learning rates *inside* (members of one seed share its minibatch, so XLA's layer-1 matmul
is one [batch, 784] x [784, lrs·h] GEMM) and over seeds *outside*. ``train_group`` composes
them with ``lax.scan`` as one pure function; ``deepmle.sweep`` calls them one epoch at a
time, sharded over devices and in chunks of seeds.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import optax

from deepmle import registry
from deepmle.errors import UserError
from deepmle.likelihood import (
    accuracy_from_logits,
    log_likelihood_from_logits,
    mean_log_likelihood,
)
from deepmle.model import forward, init_params
from deepmle.types import Array, Metrics, Params, PRNGKey

if TYPE_CHECKING:
    from deepmle.config import Config
    from deepmle.data import Dataset


@dataclass(frozen=True)
class Spec:
    """Everything static about a run: it decides array shapes, so each value is one compile."""

    layer_sizes: tuple[int, ...]
    activation: str = "sigmoid"
    optimizer: str = "sgd"
    momentum: float = 0.9
    batch_size: int = 128
    epochs: int = 10
    n_train: int = 0

    @property
    def steps_per_epoch(self) -> int:
        """Whole minibatches only: the last n_train mod batch_size examples of a shuffle sit out."""
        return self.n_train // self.batch_size


class Data(NamedTuple):
    """Device arrays: x_* float [n, 784] in [0, 1], y_* float [n] of 0/1."""

    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    x_test: Array
    y_test: Array


class TrainState(NamedTuple):
    params: Params
    opt_state: optax.OptState
    diverged_epoch: Array
    """int32 scalar: -1 while every epoch ended finite, else the (0-based) epoch that did not;
    from then on the member is frozen at its parameters from the start of that epoch."""


def spec_from_config(config: "Config", layer_sizes: tuple[int, ...], n_train: int) -> Spec:
    """The Spec of one network shape of ``config``; rejects a batch larger than the data."""
    if config.train.batch_size > n_train:
        raise UserError(
            f"[train] batch_size {config.train.batch_size} is larger than the "
            f"{n_train} training examples"
        )
    return Spec(
        layer_sizes=tuple(layer_sizes),
        activation=config.model.activation,
        optimizer=config.train.optimizer,
        momentum=config.train.momentum,
        batch_size=config.train.batch_size,
        epochs=config.train.epochs,
        n_train=n_train,
    )


def device_data(dataset: "Dataset", dtype: jnp.dtype = jnp.float32) -> Data:
    """The dataset's splits as device arrays of ``dtype``."""
    return Data(
        *(
            jnp.asarray(a, dtype)
            for split in (dataset.train, dataset.validation, dataset.test)
            for a in split
        )
    )


def make_optimizer(spec: Spec, learning_rate: Array) -> optax.GradientTransformation:
    """The optax transformation for *ascent*: updates are +learning_rate times the direction.

    ``learning_rate`` may be a tracer: the transformation is built inside the traced
    function, so a new learning rate is a new value, never a new compile.
    """
    return registry.optimizer(spec.optimizer, spec.momentum)(learning_rate)


def evaluate(spec: Spec, params: Params, x: Array, y: Array) -> tuple[Array, Array]:
    """(mean log-likelihood per example, accuracy) of params on x [n, 784], y [n]."""
    z = forward(params, x, spec.activation)
    return log_likelihood_from_logits(z, y) / y.shape[0], accuracy_from_logits(z, y)


def _all_finite(tree: Params) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))


def init(spec: Spec, key: PRNGKey) -> TrainState:
    """The state before the first step; uses only the key's ``init`` stream."""
    init_key, _ = jax.random.split(key)
    params = init_params(init_key, spec.layer_sizes)
    opt_state = make_optimizer(spec, jnp.float32(0.0)).init(params)
    return TrainState(params, opt_state, jnp.int32(-1))


def epoch_batches(spec: Spec, key: PRNGKey, epoch: Array) -> Array:
    """Indices [steps, batch] of one epoch's minibatches: a fresh shuffle drawn from the key."""
    _, shuffle_key = jax.random.split(key)
    order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), spec.n_train)
    return order[: spec.steps_per_epoch * spec.batch_size].reshape(
        spec.steps_per_epoch, spec.batch_size
    )


def train_epoch(
    spec: Spec, state: TrainState, key: PRNGKey, learning_rate: Array, data: Data, epoch: Array
) -> tuple[TrainState, Metrics]:
    """One epoch of minibatch ascent (``lax.scan`` over steps), then validation metrics.

    Divergence is checked once per epoch, not per step (a per-step guard cost 10-30% of the
    step time): a member whose epoch ends with a non-finite LL or parameter goes back to its
    parameters from the start of that epoch, the last state checked finite, and stays there.

    Returns the new state and ``{"train_ll", "val_ll", "val_accuracy"}`` (scalars), where
    train_ll is the mean over the epoch's minibatches of their per-example LL.
    """
    tx = make_optimizer(spec, learning_rate)
    grad_fn = jax.value_and_grad(mean_log_likelihood)

    def step(carry: tuple[Params, optax.OptState], idx: Array) -> tuple[tuple, Array]:
        params, opt_state = carry
        ll, grads = grad_fn(params, data.x_train[idx], data.y_train[idx], spec.activation)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), ll

    (params, opt_state), lls = jax.lax.scan(
        step, (state.params, state.opt_state), epoch_batches(spec, key, epoch)
    )
    train_ll = jnp.mean(lls)
    running = state.diverged_epoch < 0
    ok = jnp.isfinite(train_ll) & _all_finite(params)
    keep = lambda new, old: jnp.where(running & ok, new, old)  # noqa: E731
    state = TrainState(
        params=jax.tree.map(keep, params, state.params),
        opt_state=jax.tree.map(keep, opt_state, state.opt_state),
        diverged_epoch=jnp.where(running & ~ok, epoch, state.diverged_epoch).astype(jnp.int32),
    )
    val_ll, val_acc = evaluate(spec, state.params, data.x_val, data.y_val)
    return state, {"train_ll": train_ll, "val_ll": val_ll, "val_accuracy": val_acc}


def final_metrics(spec: Spec, state: TrainState, data: Data) -> Metrics:
    """Scalars at the final parameters: LL on every split, accuracy on validation and test."""
    train_ll, train_acc = evaluate(spec, state.params, data.x_train, data.y_train)
    val_ll, val_acc = evaluate(spec, state.params, data.x_val, data.y_val)
    test_ll, test_acc = evaluate(spec, state.params, data.x_test, data.y_test)
    return {
        "train_ll": train_ll,
        "train_accuracy": train_acc,
        "val_ll": val_ll,
        "val_accuracy": val_acc,
        "test_ll": test_ll,
        "test_accuracy": test_acc,
        "diverged_epoch": state.diverged_epoch,
    }


def train_member(
    spec: Spec, data: Data, key: PRNGKey, learning_rate: Array
) -> tuple[Params, Metrics]:
    """One network trained for ``spec.epochs``: (final params, metrics).

    metrics["curves"] holds per-epoch arrays [epochs] of train_ll, val_ll and val_accuracy;
    the other entries are ``final_metrics``.
    """
    state = init(spec, key)

    def body(state: TrainState, epoch: Array) -> tuple[TrainState, Metrics]:
        return train_epoch(spec, state, key, learning_rate, data, epoch)

    state, curves = jax.lax.scan(body, state, jnp.arange(spec.epochs))
    return state.params, {**final_metrics(spec, state, data), "curves": curves}


def make_train(
    config: "Config", dataset: "Dataset"
) -> Callable[[PRNGKey, Array], tuple[Params, Metrics]]:
    """``train(key, learning_rate) -> (params, metrics)`` for the config's (single) network shape.

    Pure, jittable and vmappable over the key and the learning rate.
    """
    if len(config.shapes) != 1:
        raise UserError("make_train takes a config with one network shape; use deepmle.sweep")
    spec = spec_from_config(config, config.shapes[0], dataset.train.y.shape[0])
    data = device_data(dataset)

    def train(key: PRNGKey, learning_rate: Array) -> tuple[Params, Metrics]:
        return train_member(spec, data, key, jnp.asarray(learning_rate, jnp.float32))

    return train


def seed_keys(seeds: Array, base: int = 0) -> PRNGKey:
    """Keys [len(seeds)]: seed s gets fold_in(key(base), s), whatever other seeds run beside it."""
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.key(base), s))(jnp.asarray(seeds))


class GroupProgram(NamedTuple):
    """The three pieces of a group's training, each vmapped over [seeds, lrs] members.

    ``init(keys, lrs) -> state``; ``epoch(state, keys, lrs, data, epoch) -> (state, metrics)``;
    ``final(state, data) -> metrics``. keys: [seeds]; lrs: [lrs]; state leaves [seeds, lrs, ...].
    The learning-rate vmap is the inner one and does not map the key, so a seed's shuffle and
    gathered minibatch are computed once and shared by its learning rates.
    """

    init: Callable[..., TrainState]
    epoch: Callable[..., tuple[TrainState, Metrics]]
    final: Callable[..., Metrics]


def group_program(spec: Spec) -> GroupProgram:
    """The un-jitted group pieces for ``spec``; ``train_group`` and the sweep engine share them."""

    def one_init(key: PRNGKey, lr: Array) -> TrainState:
        return init(spec, key)

    def one_epoch(
        state: TrainState, key: PRNGKey, lr: Array, data: Data, epoch: Array
    ) -> tuple[TrainState, Metrics]:
        return train_epoch(spec, state, key, lr, data, epoch)

    def one_final(state: TrainState, data: Data) -> Metrics:
        return final_metrics(spec, state, data)

    return GroupProgram(
        init=jax.vmap(jax.vmap(one_init, (None, 0)), (0, None)),
        epoch=jax.vmap(jax.vmap(one_epoch, (0, None, 0, None, None)), (0, 0, None, None, None)),
        final=jax.vmap(jax.vmap(one_final, (0, None)), (0, None)),
    )


def train_group(
    spec: Spec, data: Data, keys: PRNGKey, learning_rates: Array
) -> tuple[Params, Metrics]:
    """Every (seed, learning rate) member of one network shape, trained at once.

    keys: [seeds] (one per seed); learning_rates: [lrs]. Returns params and metrics with
    leading axes [seeds, lrs]; metrics["curves"] entries are [epochs, seeds, lrs].
    """
    program = group_program(spec)
    state = program.init(keys, learning_rates)

    def body(state: TrainState, epoch: Array) -> tuple[TrainState, Metrics]:
        return program.epoch(state, keys, learning_rates, data, epoch)

    state, curves = jax.lax.scan(body, state, jnp.arange(spec.epochs))
    return state.params, {**program.final(state, data), "curves": curves}
