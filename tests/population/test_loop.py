"""The one epoch loop (deepmle.population.loop): cells in calls of a fixed capacity give the
cells of one call, in order, padding dropped; a state's cells sliced where each leaf keeps them."""

import jax
import numpy as np

from deepmle import config as config_lib
from deepmle import runtime, train
from deepmle.core import registry
from deepmle.core.hyperparams import HYPERPARAMETERS
from deepmle.core.member import Shared
from deepmle.population import loop, programs, search
from deepmle.population.groups import ProgramCache
from deepmle.progress import Progress


def test_cells_in_calls_of_two_train_as_the_cells_of_one_call(small):
    """Five learning rates (up to 3: larger ones amplify rounding) in calls of 2 (three
    calls, the last padded) against one call of 5: the same members in the same order,
    within float32 rounding (a call's neighbours move the last bits), one program a capacity."""
    lrs = [0.1, 0.3, 1.0, 2.0, 3.0]
    train_keys = {"learning_rate": lrs, "epochs": 2, "seeds": 2, "batch_size": 64}
    config = config_lib.from_dict({"model": {"hidden_sizes": [4]}, "train": train_keys})
    spec = train.spec_from_config(config, (784, 4, 1), small.train.y.shape[0])
    cache = ProgramCache()
    with runtime.Interrupts() as interrupts:
        env = search.make_env(small, programs.split_pixels(small), cache, programs.CHUNK_BYTES,
                              Progress(quiet=True), interrupts, lambda a, r: None)  # fmt: skip
        env = loop.Env(env.prepare, env.wait, env.on_epoch)
        _, whole, _ = loop.train_cells(spec, env, None, config.cells(), 2, 0, 2, capacity=5)
        state, parts, info = loop.train_cells(spec, env, None, config.cells(), 2, 0, 2, capacity=2)
    assert info["calls_per_epoch"] == 3 and len(cache._programs) == 2  # capacity 5, capacity 2
    for k in ("train_ll", "val_ll", "val_accuracy", "test_accuracy", "diverged_epoch"):
        assert parts.final[k].shape == whole.final[k].shape == (2, 5)
        np.testing.assert_allclose(parts.final[k], whole.final[k], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(parts.params[0]["w"], whole.params[0]["w"], rtol=1e-4, atol=1e-5)
    assert state.member.hparams["learning_rate"].shape == (2, 5)
    np.testing.assert_allclose(state.member.hparams["learning_rate"][0], lrs)


def test_take_cells_slices_each_leaf_where_its_cell_axis_sits(small):
    """The first layer's weights are [seeds, pixels, cells, h], the rest [seeds, cells, ...];
    start_lls [seeds, n] has no cells axis. Slicing must pick the same member in every leaf."""
    config = config_lib.Config()
    spec = train.spec_from_config(config, (784, 4, 1), small.train.y.shape[0])
    spec = spec._replace(optimizer=registry.optimizer("adam"))
    members = programs.group(spec)
    rng = np.random.default_rng(0)
    params = [
        {"w": rng.normal(size=(2, 784, 4)), "b": np.zeros((2, 4))},
        {"w": rng.normal(size=(2, 4, 1)), "b": np.zeros((2, 1))},
    ]
    params = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
    cells = {k: np.float32([v.default] * 3) for k, v in HYPERPARAMETERS.items()}
    cells["learning_rate"] = np.float32([0.1, 0.2, 0.3])
    hparams = {k: np.broadcast_to(v, (2, 3)) for k, v in cells.items()}
    member = members.init(hparams, params, Shared(small, np.int32(0)))
    state = jax.device_get(programs.GroupState(member, members.start_lls(params, small)))

    def tag(a, ax):  # each member's entries offset by its lr index, to see which one is taken
        return a + np.arange(a.shape[ax + 1]).reshape(
            [-1 if i == ax + 1 else 1 for i in range(a.ndim)]
        )

    axes = programs._state_axes(spec, small)
    tagged = jax.tree.map(
        lambda ax, a: a if ax is None else tag(np.asarray(a, np.float64), ax),
        axes, state, is_leaf=lambda a: a is None,
    )  # fmt: skip
    cut = loop.take_cells(tagged, axes, np.array([2, 0]))
    m, t = cut.member, tagged.member
    assert m.params[0]["w"].shape == (2, 784, 2, 4)
    assert cut.start_lls.shape == state.start_lls.shape
    assert m.diverged_epoch.shape == (2, 2)
    for k in HYPERPARAMETERS:
        np.testing.assert_array_equal(m.hparams[k], np.take(t.hparams[k], [2, 0], 1))
    np.testing.assert_array_equal(m.params[0]["w"], np.take(t.params[0]["w"], [2, 0], 2))
    np.testing.assert_array_equal(m.params[1]["w"], np.take(t.params[1]["w"], [2, 0], 1))
    mu = m.opt_state[0].mu
    np.testing.assert_array_equal(mu[0]["w"], np.take(t.opt_state[0].mu[0]["w"], [2, 0], 2))
    tree = search._state_treedef(spec)  # what a resume rebuilds the state with
    assert tree == jax.tree.structure(state)
