"""Training by MLE: gradient ascent on the mean log-likelihood of each minibatch, through optax.

The one definition of training, for ONE network (a "member"):

  init(spec, hparams, params, shared)     -> Member: its hyperparameters and starting state
  step(spec, member, seed, shared)        -> Member, (LL, accuracy) of one minibatch: grad + update
  end_epoch(spec, epoch, seed, shared)    -> Member, metrics: divergence check, validation
  final(spec, ended, seed, shared)        -> the final metrics: test accuracy, proper scores
                                             and calibration (deepmle.core.calibration)

``final`` is ``final_network`` (what needs the network: test accuracy, and the logits) then
``final_scores`` (what needs only logits, labels and the seed's key: Brier, LL, ECE, the
temperature fit), so that a population can compile the second once for all its shapes.

Their arguments come grouped by how a sweep maps them: per member (``Member``: traced
hyperparameters, deepmle.core.hyperparams, parameters, optimizer state), per seed (``Seed``:
minibatch order, the divergence baseline ``start_lls``, computed once per seed, and the
calibration reference's key) and shared (``Shared``: data, epoch).

``run_epoch`` scans the step over an epoch's minibatches and ends the epoch, for any
``Members``; ``run`` adds init, the scan over epochs and final. ``member(spec)`` trains one
network; ``deepmle.population.programs`` vmaps the same four functions over cells (each a
set of hyperparameters) and seeds, shards them over devices and compiles one epoch of the
result (init and final inside). ``deepmle.train.make_train(config, dataset) -> train(key, lr,
data)`` is ``run`` for one member, from a JAX key.

Shapes (layer sizes, batch size, epochs) are static; the hyperparameters and the random
draws are arrays, so one compile serves every seed and every cell of a shape. Under MAP
(``prior_std`` finite for some member) each step ascends the mean LL plus log p(θ)/N, and the
guard compares that objective; MLE members of the same program get an exact zero prior term.
"""

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from deepmle.core import calibration, hyperparams, registry
from deepmle.core.hyperparams import HParams
from deepmle.core.likelihood import accuracy_from_logits, example_log_likelihoods
from deepmle.core.metrics import HEALTHY, NON_FINITE, WORSE_THAN_INIT
from deepmle.core.model import forward, training_matmul
from deepmle.core.types import Array, Dataset, Metrics, Params, PRNGKey

WORSE_NATS = 2.0
"""An epoch is "worse than initialisation" when its mean train LL falls more than this many
nats per example below the same examples' LL at initialisation (about −0.7 for 1 vs 2).
Chosen from measurements with the guard off (docs: the divergence guard): a deep sigmoid
network's plateau sits at most 0.05 below its start in epoch 1; first epochs that dip and then
train reach 1.2 below (sigmoid at lr 10, tanh at lr 3); learning rates that diverge fall 2.6
(sigmoid, lr 30) to 40 (tanh, lr 10) below, or to non-finite values."""


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
    acting: frozenset[str] = frozenset()
    """The traced hyperparameters with a ``neutral`` value (deepmle.core.hyperparams) that
    some member sets away from it: ``prior_std`` (a prior term) and ``init_scale`` (scaled
    initial weights, and each member's own divergence baseline). Absent, the program has no
    code for them at all, bitwise as before they existed."""

    @property
    def steps_per_epoch(self) -> int:
        """Whole minibatches only: the last n_train mod batch_size examples of a shuffle sit out."""
        return self.n_train // self.batch_size


class Member(NamedTuple):
    """What each member has of its own: its hyperparameters and its training state. In a
    sweep every leaf has the member axes [seeds, cells] (vmapped over cells inside, seeds
    outside)."""

    hparams: HParams
    """{name: float32 []}: learning_rate and the other traced hyperparameters."""
    params: Params
    opt_state: optax.OptState
    diverged_epoch: Array
    """int32: -1 while healthy, else the 0-based epoch that diverged; the member then stays
    frozen at its parameters from the end of the epoch before."""
    diverged_reason: Array
    """int32: HEALTHY, NON_FINITE or WORSE_THAN_INIT."""
    diverged_train_ll: Array
    """float32: the mean train LL of the epoch that diverged (NaN while healthy)."""
    diverged_start_ll: Array
    """float32: the LL at initialisation of the examples that epoch saw, the baseline the
    guard compared it with (NaN while healthy)."""
    start: Array
    """The member's own baseline where its initial weights are not its seed's (``init_scale``
    acting): [n_train] LLs at initialisation; else [0]. Under MAP, ``start_log_prior`` adds."""
    start_log_prior: Array
    """float32: log p(θ at initialisation) / N under MAP (0 under MLE), the guard's baseline
    for the prior's part of the objective."""


class Seed(NamedTuple):
    """What a seed's members share, computed once per seed: [seeds, ...] in a sweep."""

    order: Array
    """int32 minibatch indices into the training split: the epoch's [steps, batch] (for
    ``end_epoch``), the step's one minibatch [batch] (for ``step``)."""
    start_lls: Array
    """[n_train]: every training example's log-likelihood (eq. 3 term) at initialisation, the
    divergence baseline (``start_lls``)."""
    key: Array | None = None
    """uint32 [2]: raw key data from which ``final`` draws the calibration reference's labels
    (deepmle.core.calibration.ece_reference); a seed's learning rates share it, as they share
    its minibatches. Only ``final`` reads it (``step`` and ``end_epoch`` may leave it None)."""


class Shared(NamedTuple):
    """What every member of a sweep shares."""

    data: Dataset
    epoch: Array
    """int32, the 0-based epoch."""


class Epoch(NamedTuple):
    """A member's epoch, for ``end_epoch``: its state before and after the epoch's steps, and
    each step's (mean LL, accuracy), lls and accs [steps]."""

    before: Member
    after: Member
    lls: Array
    accs: Array


class Ended(NamedTuple):
    """A member after its last epoch, for ``final``: its state and that epoch's metrics."""

    member: Member
    last: Metrics


def _objective(params: Params, x: Array, y: Array, spec: Spec) -> tuple[Array, Array]:
    """(mean LL of the minibatch, its logits [batch]): what each step ascends."""
    z = forward(params, x, spec.activation, matmul=training_matmul)
    return jnp.mean(example_log_likelihoods(z, y)), z


def evaluate(spec: Spec, params: Params, x: Array, y: Array) -> tuple[Array, Array]:
    """(mean log-likelihood per example, accuracy) of params on x [n, n_inputs], y [n]."""
    z = forward(params, x, spec.activation)
    return jnp.mean(example_log_likelihoods(z, y)), accuracy_from_logits(z, y)


def start_lls(spec: Spec, params: Params, data: Dataset) -> Array:
    """[n_train]: the log-likelihood of every training example under a seed's initial
    ``params``, the divergence baseline its members share (``Seed.start_lls``)."""
    return example_log_likelihoods(forward(params, data.train.x, spec.activation), data.train.y)


def _map(spec: Spec) -> bool:
    return "prior_std" in spec.acting


def _log_prior_per_example(spec: Spec, params: Params, hparams: HParams) -> Array:
    """log p(θ) / N under MAP, 0 under MLE (no code at all)."""
    if not _map(spec):
        return jnp.float32(0.0)
    return hyperparams.log_prior(params, hparams["prior_std"]) / spec.n_train


def init(spec: Spec, hparams: HParams | Array, params: Params, shared: Shared) -> Member:
    """A member before its first step: hyperparameters ``hparams`` (per member: a dict of
    float32 scalars, deepmle.core.hyperparams, or a bare learning rate), starting from its
    seed's initial ``params`` (per seed: a seed's cells start from the same draw; times
    ``init_scale`` if acting)."""
    if not isinstance(hparams, dict):  # a bare learning rate
        hparams = {"learning_rate": hparams}
    hparams = {k: jnp.asarray(v, jnp.result_type(float)) for k, v in hparams.items()}
    start = jnp.zeros((0,), jnp.float32)
    if "init_scale" in spec.acting:
        scale = hparams["init_scale"]
        params = [{**layer, "w": scale * layer["w"]} for layer in params]
        start = start_lls(spec, params, shared.data)
    return Member(
        hparams=hparams,
        params=params,
        opt_state=spec.optimizer({"learning_rate": 0.0, **hparams}).init(params),
        diverged_epoch=jnp.int32(-1),
        diverged_reason=jnp.int32(HEALTHY),
        diverged_train_ll=jnp.float32(jnp.nan),
        diverged_start_ll=jnp.float32(jnp.nan),
        start=start,
        start_log_prior=_log_prior_per_example(spec, params, hparams),
    )


def step(
    spec: Spec, member: Member, seed: Seed, shared: Shared
) -> tuple[Member, tuple[Array, Array]]:
    """One minibatch (``seed.order`` [batch] indices into the training split) of gradient
    ascent: gradient, optax update and parameter update, one jitted region. Returns the new
    member and the minibatch's (mean LL, accuracy), scalars, before the update. Under MAP the
    gradient is that of mean LL + log p(θ)/N (``hyperparams.prior_gradient``)."""
    params, opt_state, data, idx = member.params, member.opt_state, shared.data, seed.order
    x, y = data.train.x[idx], data.train.y[idx]
    (ll, z), grads = jax.value_and_grad(_objective, has_aux=True)(params, x, y, spec)
    if _map(spec):
        prior = hyperparams.prior_gradient(params, member.hparams["prior_std"], spec.n_train)
        grads = hyperparams.add(grads, prior)
    updates, opt_state = spec.optimizer(member.hparams).update(grads, opt_state, params)
    member = member._replace(params=optax.apply_updates(params, updates), opt_state=opt_state)
    return member, (ll, accuracy_from_logits(z, y))


def _all_finite(tree: Any) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))


def end_epoch(spec: Spec, epoch: Epoch, seed: Seed, shared: Shared) -> tuple[Member, Metrics]:
    """Accept or refuse the epoch just run, then measure on validation.

    The epoch diverged when it ends with a non-finite LL or parameter, or when its mean train
    LL (``epoch.lls`` [steps], one per minibatch) is more than ``WORSE_NATS`` below the LL at
    initialisation of the very examples it saw (``seed.order`` [steps, batch]): the ascent made
    the member far worse than where it started, by more than a slow start's dip. Under MAP
    both sides add log p(θ)/N: the guard compares the objective the member ascends. A diverged
    member keeps its parameters from before the epoch and stays frozen, and records both LLs.
    Checked once per epoch, not per step: a per-step guard is a select over every parameter
    at every step (docs/speed.md).

    Returns ``{"train_ll", "train_accuracy", "val_ll", "val_accuracy"}`` (scalars); the train
    metrics are means over the epoch's minibatches, NaN after the member froze.
    """
    before, params, opt_state = epoch.before, epoch.after.params, epoch.after.opt_state
    train_ll = jnp.mean(epoch.lls)
    own = "init_scale" in spec.acting
    start_ll = jnp.mean((before.start if own else seed.start_lls)[seed.order])
    finite = jnp.isfinite(train_ll) & _all_finite(params)
    objective = train_ll + _log_prior_per_example(spec, params, before.hparams)
    worse = objective < start_ll + before.start_log_prior - WORSE_NATS
    running = before.diverged_epoch < 0
    accept = running & finite & ~worse
    stops = running & ~accept
    keep = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
    member = before._replace(
        params=jax.tree.map(keep, params, before.params),
        opt_state=jax.tree.map(keep, opt_state, before.opt_state),
        diverged_epoch=jnp.where(stops, shared.epoch, before.diverged_epoch).astype(jnp.int32),
        diverged_reason=jnp.where(
            stops, jnp.where(finite, WORSE_THAN_INIT, NON_FINITE), before.diverged_reason
        ).astype(jnp.int32),
        diverged_train_ll=jnp.where(stops, train_ll, before.diverged_train_ll),
        diverged_start_ll=jnp.where(stops, start_ll, before.diverged_start_ll),
    )
    val = shared.data.validation
    val_ll, val_acc = evaluate(spec, member.params, val.x, val.y)
    seen = running  # the epoch's own train metrics are meaningful up to the epoch that diverged
    nan = jnp.float32(jnp.nan)
    return member, {
        "train_ll": jnp.where(seen, train_ll, nan),
        "train_accuracy": jnp.where(seen, jnp.mean(epoch.accs), nan),
        "val_ll": val_ll,
        "val_accuracy": val_acc,
    }


class Logits(NamedTuple):
    """A member's logits for the final metrics that need no network (``final_scores``): on the
    test split [n_test], and with ``spec.calibrate`` on validation [n_validation] (else None)."""

    test: Array
    validation: Array | None


class Labels(NamedTuple):
    """The labels ``final_scores`` measures logits against: test [n_test], validation
    [n_validation]."""

    test: Array
    validation: Array


def final_network(spec: Spec, ended: Ended, seed: Seed, shared: Shared) -> tuple[Metrics, Logits]:
    """The final metrics that need the network (scalars): train LL and accuracy of its last
    epoch (``ended.last``, means over that epoch's minibatches), validation at the final
    parameters, test accuracy and where and why it diverged; and the logits from which
    ``final_scores`` measures the rest. ``seed`` is unused: the seed's key goes to
    ``final_scores``."""
    member, data = ended.member, shared.data
    z = forward(member.params, data.test.x, spec.activation)
    z_val = forward(member.params, data.validation.x, spec.activation) if spec.calibrate else None
    return {
        **ended.last,
        "test_accuracy": accuracy_from_logits(z, data.test.y),
        "diverged_epoch": member.diverged_epoch,
        "diverged_reason": member.diverged_reason,
        "diverged_train_ll": member.diverged_train_ll,
        "diverged_start_ll": member.diverged_start_ll,
    }, Logits(z, z_val)


def final_scores(calibrate: bool, logits: Logits, key: Array, labels: Labels) -> Metrics:
    """The final metrics of logits alone (scalars), on the test split (the only place it is
    used): LL per example, Brier score, ECE and its reference (labels drawn from ŷ with
    ``key``, the seed's raw uint32 [2] key data). With ``calibrate`` also the temperature T
    fitted on validation and the test metrics of σ(z / T) (``*_ts``, the same draws); without
    it those are not measured, so not returned (the schema's ``calibrated`` rows:
    deepmle.core.metrics). No shape of the network reaches it, so a population compiles it
    once for all its shapes (deepmle.population.programs)."""
    key = jax.random.wrap_key_data(key)
    z = logits.test
    scores = calibration.split_metrics(z, labels.test, key)
    if calibrate:
        temperature = calibration.fit_temperature(logits.validation, labels.validation)
        scores["temperature"] = temperature
        scores |= calibration.split_metrics(z / temperature, labels.test, key, "_ts")
    return scores


def final_metrics(network: Metrics, scores: Metrics) -> Metrics:
    """``final``'s metrics from its two parts (``final_network``'s and ``final_scores``'s),
    keys sorted, as a dict leaves any jitted program, so files list them in one order."""
    return dict(sorted({**network, **scores}.items()))


def final(spec: Spec, ended: Ended, seed: Seed, shared: Shared) -> Metrics:
    """The member's final metrics (scalars): ``final_network`` then ``final_scores`` of its
    logits, with the seed's key (``seed.key``, raw uint32 [2] key data)."""
    network, logits = final_network(spec, ended, seed, shared)
    labels = Labels(shared.data.test.y, shared.data.validation.y)
    return final_metrics(network, final_scores(spec.calibrate, logits, seed.key, labels))


class Members(NamedTuple):
    """How a batch of members applies the per-member functions, each with ``spec`` bound:
    the functions themselves for one network, their vmaps for a sweep
    (deepmle.population.programs). ``init``, ``step``, ``end_epoch``, ``final`` and
    ``final_network`` take their arguments by kind, (per member, per seed, shared), so one pair
    of vmap axes serves all; ``start_lls`` is per seed: (per seed, shared)."""

    start_lls: Callable[[Params, Dataset], Array]
    init: Callable[[HParams, Params, Shared], Member]
    step: Callable[[Member, Seed, Shared], tuple[Member, tuple[Array, Array]]]
    end_epoch: Callable[[Epoch, Seed, Shared], tuple[Member, Metrics]]
    final: Callable[[Ended, Seed, Shared], Metrics]
    final_network: Callable[[Ended, Seed, Shared], tuple[Metrics, Logits]]


def member(spec: Spec) -> Members:
    """The per-member functions of ``spec``, for one network."""
    fs = (start_lls, init, step, end_epoch, final, final_network)
    return Members(*(partial(f, spec) for f in fs))


def run_epoch(
    members: Members, member: Member, seed: Seed, shared: Shared
) -> tuple[Member, Metrics]:
    """One epoch of ``members``: ``lax.scan`` of the step over the minibatches of
    ``seed.order`` [steps, ...batch], then ``end_epoch``. The scan stacks each step's (LL,
    accuracy) along a leading [steps] axis; it is moved last, behind any member axes, and the
    order's behind any seed axis, so every argument keeps its kind's axes first."""

    def one_step(m: Member, idx: Array) -> tuple[Member, tuple[Array, Array]]:
        return members.step(m, seed._replace(order=idx), shared)

    after, (lls, accs) = jax.lax.scan(one_step, member, seed.order)
    steps_last = lambda a: jnp.moveaxis(a, 0, -1)  # noqa: E731
    epoch = Epoch(member, after, steps_last(lls), steps_last(accs))
    return members.end_epoch(epoch, seed._replace(order=jnp.moveaxis(seed.order, 0, -2)), shared)


def run(
    members: Members, params: Params, orders: Array, hparams: HParams, data: Dataset, key: Array
) -> tuple[Member, Metrics, Metrics]:
    """Train ``members`` for as many epochs as ``orders`` [epochs, steps, batch] has (every
    epoch's minibatch indices): (final member, curves {name: [epochs]}, final metrics).
    ``key`` (uint32 [2] key data, the seed's) draws the calibration reference's labels in
    ``final``."""
    baseline = members.start_lls(params, data)
    member = members.init(hparams, params, Shared(data, jnp.int32(0)))

    def one_epoch(member: Member, xs: tuple[Array, Array]) -> tuple[Member, Metrics]:
        order, epoch = xs
        return run_epoch(members, member, Seed(order, baseline), Shared(data, epoch))

    member, curves = jax.lax.scan(one_epoch, member, (orders, jnp.arange(orders.shape[0])))
    last = jax.tree.map(lambda v: v[-1], curves)
    end = Shared(data, jnp.int32(orders.shape[0] - 1))
    seed = Seed(orders[-1], baseline, key)
    return member, curves, members.final(Ended(member, last), seed, end)


def key_orders(spec: Spec, key: PRNGKey) -> Array:
    """int32 [epochs, steps, batch] minibatch indices from a JAX key: a fresh permutation per
    epoch, ``fold_in(key, epoch)`` (the in-program counterpart of randomness.epoch_orders)."""
    n = spec.steps_per_epoch * spec.batch_size

    def one(epoch: Array) -> Array:
        order = jax.random.permutation(jax.random.fold_in(key, epoch), spec.n_train)
        return order[:n].reshape(spec.steps_per_epoch, spec.batch_size)

    return jax.vmap(one)(jnp.arange(spec.epochs))
