"""Training by MLE: gradient ascent on the mean log-likelihood of each minibatch, through optax.

The one definition of training, for ONE network (a "member"):

  init(spec, params, data)                -> TrainState, with each example's LL at initialisation
  step(spec, lr, carry, idx, data)        -> carry, (LL, accuracy) of one minibatch: grad + update
  end_epoch(spec, state, carry, ...)      -> TrainState, metrics: divergence check, validation
  final(spec, state, last, data, key)     -> the final metrics: test accuracy, proper scores
                                             and calibration (deepmle.core.calibration)

``run_epoch`` scans the step over an epoch's minibatches and ends the epoch, for any
``Members``; ``run`` adds init, the scan over epochs and final. ``member(spec)`` trains one
network; ``deepmle.population.programs`` vmaps the same four functions over learning rates
and seeds, shards them over devices and compiles one epoch of the result (init and final
inside). ``deepmle.train.make_train(config, dataset) -> train(key, lr, data)`` is ``run`` for
one member, from a JAX key.

Shapes (layer sizes, batch size, epochs) are static; the learning rate and the random
draws are arrays, so one compile serves every seed and every learning rate of a shape.
"""

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from deepmle.core import calibration, registry
from deepmle.core.likelihood import accuracy_from_logits, example_log_likelihoods
from deepmle.core.model import forward, training_matmul
from deepmle.core.types import Array, Dataset, Metrics, Params, PRNGKey

HEALTHY, NON_FINITE, WORSE_THAN_INIT = 0, 1, 2
"""Why a member stopped: ``TrainState.diverged_reason``."""
DIVERGENCE_REASONS = ("", "non-finite LL or parameter", "train LL below its initial value")
WORSE_RTOL = 1e-4
"""An epoch is "worse than initialisation" when its mean train LL falls below the same
examples' LL at initialisation by more than this fraction of it: float32 rounding of the two
means, not a real loss, is what a tiny learning rate would otherwise trip over."""


class Spec(NamedTuple):
    """Everything static about one network shape's training: each distinct value is a compile."""

    layer_sizes: tuple[int, ...]
    activation: Callable[[Array], Array]
    optimizer: registry.Optimizer
    batch_size: int
    epochs: int
    n_train: int
    calibrate: bool = False
    """Fit a temperature on validation and report test metrics after it too."""

    @property
    def steps_per_epoch(self) -> int:
        """Whole minibatches only: the last n_train mod batch_size examples of a shuffle sit out."""
        return self.n_train // self.batch_size


class TrainState(NamedTuple):
    """One member between epochs."""

    params: Params
    opt_state: optax.OptState
    start_lls: Array
    """[n_train]: every training example's log-likelihood (eq. 3 term) at initialisation."""
    diverged_epoch: Array
    """int32: -1 while healthy, else the 0-based epoch that diverged; the member then stays
    frozen at its parameters from the end of the epoch before."""
    diverged_reason: Array
    """int32: HEALTHY, NON_FINITE or WORSE_THAN_INIT."""


def _objective(params: Params, x: Array, y: Array, spec: Spec) -> tuple[Array, Array]:
    """(mean LL of the minibatch, its logits [batch]): what each step ascends."""
    z = forward(params, x, spec.activation, matmul=training_matmul)
    return jnp.mean(example_log_likelihoods(z, y)), z


def evaluate(spec: Spec, params: Params, x: Array, y: Array) -> tuple[Array, Array]:
    """(mean log-likelihood per example, accuracy) of params on x [n, 784], y [n]."""
    z = forward(params, x, spec.activation)
    return jnp.mean(example_log_likelihoods(z, y)), accuracy_from_logits(z, y)


def init(spec: Spec, params: Params, data: Dataset) -> TrainState:
    """The state before the first step, from initial ``params`` (no learning rate: a seed's
    learning rates share one computation of it). ``start_lls`` is [n_train]."""
    z = forward(params, data.train.x, spec.activation)
    return TrainState(
        params=params,
        opt_state=spec.optimizer(0.0).init(params),
        start_lls=example_log_likelihoods(z, data.train.y),
        diverged_epoch=jnp.int32(-1),
        diverged_reason=jnp.int32(HEALTHY),
    )


Carry = tuple[Params, optax.OptState]


def step(
    spec: Spec, lr: Array, carry: Carry, idx: Array, data: Dataset
) -> tuple[Carry, tuple[Array, Array]]:
    """One minibatch (indices ``idx`` [batch] into the training split) of gradient ascent:
    gradient, optax update and parameter update, one jitted region. Returns the new carry
    and the minibatch's (mean LL, accuracy), scalars, before the update."""
    params, opt_state = carry
    x, y = data.train.x[idx], data.train.y[idx]
    (ll, z), grads = jax.value_and_grad(_objective, has_aux=True)(params, x, y, spec)
    updates, opt_state = spec.optimizer(lr).update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), (ll, accuracy_from_logits(z, y))


def _all_finite(tree: Any) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))


def end_epoch(
    spec: Spec,
    state: TrainState,
    carry: Carry,
    lls: Array,
    accs: Array,
    order: Array,
    epoch: Array,
    data: Dataset,
) -> tuple[TrainState, Metrics]:
    """Accept or refuse the epoch just run, then measure on validation.

    The epoch diverged when it ends with a non-finite LL or parameter, or when its mean train
    LL (``lls`` [steps], one per minibatch) is below the LL at initialisation of the very
    examples it saw (``order`` [steps, batch]): the ascent made the member worse than where it
    started. A diverged member keeps its parameters from before the epoch and stays frozen.
    Checked once per epoch, not per step: a per-step guard is a select over every parameter
    at every step (the README's speed section).

    Returns ``{"train_ll", "train_accuracy", "val_ll", "val_accuracy"}`` (scalars); the train
    metrics are means over the epoch's minibatches, NaN after the member froze.
    """
    params, opt_state = carry
    train_ll = jnp.mean(lls)
    start_ll = jnp.mean(state.start_lls[order])
    finite = jnp.isfinite(train_ll) & _all_finite(params)
    worse = train_ll < start_ll - WORSE_RTOL * jnp.abs(start_ll)
    running = state.diverged_epoch < 0
    accept = running & finite & ~worse
    stops = running & ~accept
    keep = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
    state = TrainState(
        params=jax.tree.map(keep, params, state.params),
        opt_state=jax.tree.map(keep, opt_state, state.opt_state),
        start_lls=state.start_lls,
        diverged_epoch=jnp.where(stops, epoch, state.diverged_epoch).astype(jnp.int32),
        diverged_reason=jnp.where(
            stops, jnp.where(finite, WORSE_THAN_INIT, NON_FINITE), state.diverged_reason
        ).astype(jnp.int32),
    )
    val_ll, val_acc = evaluate(spec, state.params, data.validation.x, data.validation.y)
    seen = running  # the epoch's own train metrics are meaningful up to the epoch that diverged
    nan = jnp.float32(jnp.nan)
    return state, {
        "train_ll": jnp.where(seen, train_ll, nan),
        "train_accuracy": jnp.where(seen, jnp.mean(accs), nan),
        "val_ll": val_ll,
        "val_accuracy": val_acc,
    }


def final(spec: Spec, state: TrainState, last: Metrics, data: Dataset, key: Array) -> Metrics:
    """The member's final metrics (scalars): train LL and accuracy of its last epoch (``last``,
    means over that epoch's minibatches), validation at the final parameters, on the test
    split (the only place it is used) accuracy, LL per example, Brier score, ECE and its
    reference (labels drawn from ŷ with ``key``, raw uint32 [2] key data), and where and why
    it diverged. With ``spec.calibrate`` also the temperature T fitted on validation and the
    test metrics of σ(z / T) (``*_ts``, the same draws); otherwise those are NaN."""
    key = jax.random.wrap_key_data(key)
    z = forward(state.params, data.test.x, spec.activation)
    scaled = {f"{k}_ts": jnp.float32(jnp.nan) for k in calibration.METRICS}
    temperature = jnp.float32(jnp.nan)
    if spec.calibrate:
        z_val = forward(state.params, data.validation.x, spec.activation)
        temperature = calibration.fit_temperature(z_val, data.validation.y)
        scaled = calibration.split_metrics(z / temperature, data.test.y, key, "_ts")
    return {
        **last,
        **calibration.split_metrics(z, data.test.y, key),
        "test_accuracy": accuracy_from_logits(z, data.test.y),
        "temperature": temperature,
        **scaled,
        "diverged_epoch": state.diverged_epoch,
        "diverged_reason": state.diverged_reason,
    }


class Members(NamedTuple):
    """How a batch of members applies the per-member functions, each with ``spec`` bound:
    the functions themselves for one network, their vmaps for a sweep (deepmle.population.programs).
    The signatures are those of ``init``, ``step``, ``end_epoch`` and ``final`` without spec."""

    init: Callable[..., TrainState]
    step: Callable[..., tuple[Carry, tuple[Array, Array]]]
    end_epoch: Callable[..., tuple[TrainState, Metrics]]
    final: Callable[..., Metrics]


def member(spec: Spec) -> Members:
    """The per-member functions of ``spec``, for one network."""
    return Members(*(partial(f, spec) for f in (init, step, end_epoch, final)))


def run_epoch(
    members: Members, state: TrainState, order: Array, lr: Array, epoch: Array, data: Dataset
) -> tuple[TrainState, Metrics]:
    """One epoch of ``members``: ``lax.scan`` of the step over the minibatches of ``order``
    [steps, ...batch], then ``end_epoch``."""

    def one_step(carry: Carry, idx: Array) -> tuple[Carry, tuple[Array, Array]]:
        return members.step(lr, carry, idx, data)

    carry, (lls, accs) = jax.lax.scan(one_step, (state.params, state.opt_state), order)
    return members.end_epoch(state, carry, lls, accs, order, epoch, data)


def run(
    members: Members, params: Params, orders: Array, lr: Array, data: Dataset, key: Array
) -> tuple[TrainState, Metrics, Metrics]:
    """Train ``members`` for as many epochs as ``orders`` [epochs, steps, batch] has (every
    epoch's minibatch indices): (final state, curves {name: [epochs]}, final metrics).
    ``key`` (uint32 [2] key data) draws the calibration reference's labels in ``final``."""
    state = members.init(params, data)

    def one_epoch(state: TrainState, xs: tuple[Array, Array]) -> tuple[TrainState, Metrics]:
        order, epoch = xs
        return run_epoch(members, state, order, lr, epoch, data)

    state, curves = jax.lax.scan(one_epoch, state, (orders, jnp.arange(orders.shape[0])))
    last = jax.tree.map(lambda v: v[-1], curves)
    return state, curves, members.final(state, last, data, key)


def key_orders(spec: Spec, key: PRNGKey) -> Array:
    """int32 [epochs, steps, batch] minibatch indices from a JAX key: a fresh permutation per
    epoch, ``fold_in(key, epoch)`` (the in-program counterpart of randomness.epoch_orders)."""
    n = spec.steps_per_epoch * spec.batch_size

    def one(epoch: Array) -> Array:
        order = jax.random.permutation(jax.random.fold_in(key, epoch), spec.n_train)
        return order[:n].reshape(spec.steps_per_epoch, spec.batch_size)

    return jax.vmap(one)(jnp.arange(spec.epochs))
