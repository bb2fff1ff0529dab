"""Run a config: the orchestration that ties the device layout and programs, the run store
and progress together. For each network shape ("group") one compiled program trains every
(seed × learning rate) member; each finished group is saved at once, so a re-run of the same
config resumes from the groups already there.
"""

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils

from deepmle import config as config_lib
from deepmle import data as data_lib
from deepmle import model, programs, randomness, report, runtime, store, train
from deepmle.data import Dataset
from deepmle.errors import UserError
from deepmle.progress import Progress
from deepmle.results import GroupResult, RunResults, group_name


class ProgramCache:
    """Compiled programs kept for the life of a process (a notebook running several sweeps):
    a shape whose spec, layout and argument shapes were compiled before is not compiled again."""

    def __init__(self) -> None:
        self._programs: dict[Any, programs.Program] = {}

    def get(
        self,
        spec: train.Spec,
        layout: programs.Layout,
        args: programs.Inputs,
        pixels: programs.Pixels,
        chunk_bytes: int,
    ) -> programs.Program:
        mesh = layout.mesh
        key = (
            spec,
            pixels.used.tobytes(),
            mesh.axis_names,
            tuple(d.id for d in mesh.devices.flat),
            mesh.devices.shape,
            (layout.padded_seeds, layout.padded_lrs, chunk_bytes),
            tuple((a.shape, str(a.dtype)) for a in jax.tree.leaves(args.data)),
        )
        if key not in self._programs:
            self._programs[key] = programs.compile_program(spec, layout, args, pixels, chunk_bytes)
        return self._programs[key]


def available_bytes() -> int:
    """Memory this machine can give a run: MemAvailable, or physical memory if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(
    specs: list[train.Spec], layout: programs.Layout, dataset: Dataset, limit: int | None
) -> None:
    """Refuse up front, with the estimate, a grid whose members cannot fit in memory (per device
    on accelerators; the devices of a CPU process share its memory)."""
    n_data = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(dataset))
    need = max(programs.estimate_bytes(spec, layout, n_data) for spec in specs)
    platform = layout.mesh.devices.flat[0].platform
    if platform == "cpu":
        need *= len(layout.mesh.local_devices)
        have = available_bytes() if limit is None else limit
    else:
        stats = layout.mesh.local_devices[0].memory_stats() or {}
        have = stats.get("bytes_limit", 0) if limit is None else limit
    if have and need > have:
        raise UserError(
            f"{layout.n_seeds} seeds x {layout.n_lrs} learning rates need ~{need / 1e9:.1f} GB "
            f"of memory, more than the {have / 1e9:.1f} GB available; run fewer seeds or shapes"
        )


def _host_draws(spec: train.Spec, layout: programs.Layout) -> tuple[list, np.ndarray, np.ndarray]:
    """Initial params per seed [padded_seeds, ...], orders [padded_seeds, epochs, steps,
    batch] and calibration key data [padded_seeds, 2] from each seed's numpy streams
    (deepmle.randomness)."""
    seeds = range(layout.padded_seeds)
    per_seed = [model.from_normals(randomness.init_normals(s, spec.layer_sizes)) for s in seeds]
    params = jax.tree.map(lambda *a: np.stack(a), *per_seed)
    orders = np.stack(
        [randomness.epoch_orders(s, spec.n_train, spec.batch_size, spec.epochs) for s in seeds]
    )
    keys = np.stack([randomness.calibration_key(s) for s in seeds])
    return params, orders, keys


def _prepare(
    spec: train.Spec,
    layout: programs.Layout,
    lrs: np.ndarray,
    data: programs.DeviceData,
    cache: ProgramCache,
    chunk_bytes: int,
) -> tuple[programs.Program, programs.Inputs, float]:
    """A shape's host draws, its inputs on the devices and its compiled program; the seconds
    that took (mostly compiling)."""
    t0 = time.perf_counter()
    params, orders, keys = _host_draws(spec, layout)
    args = programs.inputs(layout, params, orders, lrs, data, keys)
    program = cache.get(spec, layout, args, data.pixels, chunk_bytes)
    return program, args, time.perf_counter() - t0


class _Ahead:
    """Each shape's program and inputs, in training order. On an accelerator the next shape's
    are prepared in a background thread while this one trains; on CPU, compiling and training
    compete for the same cores (measured: no gain), so each is prepared when its turn comes."""

    def __init__(
        self, specs: list[train.Spec], prepare: Callable[[train.Spec], Any], background: bool
    ) -> None:
        self.specs, self.prepare = specs, prepare
        self.pool = ThreadPoolExecutor(1, "deepmle-compile") if background else None
        self.jobs: dict[int, Any] = {}

    def __enter__(self) -> "_Ahead":
        return self

    def get(self, spec: train.Spec) -> tuple[programs.Program, programs.Inputs, float]:
        """``spec``'s (program, inputs, seconds it took); starts preparing the next one."""
        i = self.specs.index(spec)
        job = self.jobs.pop(i, None)
        out = job.result() if job is not None else self.prepare(spec)
        if self.pool is not None and i + 1 < len(self.specs):
            self.jobs[i + 1] = self.pool.submit(self.prepare, self.specs[i + 1])
        return out

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


def _train_shape(
    config: config_lib.Config,
    hidden: tuple[int, ...],
    spec: train.Spec,
    lrs: np.ndarray,
    ahead: _Ahead,
    progress: Progress,
    interrupts: runtime.Interrupts,
) -> GroupResult:
    """Every member of one shape, trained: its GroupResult, with timings in ``info``."""
    t0 = time.perf_counter()
    program, args, prepare_s = ahead.get(spec)
    t1 = time.perf_counter()
    arrays = _train_group(program, args, partial(progress.epoch, epochs=spec.epochs), interrupts)
    t2 = time.perf_counter()
    info = {
        "wall_s": t2 - t0,
        "prepare_s": prepare_s,
        "compile_wait_s": t1 - t0,
        "train_s": t2 - t1,
        "layout": program.layout.describe(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    seeds = np.arange(config.train.seeds)
    return GroupResult(hidden, seeds, lrs, arrays.params, arrays.final, arrays.curves, info)


def _train_group(
    program: programs.Program,
    args: programs.Inputs,
    on_epoch: Callable[[int, float], None],
    interrupts: runtime.Interrupts,
) -> programs.GroupArrays:
    """Run a shape's program epoch by epoch. Epoch e+1 is dispatched before epoch e's metrics
    are read back for progress, so the device never waits for the host."""
    epochs = program.spec.epochs
    state, curves, final = programs.placeholder_state(program), [], None
    pending = None
    for e in range(epochs + 1):
        if e < epochs:
            state, metrics, final, params = program.compiled(state, *args, np.int32(e))
        if pending is not None:
            _wait(pending, interrupts)
            host = programs.to_host(pending)
            curves.append(host)
            real = host["train_ll"][: program.layout.n_seeds, : program.layout.n_lrs]
            on_epoch(e - 1, _finite_mean(real))
        pending = metrics if e < epochs else None
    _wait(final, interrupts)
    params, final = programs.to_host((params, final))
    return programs.group_arrays(program.layout, params, curves, final)


def _finite_mean(values: np.ndarray) -> float:
    """Mean of the finite entries (frozen members report NaN); NaN if there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _wait(outputs: Any, interrupts: runtime.Interrupts) -> None:
    """Wait for a running program in small sleeps, so that Ctrl-C is heard at once."""
    leaves = jax.tree.leaves(outputs)
    while not all(a.is_ready() for a in leaves):
        interrupts.check()
        time.sleep(0.02)
    interrupts.check()


def _finished(
    config: config_lib.Config, run: store.RunDir | None, data_sha256: str, progress: Progress
) -> tuple[list[GroupResult | None], list[bool]]:
    """Each group's verified saved result (on process 0; None elsewhere) and whether it is
    done. Process 0 decides for all, so every process of a multi-process run trains the same
    groups without reading the run directory. Unusable group files are set aside, reported."""
    found: list[GroupResult | None] = []
    for hidden in config.model.hidden_sizes:
        g = None
        if run is not None and run.resumed:
            g, problem = store.read_group(run.work, config, hidden, data_sha256)
            if g is None and problem != "is not saved":
                moved = store.reject_group(run, group_name(hidden))
                progress.warn(
                    f"group {group_name(hidden)} {problem}: not used, trained again"
                    + (f" (kept as {', '.join(moved)})" if moved else "")
                )
        found.append(g)
    done = np.array([g is not None for g in found])
    if jax.process_count() > 1:
        done = np.asarray(multihost_utils.broadcast_one_to_all(done))
    return found, [bool(d) for d in done]


class Outcome(NamedTuple):
    """What ``run`` returns: the results as ``load_run`` would read them (on processes other
    than 0, the groups trained in this run only), and notes for the user."""

    results: RunResults
    notes: list[str]


def run(
    config: config_lib.Config,
    dataset: Dataset,
    run_dir: str | Path,
    *,
    progress: Progress | None = None,
    overwrite: bool = False,
    cache: ProgramCache | None = None,
    memory_limit: int | None = None,
    chunk_bytes: int = programs.CHUNK_BYTES,
    extra_meta: dict[str, Any] | None = None,
    finishing: Callable[[RunResults], None] | None = None,
) -> Outcome:
    """Train every group of ``config`` into ``run_dir`` (resuming finished groups), write the
    run's files, and return its results. Process 0 alone writes the run directory;
    ``finishing(results)`` adds files to it (figures) before it is complete."""
    t_start = time.perf_counter()
    progress = progress or Progress(quiet=True)
    cache = cache or ProgramCache()
    lead = jax.process_index() == 0
    n_train = dataset.train.y.shape[0]
    specs = [train.spec_from_config(config, shape, n_train) for shape in config.shapes]
    lrs = np.asarray(config.train.learning_rate, np.float64)
    layout = programs.plan(config.train.seeds, len(lrs))
    check_memory(specs, layout, dataset, memory_limit)

    run = store.open_run(Path(run_dir), config, overwrite) if lead else None
    with runtime.Interrupts() as interrupts:
        try:
            if run is not None:
                store.write_config(run, config)
            data_sha256 = data_lib.sha256(dataset)
            finished, done = _finished(config, run, data_sha256, progress)
            compact = all(spec.optimizer.zero_gradient_keeps_weight for spec in specs)
            data = programs.device_data(
                dataset, layout.mesh, programs.split_pixels(dataset, compact=compact)
            )
            log = runtime.CompileLog.get()
            before = log.snapshot()
            hiddens = config.model.hidden_sizes
            progress.begin(len(hiddens), config.train.epochs)
            groups, trained = [], []
            todo = [specs[i] for i, d in enumerate(done) if not d]
            prepare = partial(_prepare, layout=layout, lrs=lrs, data=data, cache=cache,
                              chunk_bytes=chunk_bytes)  # fmt: skip
            background = layout.mesh.devices.flat[0].platform != "cpu"
            with _Ahead(todo, prepare, background) as ahead:
                for i, (hidden, spec) in enumerate(zip(hiddens, specs, strict=True)):
                    if done[i]:
                        progress.skip(i, len(hiddens), group_name(hidden), config.train.epochs)
                        if finished[i] is not None:  # process 0 holds the saved results
                            groups.append(finished[i])
                        continue
                    progress.group_start(i, len(hiddens), group_name(hidden))
                    g = _train_shape(config, hidden, spec, lrs, ahead, progress, interrupts)
                    if run is not None:
                        store.save_group(run, config, g, data_sha256)
                    healthy = np.where(g.final["diverged_epoch"] < 0, g.final["train_ll"], np.nan)
                    progress.group_done(
                        _finite_mean(healthy), g.info["compile_wait_s"], g.info["train_s"]
                    )
                    groups.append(g)
                    trained.append(g.info)
            meta = {
                **runtime.environment(),
                **(extra_meta or {}),
                "run_dir": str(Path(run_dir)),
                "data": {
                    "sha256": data_sha256,
                    "path": os.path.abspath(config.data.path) if config.data.path else "",
                },
                "layout": layout.describe(),
                "wall_s": time.perf_counter() - t_start,
                "prepare_s": sum(info["prepare_s"] for info in trained),
                "compile_wait_s": sum(info["compile_wait_s"] for info in trained),
                "train_s": sum(info["train_s"] for info in trained),
                **log.since(before),
                "groups": {g.name: g.info for g in groups},
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            notes = []
            if run is not None:
                summary = report.write(run, groups, meta)
                if finishing is not None:  # figures and other extras, before a replacement swaps in
                    finishing(RunResults(run.work, config, groups, summary, meta))
                notes = run.finish()
                final_dir = run.path
            else:
                summary = report.summary_rows(groups)
                final_dir = Path(run_dir)
        finally:
            progress.close()
            if run is not None:
                run.release()
    return Outcome(RunResults(final_dir, config, groups, summary, meta), notes)
