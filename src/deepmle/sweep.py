"""Run a config's grid: for each network shape, ONE compiled program trains all its
(seed × learning rate) members, with the seed axis sharded over every device of every host.

Each finished shape ("group") is saved at once, atomically, under ``RUN_DIR/groups/``; a
re-run of the same config into the same directory skips the groups already there.
"""

import functools
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from deepmle import config as config_lib
from deepmle import results
from deepmle.data import Dataset
from deepmle.errors import UserError
from deepmle.progress import Progress
from deepmle.runtime import CompileLog
from deepmle.train import (
    Data,
    Spec,
    TrainState,
    group_program,
    seed_keys,
    spec_from_config,
)


class RunDirError(UserError):
    """A run directory that would be overwritten, or that holds another config."""


class GroupResult(NamedTuple):
    """One shape's members: arrays with leading axes [seeds, lrs] (curves: [epochs, seeds, lrs])."""

    hidden: tuple[int, ...]
    seeds: np.ndarray
    learning_rates: np.ndarray
    params: list[dict[str, np.ndarray]]
    final: dict[str, np.ndarray]
    curves: dict[str, np.ndarray]
    info: dict[str, Any]


def group_name(hidden: tuple[int, ...]) -> str:
    """'h32' for one hidden layer of 32, 'h64-32' for two."""
    return "h" + "-".join(str(w) for w in hidden)


def group_hash(config: config_lib.Config, hidden: tuple[int, ...]) -> str:
    """Identity of a group's work: the resolved config restricted to this shape."""
    one = replace(config, model=replace(config.model, hidden_sizes=(hidden,)), name="")
    return hashlib.sha256(config_lib.to_toml(one).encode()).hexdigest()[:16]


def prepare_run_dir(config: config_lib.Config, run_dir: Path, overwrite: bool) -> bool:
    """Create or reuse ``run_dir``; True when it holds this same config (a resume).

    A directory holding another config, or files but no config, is refused unless
    ``overwrite``, so results are never replaced by accident.
    """
    wanted = config_lib.to_toml(config)
    existing = run_dir / "config.toml"
    if jax.process_index() != 0:
        return False
    if run_dir.exists() and any(run_dir.iterdir()):
        if existing.is_file() and existing.read_text() == wanted and not overwrite:
            return True
        if not overwrite:
            what = "a different config" if existing.is_file() else "other files"
            raise RunDirError(
                f"run directory {run_dir} holds {what}; pass --overwrite to replace it "
                "or --out to choose another"
            )
        shutil.rmtree(run_dir)
    results.atomic_write_text(existing, wanted)
    return False


def _mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("seeds",))


def _global(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from the same host array on every process (each keeps its own shards)."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def _to_host(tree: Any) -> Any:
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


class Programs(NamedTuple):
    """One shape's jitted programs, with the seed axis of state and metrics sharded over the
    mesh and data and learning rates replicated."""

    init: Callable
    epoch: Callable
    final: Callable


CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
"""On CPU the heavy work is Eigen's GEMMs, not LLVM-generated code: LLVM level 1 instead of
the default cut W's compile from 11.0 s to 8.0 s here with no measurable change per epoch
(h = 16, 32, 128). Not applied on other backends."""

CHUNK_BYTES = 2 * 2**20
"""Weights a chunk of seeds may hold: about one core's L2 cache. Measured on the 2-core CPU
(h=32, 512 members): chunks of 8 seeds ran at 120 GFLOP/s, all 128 seeds at once at 101,
because XLA:CPU's batched weight-gradient GEMM slows as its batch grows."""


def seeds_per_chunk(spec: Spec, n_seeds: int, n_lrs: int) -> int:
    """The largest divisor of n_seeds whose seeds' weights (all lrs) fit in CHUNK_BYTES; >= 1."""
    n_weights = sum(a * b for a, b in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:], strict=True))
    per_seed = 4 * n_weights * n_lrs
    fits = [c for c in range(1, n_seeds + 1) if n_seeds % c == 0 and c * per_seed <= CHUNK_BYTES]
    return max(fits, default=1)


@functools.cache
def compiled_program(spec: Spec, mesh: Mesh) -> Programs:
    """The jitted (init, epoch, final) of a shape, made once per process, Spec and mesh.

    Seeds and learning rates are array arguments, so new values (or a new sweep in the same
    process) reuse the compiled executables; only their counts are part of the shape.
    """
    program = group_program(spec)
    by_seed, replicated = NamedSharding(mesh, P("seeds")), NamedSharding(mesh, P())

    def init(seeds: jax.Array, lrs: jax.Array) -> TrainState:
        return program.init(seed_keys(seeds), lrs)

    def local_epoch(
        state: TrainState, seeds: jax.Array, lrs: jax.Array, data: Data, e: jax.Array
    ) -> tuple[TrainState, dict]:
        def one(chunk_state: TrainState, chunk_seeds: jax.Array) -> tuple[TrainState, dict]:
            return program.epoch(chunk_state, seed_keys(chunk_seeds), lrs, data, e)

        return _by_chunks(spec, one, state, seeds)

    def local_final(state: TrainState, data: Data) -> dict:
        return _by_chunks(spec, lambda chunk_state: program.final(chunk_state, data), state)

    by_device = lambda f, in_specs: jax.shard_map(  # noqa: E731
        f, mesh=mesh, in_specs=in_specs, out_specs=P("seeds")
    )
    options = CPU_COMPILER_OPTIONS if mesh.devices.flat[0].platform == "cpu" else {}
    return Programs(
        init=jax.jit(
            init,
            in_shardings=(by_seed, replicated),
            out_shardings=by_seed,
            compiler_options=options,
        ),
        epoch=jax.jit(
            by_device(local_epoch, (P("seeds"), P("seeds"), P(), P(), P())),
            in_shardings=(by_seed, by_seed, replicated, replicated, replicated),
            out_shardings=by_seed,
            donate_argnums=0,
            compiler_options=options,
        ),
        final=jax.jit(
            by_device(local_final, (P("seeds"), P())),
            in_shardings=(by_seed, replicated),
            out_shardings=by_seed,
            compiler_options=options,
        ),
    )


def _by_chunks(spec: Spec, fn: Callable, state: TrainState, *seeded: jax.Array) -> Any:
    """``fn(state, *seeded)`` on one device's seeds [s_local], a chunk of seeds at a time
    (a ``lax.map``; see seeds_per_chunk); every argument has the seed axis first."""
    n, n_lrs = state.diverged_epoch.shape
    chunk = seeds_per_chunk(spec, n, n_lrs)
    split = lambda a: a.reshape(n // chunk, chunk, *a.shape[1:])  # noqa: E731
    merge = lambda a: a.reshape(n, *a.shape[2:])  # noqa: E731
    out = jax.lax.map(lambda args: fn(*args), jax.tree.map(split, (state, *seeded)))
    return jax.tree.map(merge, out)


def _members(n_seeds: int, learning_rates: np.ndarray, mesh: Mesh) -> tuple[jax.Array, ...]:
    """(seeds, lrs) as global arrays: seeds padded to a multiple of the device count and
    sharded; learning rates replicated."""
    padded = math.ceil(n_seeds / mesh.devices.size) * mesh.devices.size
    return (
        _global(np.arange(padded, dtype=np.int32), NamedSharding(mesh, P("seeds"))),
        _global(np.asarray(learning_rates, np.float32), NamedSharding(mesh, P())),
    )


def compile_ahead(specs: list[Spec], n_seeds: int, learning_rates: np.ndarray, data: Data) -> None:
    """Compile every shape's programs before any training, so that compile and execution
    time are measured apart and each program compiles exactly once.

    Lowered with the very arrays training passes, so the calls that follow reuse them.
    (Compiling two shapes at once in threads did not help here: XLA:CPU's compile already
    keeps both cores busy.)
    """
    mesh = _mesh()
    seeds, lrs = _members(n_seeds, learning_rates, mesh)
    for spec in specs:
        init, epoch, final = compiled_program(spec, mesh)
        state = jax.eval_shape(init, seeds, lrs)
        init.lower(seeds, lrs).compile()
        epoch.lower(state, seeds, lrs, data, np.int32(0)).compile()
        final.lower(state, data).compile()


def train_shape(
    spec: Spec,
    data: Data,
    n_seeds: int,
    learning_rates: np.ndarray,
    progress: Progress,
) -> tuple[Any, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(params, final metrics, curves) of every member of one shape, on host, [seeds, lrs, ...].

    Seeds are padded to a multiple of the device count; the extra seeds train and are
    dropped (a seed's key does not depend on how many run beside it).
    """
    mesh = _mesh()
    seeds, lrs = _members(n_seeds, learning_rates, mesh)
    init, epoch, final = compiled_program(spec, mesh)

    state = init(seeds, lrs)
    curves = []
    for e in range(spec.epochs):
        state, metrics = epoch(state, seeds, lrs, data, np.int32(e))
        metrics = _to_host(metrics)
        curves.append(metrics)
        progress.epoch(e, spec.epochs, _mean_finite(metrics["train_ll"][:n_seeds]))
    final_metrics = _to_host(final(state, data))
    params = _to_host(state.params)
    drop = lambda a: np.asarray(a)[:n_seeds]  # noqa: E731
    stacked = {k: np.stack([c[k] for c in curves])[:, :n_seeds] for k in curves[0]}
    return jax.tree.map(drop, params), jax.tree.map(drop, final_metrics), stacked


def _mean_finite(a: np.ndarray) -> float:
    """Mean of the finite entries (diverged members are NaN in per-epoch LL); NaN if none."""
    finite = np.asarray(a)[np.isfinite(a)]
    return float(finite.mean()) if finite.size else float("nan")


def _save_group(run_dir: Path, g: GroupResult) -> None:
    arrays = {"seeds": g.seeds, "learning_rates": g.learning_rates}
    for i, layer in enumerate(g.params):
        arrays |= {f"params/layer{i}/{k}": v for k, v in layer.items()}
    arrays |= {f"final/{k}": v for k, v in g.final.items()}
    arrays |= {f"curves/{k}": v for k, v in g.curves.items()}
    name = group_name(g.hidden)
    results.write_npz(run_dir / "groups" / f"{name}.npz", arrays)
    results.write_json(run_dir / "groups" / f"{name}.json", g.info)  # last: marks completion


def load_group(run_dir: Path, hidden: tuple[int, ...]) -> GroupResult | None:
    """A finished group from ``run_dir``, or None if it is absent or unfinished."""
    name = group_name(hidden)
    info_path, npz_path = run_dir / "groups" / f"{name}.json", run_dir / "groups" / f"{name}.npz"
    if not info_path.is_file() or not npz_path.is_file():
        return None

    info = json.loads(info_path.read_text())
    a = results.read_npz(npz_path)
    n_layers = len(hidden) + 1
    return GroupResult(
        hidden=hidden,
        seeds=a["seeds"],
        learning_rates=a["learning_rates"],
        params=[{k: a[f"params/layer{i}/{k}"] for k in ("w", "b")} for i in range(n_layers)],
        final={k.split("/", 1)[1]: v for k, v in a.items() if k.startswith("final/")},
        curves={k.split("/", 1)[1]: v for k, v in a.items() if k.startswith("curves/")},
        info=info,
    )


class Sweep(NamedTuple):
    """A run's groups, and what compiling them up front took (compiles, cache_hits,
    compile_s summed over threads, wall_s)."""

    groups: list[GroupResult]
    compile_ahead: dict[str, float]


def run(
    config: config_lib.Config,
    dataset: Dataset,
    run_dir: Path,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> Sweep:
    """Train every group of ``config`` into ``run_dir``, skipping finished ones."""
    progress = progress or Progress(quiet=True)
    run_dir = Path(run_dir)
    n_train = dataset.train.y.shape[0]
    specs = [spec_from_config(config, shape, n_train) for shape in config.shapes]
    prepare_run_dir(config, run_dir, overwrite)
    data = _replicated_data(dataset)
    lrs = np.asarray(config.train.learning_rate, np.float64)  # as written; float32 on device
    log = CompileLog.get()
    hiddens = config.model.hidden_sizes
    progress.begin(len(hiddens), config.train.epochs)
    finished = _finished_groups(config, run_dir)
    todo = [spec for spec, done in zip(specs, finished, strict=True) if done is None]
    before, t0 = log.snapshot(), time.perf_counter()
    compile_ahead(todo, config.train.seeds, lrs, data)
    ahead = {**log.since(before), "wall_s": time.perf_counter() - t0}
    if todo:
        progress.note(f"compiled {len(todo)} of {len(specs)} shapes in {ahead['wall_s']:.1f} s")
    out = []
    for i, (hidden, spec) in enumerate(zip(hiddens, specs, strict=True)):
        done = finished[i]
        if done is not None:
            progress.skip(i, len(hiddens), group_name(hidden), config.train.epochs)
            out.append(done)
            continue
        progress.group_start(i, len(hiddens), group_name(hidden))
        before, t0 = log.snapshot(), time.perf_counter()
        params, final, curves = train_shape(spec, data, config.train.seeds, lrs, progress)
        wall = time.perf_counter() - t0
        compiled = log.since(before)
        info = {
            "hash": group_hash(config, hidden),
            "hidden_sizes": list(hidden),
            "wall_s": wall,
            "compile_s": compiled["compile_s"],
            "train_s": wall - compiled["compile_s"],
            "compiles": compiled["compiles"],
            "cache_hits": compiled["cache_hits"],
            "devices": len(jax.devices()),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        g = GroupResult(hidden, np.arange(config.train.seeds), lrs, params, final, curves, info)
        if jax.process_index() == 0:
            _save_group(run_dir, g)
        progress.group_done(_mean_finite(final["train_ll"]), info["compile_s"], info["train_s"])
        out.append(g)
    return Sweep(out, ahead)


def _replicated_data(dataset: Dataset) -> Data:
    """The dataset's splits as float32 global arrays, replicated on every device, straight
    from the host arrays (in Data's order: train, validation, test; x then y)."""
    sharding = NamedSharding(_mesh(), P())
    return Data(*(_global(np.asarray(a, np.float32), sharding) for split in dataset for a in split))


def _finished_groups(config: config_lib.Config, run_dir: Path) -> list[GroupResult | None]:
    """Each group's saved result where it matches the config; process 0 decides for all, so
    every process of a multi-process run trains the same groups."""
    found = []
    for hidden in config.model.hidden_sizes:
        g = load_group(run_dir, hidden) if jax.process_index() == 0 else None
        found.append(
            g if g is not None and g.info.get("hash") == group_hash(config, hidden) else None
        )
    if jax.process_count() > 1:
        flags = multihost_utils.broadcast_one_to_all(np.array([g is not None for g in found]))
        found = [
            g if g is not None else (load_group(run_dir, h) if f else None)
            for g, f, h in zip(found, np.asarray(flags), config.model.hidden_sizes, strict=True)
        ]
    return found
