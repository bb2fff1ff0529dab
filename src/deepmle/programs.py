"""The device layout and the compiled programs: how one network shape's members (seeds ×
learning rates) are laid out over devices, and the ONE program per shape that trains them.

The program is ``train.run`` over ``group(spec)``: the per-member functions of deepmle.train
vmapped over learning rates inside (a seed's members share its minibatch, so the layer-1
GEMM is one [batch, 784] x [784, lrs·h] per seed) and over seeds outside, then ``shard_map``
over a ("seeds", "lrs") mesh of every device of every process. Learning rates, initial
weights and minibatch orders are array arguments: new values never recompile.

Layout for speed, chosen here and only here: inside the program the first layer's weights of
a seed are stored [784, lrs, h] (the lrs axis in the middle), so that with
``model.training_matmul`` both layer-1 GEMMs read and write them with no transpose. Results
leave the program member-first ([seeds, lrs, ...], curves [seeds, lrs, epochs]).
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from deepmle import train
from deepmle.data import Dataset
from deepmle.types import Metrics, Params

CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
"""On CPU the heavy work is Eigen's GEMMs, not LLVM-generated code, so LLVM's level 1 compiles
faster at the same speed (experiments/benchmark.py). Not applied on other backends."""


class Layout(NamedTuple):
    """Members of one shape on a mesh with axes ("seeds", "lrs"): each device holds
    [padded_seeds / mesh "seeds", padded_lrs / mesh "lrs"] of them. Padding members are
    trained (extra seeds, repeats of the last learning rate) and dropped."""

    mesh: Mesh
    n_seeds: int
    n_lrs: int
    padded_seeds: int
    padded_lrs: int

    @property
    def devices(self) -> int:
        return self.mesh.devices.size

    @property
    def members_per_device(self) -> int:
        return self.padded_seeds * self.padded_lrs // self.devices

    @property
    def padded_members(self) -> int:
        return self.padded_seeds * self.padded_lrs - self.n_seeds * self.n_lrs

    def describe(self) -> dict[str, Any]:
        """What meta.json records about the layout."""
        shape = dict(self.mesh.shape)
        return {
            "devices": self.devices,
            "mesh": {"seeds": shape["seeds"], "lrs": shape["lrs"]},
            "members_per_device": self.members_per_device,
            "padded_members": self.padded_members,
        }


def mesh_shape(n_seeds: int, n_lrs: int, n_devices: int) -> tuple[int, int]:
    """(devices along seeds, devices along learning rates) with the fewest padding members;
    among equals, the most devices along seeds, so that more learning rates share a seed's
    minibatch on one device. 2 seeds x 4 lrs on 4 devices: (2, 2), 2 members each, no padding."""

    def cost(ds: int) -> tuple[int, int]:
        dl = n_devices // ds
        return (math.ceil(n_seeds / ds) * ds * math.ceil(n_lrs / dl) * dl, -ds)

    ds = min((d for d in range(1, n_devices + 1) if n_devices % d == 0), key=cost)
    return ds, n_devices // ds


def plan(n_seeds: int, n_lrs: int, devices: list | None = None) -> Layout:
    """The layout of ``n_seeds`` x ``n_lrs`` members over ``devices`` (default: all of every
    process), shaped by ``mesh_shape``."""
    devices = list(jax.devices() if devices is None else devices)
    ds, dl = mesh_shape(n_seeds, n_lrs, len(devices))
    mesh = Mesh(np.array(devices).reshape(ds, dl), ("seeds", "lrs"))
    return Layout(mesh, n_seeds, n_lrs, math.ceil(n_seeds / ds) * ds, math.ceil(n_lrs / dl) * dl)


def _param_lr_axes(spec: train.Spec) -> Params:
    """Where the learning-rate axis sits in each member parameter (the layout note above)."""
    return [{"w": 1 if i == 0 else 0, "b": 0} for i in range(len(spec.layer_sizes) - 1)]


def _lr_axes(tree: Any, param_axes: Params) -> Any:
    """vmap axes for a member pytree: subtrees shaped like the params (the params themselves,
    optax's momentum and Adam moments) take ``param_axes``; every other leaf axis 0."""
    like = jax.tree.structure(param_axes)
    params_like = lambda t: jax.tree.structure(t) == like  # noqa: E731
    return jax.tree.map(lambda t: param_axes if params_like(t) else 0, tree, is_leaf=params_like)


def group(spec: train.Spec, data: Dataset) -> train.Members:
    """The per-member functions vmapped over [seeds, lrs] members, learning rates inside.

    The inner vmap does not map the minibatch indices, so a seed's gather is computed once
    and shared by its learning rates; ``init`` does not depend on the learning rate, so it
    runs once per seed and is broadcast.
    """
    one = train.member(spec)
    param_axes = _param_lr_axes(spec)
    params_like = [
        {
            "w": jax.ShapeDtypeStruct((a, b), jnp.float32),
            "b": jax.ShapeDtypeStruct((b,), jnp.float32),
        }
        for a, b in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:], strict=True)
    ]
    state = _lr_axes(jax.eval_shape(one.init, params_like, 0.0, data), param_axes)
    carry = (state.params, state.opt_state)

    def members(f: Callable, lr_in: tuple, lr_out: Any, seed_in: tuple) -> Callable:
        return jax.vmap(jax.vmap(f, in_axes=lr_in, out_axes=lr_out), in_axes=seed_in)

    return train.Members(
        init=members(one.init, (None, 0, None), state, (0, None, None)),
        step=members(one.step, (0, carry, None, None), (carry, 0), (None, 0, 0, None)),
        end_epoch=members(
            one.end_epoch,
            (state, carry, 1, 1, None, None, None),
            (state, 0),
            (0, 0, 1, 1, 1, None, None),
        ),
        final=members(one.final, (state, 0, None), 0, (0, 0, None)),
    )


def _state_specs(axes: Any) -> Any:
    """shard_map specs of a group state from its learning-rate axes: the seed axis first, the
    learning-rate axis after ``a`` more axes."""
    return jax.tree.map(lambda a: P("seeds", *[None] * a, "lrs"), axes)


class Program(NamedTuple):
    """One shape's compiled epoch program and the global shapes of its state.

    ``compiled(state, params, orders, lrs, data, epoch) -> (state, metrics, final)`` runs
    epoch ``epoch``: at epoch 0 it first initialises the state from ``params`` (the state
    passed in is then only a placeholder of the right shapes); at the last epoch ``final``
    holds the final metrics, zeros before. ``state`` is donated.
    """

    spec: train.Spec
    layout: Layout
    compiled: Any
    state_shapes: Any


def _epoch_program(spec: train.Spec, axes: Any) -> Callable:
    def epoch_program(
        state: train.TrainState, params: Params, orders: jax.Array, lrs: jax.Array,
        data: Dataset, epoch: jax.Array,
    ) -> tuple[train.TrainState, Metrics, Metrics]:  # fmt: skip
        members = group(spec, data)
        state = jax.lax.cond(epoch == 0, lambda: members.init(params, lrs, data), lambda: state)
        state, metrics = train.run_epoch(members, state, orders[epoch], lrs, epoch, data)
        shapes = jax.eval_shape(members.final, state, metrics, data)
        final = jax.lax.cond(
            epoch == spec.epochs - 1,
            lambda: members.final(state, metrics, data),
            lambda: jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes),
        )
        return state, metrics, final

    return epoch_program


def _global(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from the same host array on every process (each keeps its own shards)."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def device_data(dataset: Dataset, mesh: Mesh) -> Dataset:
    """The dataset's splits as float32 arrays replicated on every device of ``mesh``."""
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda a: _global(np.asarray(a, np.float32), sharding), dataset)


class Inputs(NamedTuple):
    """A program's arguments as global arrays: initial params (per seed, [seeds, ...]), orders
    [epochs, steps, seeds, batch], learning rates [lrs] (padded), data."""

    params: Params
    orders: jax.Array
    lrs: jax.Array
    data: Dataset


def inputs(
    layout: Layout, params: Params, orders: np.ndarray, lrs: np.ndarray, data: Dataset
) -> Inputs:
    """Global arrays for a program from host arrays: ``params`` per seed [padded_seeds, ...],
    ``orders`` [padded_seeds, epochs, steps, batch], ``lrs`` [n_lrs] (padded here)."""
    mesh = layout.mesh
    lrs = np.asarray(lrs, np.float32)
    lrs = np.concatenate([lrs, np.repeat(lrs[-1:], layout.padded_lrs - lrs.size)])
    by_seed = NamedSharding(mesh, P("seeds"))
    orders = np.ascontiguousarray(np.moveaxis(orders, 0, 2))
    return Inputs(
        params=jax.tree.map(lambda a: _global(np.asarray(a, np.float32), by_seed), params),
        orders=_global(orders, NamedSharding(mesh, P(None, None, "seeds"))),
        lrs=_global(lrs, NamedSharding(mesh, P("lrs"))),
        data=data,
    )


def compile_program(spec: train.Spec, layout: Layout, args: Inputs) -> Program:
    """Trace, lower and compile the epoch program of ``spec`` for ``args``'s shapes."""
    mesh = layout.mesh
    members = group(spec, args.data)
    state_shapes = jax.eval_shape(members.init, args.params, args.lrs, args.data)
    axes = _lr_axes(state_shapes, _param_lr_axes(spec))
    seeds_lrs = P("seeds", "lrs")
    in_specs = (_state_specs(axes), P("seeds"), P(None, None, "seeds"), P("lrs"), P(), P())
    out_specs = (_state_specs(axes), seeds_lrs, seeds_lrs)
    fn = jax.shard_map(_epoch_program(spec, axes), mesh=mesh, in_specs=in_specs,
                       out_specs=out_specs, check_vma=False)  # fmt: skip
    options = CPU_COMPILER_OPTIONS if mesh.devices.flat[0].platform == "cpu" else {}
    state = jax.tree.map(
        lambda a, spec: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=NamedSharding(mesh, spec)),
        state_shapes, _state_specs(axes),
    )  # fmt: skip
    jitted = jax.jit(fn, donate_argnums=0, compiler_options=options)
    compiled = jitted.lower(state, *args, np.int32(0)).compile()
    return Program(spec, layout, compiled, state)


def placeholder_state(program: Program) -> Any:
    """Zeros of the state's global shapes, for epoch 0 (which initialises the real state)."""
    return jax.tree.map(
        lambda s: _global(np.zeros(s.shape, s.dtype), s.sharding), program.state_shapes
    )


class GroupArrays(NamedTuple):
    """One shape's members on the host, member axes first: params [seeds, lrs, ...], curves
    {name: [seeds, lrs, epochs]}, final {name: [seeds, lrs]}."""

    params: Params
    curves: dict[str, np.ndarray]
    final: dict[str, np.ndarray]


def to_host(tree: Any) -> Any:
    """Global arrays to host numpy (all processes' shards)."""
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def group_arrays(
    layout: Layout, params: Params, curves: list[Metrics], final: Metrics
) -> GroupArrays:
    """Host arrays of a finished shape, padding dropped, member axes first: ``params`` the
    final state's, ``curves`` one dict of [seeds, lrs] per epoch."""
    s, lr = layout.n_seeds, layout.n_lrs
    member_params = [
        {
            "w": np.moveaxis(layer["w"], 2, 1)[:s, :lr] if i == 0 else layer["w"][:s, :lr],
            "b": layer["b"][:s, :lr],
        }
        for i, layer in enumerate(params)
    ]
    return GroupArrays(
        params=member_params,
        curves={k: np.stack([c[k] for c in curves], axis=-1)[:s, :lr] for k in curves[0]},
        final={k: v[:s, :lr] for k, v in final.items()},
    )


def estimate_bytes(spec: train.Spec, layout: Layout, n_data_floats: int) -> int:
    """A lower bound on one device's memory for the program: every member's parameters about
    four times over (params, the epoch's start, gradients, optimizer state up to Adam's two
    moments), its examples' initial LLs, and the replicated data."""
    weights = sum(
        a * b + b for a, b in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:], strict=True)
    )
    per_member = 4 * (5 * weights + spec.n_train)
    return layout.members_per_device * per_member + 4 * n_data_floats
