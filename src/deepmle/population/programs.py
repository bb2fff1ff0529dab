"""The device layout and the compiled programs: how one network shape's members (seeds ×
cells: sets of hyperparameters) are laid out over devices, and the ONE program per shape that
trains them.

The program composes the per-member functions of deepmle.core.member: vmapped over cells
inside (a seed's members share its minibatch, so the layer-1 GEMM is one
[batch, 784] x [784, cells·h] per seed) and over seeds outside, then ``shard_map`` over a
("seeds", "cells") mesh of every device of every process. One call runs one epoch
(``run_epoch``), with ``init`` inside at epoch 0 and ``final_network`` when asked (a traced
flag: the last epoch, or each rung of successive halving): the final metrics that need the
network, and each member's logits. Hyperparameters (deepmle.core.hyperparams), initial weights
and minibatch orders are array arguments: new values never recompile.

The rest of ``final``, ``final_scores`` (Brier, LL, ECE and its reference, the temperature
fit), needs only logits, labels and the seeds' keys: it is a second program, compiled once per
logits shape and shared by every network shape with those (``scores_program``,
``compile_program``), where inside each epoch program it was a third of the compile.

Layouts for speed, chosen here and only here (the maths stays in deepmle.core.member):

- a seed's first-layer weights are stored [784, cells, h], the cells axis in the middle, so that
  with ``model.training_matmul`` both layer-1 GEMMs read and write them with no transpose;
- pixels that are 0 in every training and validation image (147 of 784 on the embedded
  data) are left out of training and validation: their weights get an exact zero gradient,
  so under every registered optimizer they keep their initial values, and leaving them out
  changes no result beyond float rounding (tested) while saving a fifth of the layer-1 work.
  They are put back, at their initial values, for the test split and the saved parameters
  (and as zeros into the validation images, for the temperature fit's validation logits).

Results leave the program member-first ([seeds, cells, ...]; curves [seeds, cells, epochs]).
"""

import itertools
import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from deepmle import runtime
from deepmle.core.hyperparams import HYPERPARAMETERS, HParams
from deepmle.core.member import (
    Ended,
    Labels,
    Logits,
    Member,
    Members,
    Seed,
    Shared,
    Spec,
    final_scores,
    member,
    run_epoch,
)
from deepmle.core.types import Dataset, Metrics, Params, Split

CHUNK_BYTES = 2 * 2**20
"""Default for ``chunk_bytes``: about one core's L2 cache."""


class Layout(NamedTuple):
    """Members of one shape on a mesh with axes ("seeds", "cells"): each device holds
    [padded_seeds / mesh "seeds", padded_cells / mesh "cells"] of them. Padding members are
    trained (extra seeds, repeats of the last cell) and dropped."""

    mesh: Mesh
    n_seeds: int
    n_cells: int
    padded_seeds: int
    padded_cells: int

    @property
    def devices(self) -> int:
        return self.mesh.devices.size

    @property
    def members_per_device(self) -> int:
        return self.padded_seeds * self.padded_cells // self.devices

    @property
    def padded_members(self) -> int:
        return self.padded_seeds * self.padded_cells - self.n_seeds * self.n_cells

    def describe(self) -> dict[str, Any]:
        """What meta.json records about the layout."""
        shape = dict(self.mesh.shape)
        return {
            "devices": self.devices,
            "mesh": {"seeds": shape["seeds"], "cells": shape["cells"]},
            "members_per_device": self.members_per_device,
            "padded_members": self.padded_members,
        }


def mesh_shape(n_seeds: int, n_cells: int, n_devices: int) -> tuple[int, int]:
    """(devices along seeds, devices along cells) with the fewest padding members;
    among equals, the most devices along seeds, so that more cells share a seed's
    minibatch on one device. 2 seeds x 4 cells on 4 devices: (2, 2), 2 members each, no padding."""

    def cost(ds: int) -> tuple[int, int]:
        dl = n_devices // ds
        return (math.ceil(n_seeds / ds) * ds * math.ceil(n_cells / dl) * dl, -ds)

    ds = min((d for d in range(1, n_devices + 1) if n_devices % d == 0), key=cost)
    return ds, n_devices // ds


def plan(n_seeds: int, n_cells: int, devices: list | None = None) -> Layout:
    """The layout of ``n_seeds`` x ``n_cells`` members over ``devices`` (default: all of every
    process), shaped by ``mesh_shape``."""
    devices = list(jax.devices() if devices is None else devices)
    ds, dl = mesh_shape(n_seeds, n_cells, len(devices))
    mesh = Mesh(np.array(devices).reshape(ds, dl), ("seeds", "cells"))
    return Layout(
        mesh, n_seeds, n_cells, math.ceil(n_seeds / ds) * ds, math.ceil(n_cells / dl) * dl
    )


class Pixels(NamedTuple):
    """The input pixels split by whether any training or validation image inks them."""

    used: np.ndarray
    unused: np.ndarray


def split_pixels(dataset: Dataset, compact: bool = True) -> Pixels:
    """``used`` and ``unused`` pixel indices; every pixel counts as used if not ``compact``."""
    n = dataset.train.x.shape[1]
    if not compact:
        return Pixels(np.arange(n), np.arange(0))
    inked = (dataset.train.x != 0).any(axis=0) | (dataset.validation.x != 0).any(axis=0)
    return Pixels(np.flatnonzero(inked), np.flatnonzero(~inked))


class GroupState(NamedTuple):
    """One shape's members between epochs: ``member`` leaves [seeds, cells, ...] (the first
    layer's weights and their optimizer moments [seeds, used, cells, h]: the layout note
    above), ``start_lls`` [seeds, n_train], shared by a seed's cells. Slicing ``member``
    along its cell axes (``member_cell_axes``) selects cells."""

    member: Member
    start_lls: jax.Array


def _param_cell_axes(n_layers: int) -> Params:
    """Where the cell axis sits in each member parameter (the layout note above)."""
    return [{"w": 1 if i == 0 else 0, "b": 0} for i in range(n_layers)]


def _cell_axes(tree: Any, param_axes: Params) -> Any:
    """vmap axes for a per-member pytree: subtrees shaped like the params (the params
    themselves, optax's momentum and Adam moments) take ``param_axes``; every other leaf 0."""
    like = jax.tree.structure(param_axes)
    params_like = lambda t: jax.tree.structure(t) == like  # noqa: E731
    return jax.tree.map(lambda t: param_axes if params_like(t) else 0, tree, is_leaf=params_like)


def member_cell_axes(spec: Spec, member: Member) -> Member:
    """The cell axis of every leaf of one seed's ``member`` [cells, ...] (add 1 for a
    group's [seeds, cells, ...])."""
    return _cell_axes(member, _param_cell_axes(len(spec.layer_sizes) - 1))


def _by_kind(f: Callable, param_axes: Params) -> Callable:
    """``f(per_member, per_seed, shared)`` over a group's members [seeds, cells]: one pair of
    vmap axes by kind, for every per-member function. Inside, over a seed's cells:
    per-member arguments and results mapped (their weights in the layout above), per-seed
    and shared ones broadcast. Outside, over seeds: per-member and per-seed mapped, shared
    broadcast."""

    def over_members(member: Any, seed: Any, shared: Any) -> Any:
        inner = (_cell_axes(member, param_axes), None, None)
        results = jax.vmap(jax.vmap(f, inner), (0, 0, None))(member, seed, shared)
        # [seeds, cells, ...] -> the cell axis where the layout puts it; traced once (an
        # eval_shape for vmap's out_axes traced f a second time: half of a program's trace)
        move = lambda ax, r: r if ax == 0 else jnp.moveaxis(r, 1, 1 + ax)  # noqa: E731
        return jax.tree.map(move, _cell_axes(results, param_axes), results)

    return over_members


def group(spec: Spec) -> Members:
    """The per-member functions vmapped over a group's [seeds, cells] members, cells
    inside. Per-seed values (the minibatch indices, the initial parameters, the divergence
    baseline) are not mapped over a seed's cells, so they are computed once per
    seed and shared: one gather of the minibatch, one ``start_lls``."""
    one = member(spec)
    by_kind = partial(_by_kind, param_axes=_param_cell_axes(len(spec.layer_sizes) - 1))
    return Members(
        start_lls=jax.vmap(one.start_lls, in_axes=(0, None)),
        init=by_kind(one.init),
        step=by_kind(one.step),
        end_epoch=by_kind(one.end_epoch),
        final=by_kind(one.final),
        final_network=by_kind(one.final_network),
    )


_EPOCH = jax.ShapeDtypeStruct((), jnp.int32)
"""The epoch argument of ``init``, for eval_shape: an abstract scalar (``jnp.int32(0)`` would
compile a conversion on the host the first time a process traces a program)."""


def _state_axes(spec: Spec, data: Dataset) -> GroupState:
    """The cell axes of every leaf of one seed's state, for ``data``'s inputs; None
    for ``start_lls``, which a seed's cells share."""
    sizes = (data.train.x.shape[1], *spec.layer_sizes[1:])
    f32 = jnp.float32
    params = [
        {"w": jax.ShapeDtypeStruct((a, b), f32), "b": jax.ShapeDtypeStruct((b,), f32)}
        for a, b in itertools.pairwise(sizes)
    ]
    hparams = {k: jax.ShapeDtypeStruct((), f32) for k in HYPERPARAMETERS}
    shapes = jax.eval_shape(member(spec).init, hparams, params, Shared(data, _EPOCH))
    return GroupState(member_cell_axes(spec, shapes), None)


def _with_all_pixels(
    params: Params, unused_w: jax.Array, pixels: Pixels, scale: jax.Array | None = None
) -> Params:
    """Group params with the first layer's unused-pixel rows put back: w [seeds, used, cells,
    h] and unused_w [seeds, unused, h] (initial values) -> [seeds, 784, cells, h]; times each
    cell's ``init_scale`` [seeds, cells] where it acts (None: not)."""
    w = params[0]["w"]
    s, _, cells, h = w.shape
    full = jnp.zeros((s, len(pixels.used) + len(pixels.unused), cells, h), w.dtype)
    full = full.at[:, pixels.used].set(w)
    unused = jnp.broadcast_to(unused_w[:, :, None], (s, len(pixels.unused), cells, h))
    if scale is not None:
        unused = unused * scale[:, None, :, None]
    full = full.at[:, pixels.unused].set(unused)
    return [{**params[0], "w": full}, *params[1:]]


def seeds_per_chunk(spec: Spec, n_inputs: int, n_seeds: int, n_cells: int, chunk_bytes: int) -> int:
    """The largest divisor of a device's ``n_seeds`` whose weights (all their cells)
    fit in ``chunk_bytes``; at least 1. A chunk's steps then work out of one core's cache."""
    sizes = (n_inputs, *spec.layer_sizes[1:])
    per_seed = 4 * n_cells * sum(a * b for a, b in itertools.pairwise(sizes))
    fits = [c for c in range(1, n_seeds + 1) if n_seeds % c == 0 and c * per_seed <= chunk_bytes]
    return max(fits, default=1)


def _by_chunks(fn: Callable, chunk: int, state: Any, order: jax.Array) -> Any:
    """``fn(state, order)`` a chunk of ``chunk`` seeds at a time (``lax.map``): state leaves
    [seeds, ...], order [steps, seeds, batch]; outputs with seeds first."""
    n = order.shape[1]
    if chunk >= n:
        return fn(state, order)
    split = lambda a: a.reshape(n // chunk, chunk, *a.shape[1:])  # noqa: E731
    orders = jnp.moveaxis(order.reshape(order.shape[0], n // chunk, chunk, -1), 1, 0)
    out = jax.lax.map(lambda xs: fn(*xs), (jax.tree.map(split, state), orders))
    return jax.tree.map(lambda a: a.reshape(n, *a.shape[2:]), out)


def _epoch_program(spec: Spec, pixels: Pixels, chunk: int) -> Callable:
    def epoch_program(
        state: GroupState, params: Params, unused_w: jax.Array, orders: jax.Array,
        hparams: HParams, keys: jax.Array, data: Dataset, epoch: jax.Array, final_now: jax.Array,
    ) -> tuple[GroupState, Metrics, Metrics, Logits, Params]:  # fmt: skip
        members, shared = group(spec), Shared(data, epoch)

        def init() -> GroupState:
            n_seeds = params[0]["w"].shape[0]
            hp = jax.tree.map(lambda a: jnp.broadcast_to(a, (n_seeds, a.shape[0])), hparams)
            return GroupState(members.init(hp, params, shared), members.start_lls(params, data))

        state = jax.lax.cond(epoch == 0, init, lambda: state)

        def chunk_epoch(state: GroupState, order: jax.Array) -> tuple[GroupState, Metrics]:
            seed = Seed(order, state.start_lls)
            member, metrics = run_epoch(members, state.member, seed, shared)
            return state._replace(member=member), metrics

        state, metrics = _by_chunks(chunk_epoch, chunk, state, orders[epoch])

        def last() -> tuple[Metrics, Logits, Params]:
            scale = state.member.hparams["init_scale"] if "init_scale" in spec.acting else None
            full = _with_all_pixels(state.member.params, unused_w, pixels, scale)
            ended = Ended(state.member._replace(params=full), metrics)
            seed = Seed(jnp.moveaxis(orders[epoch], 1, 0), state.start_lls)
            val = data.validation  # its left-out pixels are 0 in every image: put them back
            n_pixels = len(pixels.used) + len(pixels.unused)
            val_x = jnp.zeros((val.x.shape[0], n_pixels), val.x.dtype).at[:, pixels.used]
            whole = data._replace(validation=Split(val_x.set(val.x), val.y))
            return *members.final_network(ended, seed, shared._replace(data=whole)), full

        # traced once: an eval_shape for the zeros would trace ``last`` (the final metrics) again
        traced, shapes = jax.make_jaxpr(last, return_shape=True)()
        ran = lambda: jax.tree.unflatten(  # noqa: E731
            jax.tree.structure(shapes), jax.extend.core.jaxpr_as_fun(traced)()
        )
        zeros = lambda: jax.tree.map(jnp.zeros_like, shapes)  # noqa: E731
        final, logits, full = jax.lax.cond(final_now, ran, zeros)
        return state, metrics, final, logits, full

    return epoch_program


def _global(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from the same host array on every process (each keeps its own shards)."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


class DeviceData(NamedTuple):
    """The dataset on every device of a mesh: training and validation images cut to the used
    pixels, the test images whole."""

    data: Dataset
    pixels: Pixels


def device_data(dataset: Dataset, mesh: Mesh, pixels: Pixels) -> DeviceData:
    """The splits as float32 arrays replicated on every device of ``mesh``."""
    used = lambda s: Split(s.x[:, pixels.used], s.y)  # noqa: E731
    cut = Dataset(used(dataset.train), used(dataset.validation), dataset.test)
    sharding = NamedSharding(mesh, P())
    return DeviceData(
        jax.tree.map(lambda a: _global(np.asarray(a, np.float32), sharding), cut), pixels
    )


class Inputs(NamedTuple):
    """A program's arguments as global arrays: initial params per seed ([seeds, ...], the
    first layer's used-pixel rows), the unused rows [seeds, unused, h], orders [epochs,
    steps, seeds, batch], hyperparameters {name: [cells]} (padded), calibration key data
    per seed [seeds, 2] (uint32), data."""

    params: Params
    unused_w: jax.Array
    orders: jax.Array
    hparams: HParams
    keys: jax.Array
    data: Dataset


def inputs(
    layout: Layout,
    params: Params,
    orders: np.ndarray,
    hparams: dict[str, np.ndarray],
    data: DeviceData,
    keys: np.ndarray,
) -> Inputs:
    """Global arrays for a program from host arrays: ``params`` per seed [padded_seeds, ...],
    ``orders`` [padded_seeds, epochs, steps, batch], ``hparams`` {name: [n_cells]} (padded
    here), ``keys``
    [padded_seeds, 2] uint32 (each seed's calibration key data)."""
    mesh = layout.mesh
    pad = lambda a: np.concatenate([a, np.repeat(a[-1:], layout.padded_cells - a.size)])  # noqa: E731
    hparams = {k: pad(np.asarray(v, np.float32)) for k, v in hparams.items()}
    by_seed = NamedSharding(mesh, P("seeds"))
    w = params[0]["w"]
    used = [{**params[0], "w": w[:, data.pixels.used]}, *params[1:]]
    put = lambda a: _global(np.asarray(a, np.float32), by_seed)  # noqa: E731
    return Inputs(
        params=jax.tree.map(put, used),
        unused_w=put(w[:, data.pixels.unused]),
        orders=_global(
            np.ascontiguousarray(np.moveaxis(orders, 0, 2)),
            NamedSharding(mesh, P(None, None, "seeds")),
        ),
        hparams={k: _global(v, NamedSharding(mesh, P("cells"))) for k, v in hparams.items()},
        keys=_global(np.asarray(keys, np.uint32), by_seed),
        data=data.data,
    )


def _state_specs(axes: Any) -> Any:
    """shard_map specs of a group state from its cell axes: the seed axis first, the
    cell axis after ``a`` more axes (none for a leaf shared by a seed's cells)."""

    def spec(a: int | None) -> P:
        return P("seeds") if a is None else P("seeds", *[None] * a, "cells")

    return jax.tree.map(spec, axes, is_leaf=lambda a: a is None)


class Program(NamedTuple):
    """One shape's compiled epoch program, its scores program and the global shapes of its
    state.

    ``compiled(state, *inputs, epoch, final_now) -> (state, metrics, final, logits, params)``
    runs epoch ``epoch``: at epoch 0 it first initialises the state from the inputs' params
    (the state passed in is then only a placeholder of the right shapes); when ``final_now``
    (the last epoch; for successive halving, each rung) ``final`` holds the final metrics that
    need the network, ``logits`` the members' ``Logits`` ([seeds, cells, n] each) and
    ``params`` all of every member's parameters, zeros otherwise. ``state`` is donated.
    ``scores(logits, keys, labels)`` measures the rest (``scores_program``; ``scores`` below).
    """

    spec: Spec
    layout: Layout
    compiled: Any
    scores: Any
    state_shapes: Any


def compiler_options(mesh: Mesh) -> dict[str, Any]:
    """The compile options of a program on ``mesh``: deepmle's XLA:CPU choices on a CPU
    (``runtime.cpu_compiler_options``), none elsewhere."""
    return runtime.cpu_compiler_options() if mesh.devices.flat[0].platform == "cpu" else {}


def compile_program(
    spec: Spec,
    layout: Layout,
    args: Inputs,
    pixels: Pixels,
    chunk_bytes: int = CHUNK_BYTES,
    scores_programs: dict[Any, Any] | None = None,
) -> Program:
    """Trace, lower and compile the epoch program of ``spec`` for ``args``'s shapes; each
    device trains its seeds in chunks whose weights fit in ``chunk_bytes``. Its scores program
    is taken from ``scores_programs`` (keyed by ``scores_program``'s arguments) where another
    shape compiled it, else compiled and put there."""
    mesh = layout.mesh
    shape = dict(mesh.shape)
    chunk = seeds_per_chunk(spec, len(pixels.used), layout.padded_seeds // shape["seeds"],
                            layout.padded_cells // shape["cells"], chunk_bytes)  # fmt: skip
    state_specs = _state_specs(_state_axes(spec, args.data))
    params_specs = [
        {
            "w": P("seeds", None, "cells") if i == 0 else P("seeds", "cells"),
            "b": P("seeds", "cells"),
        }
        for i in range(len(spec.layer_sizes) - 1)
    ]
    by_seed, seeds_cells = P("seeds"), P("seeds", "cells")
    by_cell = {k: P("cells") for k in args.hparams}
    in_specs = (state_specs, by_seed, by_seed, P(None, None, "seeds"), by_cell, by_seed, P(),
                P(), P())  # fmt: skip
    out_specs = (state_specs, seeds_cells, seeds_cells, seeds_cells, params_specs)
    # check_vma off: at epoch 0 the state comes from init, identical across the "cells" mesh
    # axis, and the cond's two branches then differ in which mesh axes they vary over.
    fn = jax.shard_map(_epoch_program(spec, pixels, chunk), mesh=mesh, in_specs=in_specs,
                       out_specs=out_specs, check_vma=False)  # fmt: skip
    members = group(spec)
    n_seeds = args.params[0]["w"].shape[0]
    hp = {k: jax.ShapeDtypeStruct((n_seeds, v.shape[0]), v.dtype) for k, v in args.hparams.items()}
    shapes = GroupState(
        jax.eval_shape(members.init, hp, args.params, Shared(args.data, _EPOCH)),
        jax.eval_shape(members.start_lls, args.params, args.data),
    )
    state = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=NamedSharding(mesh, s)),
        shapes, state_specs,
    )  # fmt: skip
    jitted = jax.jit(fn, donate_argnums=0, compiler_options=compiler_options(mesh))
    compiled = jitted.lower(state, *args, np.int32(0), np.bool_(False)).compile()
    abstract = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)  # noqa: E731
    logits, keys = jax.tree.map(abstract, (compiled.out_info[3], args.keys))
    labels = jax.tree.map(abstract, _labels(args.data))
    key = (spec.calibrate, logits, keys, labels)
    scores_programs = {} if scores_programs is None else scores_programs
    if key not in scores_programs:
        scores_programs[key] = scores_program(*key)
    return Program(spec, layout, compiled, scores_programs[key], state)


def _labels(data: Dataset) -> Labels:
    return Labels(data.test.y, data.validation.y)


def scores_program(
    calibrate: bool, logits: Logits, keys: jax.ShapeDtypeStruct, labels: Labels
) -> Any:
    """``final_scores`` of a group's members [seeds, cells] (vmapped as ``group`` does: cells
    inside, seeds outside; ``shard_map`` over the logits' mesh), compiled for the global
    shapes and shardings given (``jax.ShapeDtypeStruct``s): ``(logits [seeds, cells, n] each,
    keys [seeds, 2], labels) -> {name: [seeds, cells]}``. It sees no network, so every shape
    of a sweep whose members and splits are alike can share one (``compile_program``)."""
    mesh = logits.test.sharding.mesh
    f = partial(final_scores, calibrate)
    over_members = jax.vmap(jax.vmap(f, (0, None, None)), (0, 0, None))
    # check_vma off, as in the epoch program where this code ran before: the temperature fit's
    # bisection starts from bounds that no mesh axis varies, and its carry then varies over both.
    fn = jax.shard_map(over_members, mesh=mesh, in_specs=(P("seeds", "cells"), P("seeds"), P()),
                       out_specs=P("seeds", "cells"), check_vma=False)  # fmt: skip
    jitted = jax.jit(fn, compiler_options=compiler_options(mesh))
    return jitted.lower(logits, keys, labels).compile()


def scores(program: Program, logits: Logits, args: Inputs) -> Metrics:
    """The final metrics of the members' ``logits`` alone (``final_scores``): {name: [seeds,
    cells]}, from ``program``'s shared scores program, with ``args``'s keys and labels."""
    return program.scores(logits, args.keys, _labels(args.data))


def placeholder_state(program: Program) -> Any:
    """Zeros of the state's global shapes, for epoch 0 (which initialises the real state)."""
    return jax.tree.map(
        lambda s: _global(np.zeros(s.shape, s.dtype), s.sharding), program.state_shapes
    )


def to_host(tree: Any) -> Any:
    """Global arrays to host numpy (all processes' shards)."""
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


class GroupArrays(NamedTuple):
    """One shape's members on the host, member axes first: params [seeds, cells, ...], curves
    {name: [seeds, cells, epochs]}, final {name: [seeds, cells]}."""

    params: Params
    curves: dict[str, np.ndarray]
    final: dict[str, np.ndarray]


def group_arrays(
    layout: Layout, params: Params, curves: list[Metrics], final: Metrics
) -> GroupArrays:
    """Host arrays of a finished shape, padding dropped, member axes first: ``params`` as the
    program returns them (the first layer's w [seeds, 784, cells, h], the rest [seeds, cells,
    ...]), ``curves`` one dict of [seeds, cells] per epoch."""
    s, c = layout.n_seeds, layout.n_cells
    member_params = [
        {
            "w": np.moveaxis(layer["w"], 2, 1)[:s, :c] if i == 0 else layer["w"][:s, :c],
            "b": layer["b"][:s, :c],
        }
        for i, layer in enumerate(params)
    ]
    return GroupArrays(
        params=member_params,
        curves={k: np.stack([c[k] for c in curves], axis=-1)[:s, :c] for k in curves[0]},
        final={k: v[:s, :c] for k, v in final.items()},
    )


def estimate_bytes(spec: Spec, layout: Layout, n_data_floats: int) -> int:
    """About one device's memory for the program, in bytes: every member's parameters five
    times over (params, the epoch's start, gradients, optimizer state up to Adam's two
    moments), the evaluation over the whole training split (about EVAL_FLOATS per example
    per member, as XLA's memory analysis shows), each seed's examples' initial LLs and
    minibatch orders, and the replicated data."""
    sizes = spec.layer_sizes
    weights = sum(a * b + b for a, b in itertools.pairwise(sizes))
    seeds = layout.padded_seeds // dict(layout.mesh.shape)["seeds"]
    per_seed = spec.n_train + spec.epochs * spec.steps_per_epoch * spec.batch_size
    per_member = 5 * weights + EVAL_FLOATS * spec.n_train
    return 4 * (layout.members_per_device * per_member + seeds * per_seed + n_data_floats)


EVAL_FLOATS = 8
"""Floats per training example per member that evaluating a population on the training split
holds at once: the measured temporary memory of the epoch program (compiled.memory_analysis,
h8 and logistic regression, 2,000 members: 750 MB) over n_train x members."""
