"""Training one network shape's population: its host draws, compiled program and inputs
(prepared ahead on accelerators), the program run epoch by epoch with progress, and the
memory check that refuses a grid too large up front."""

import os
import resource
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from typing import Any

import jax
import numpy as np

from deepmle import runtime
from deepmle.core.member import Spec
from deepmle.core.model import from_normals
from deepmle.core.types import Dataset
from deepmle.errors import UserError
from deepmle.population import loop, programs, randomness
from deepmle.progress import Progress


class ProgramCache:
    """Compiled programs kept for the life of a process (a notebook running several sweeps):
    a shape whose spec, layout, argument shapes and compile options were compiled before is
    not compiled again, and shapes share their scores program where their logits are alike
    (deepmle.population.programs). ``deepmle.sweep.run`` uses the process's one,
    ``PROCESS_CACHE``, unless given another."""

    def __init__(self) -> None:
        self._programs: dict[Any, programs.Program] = {}
        self._scores: dict[Any, Any] = {}

    def get(
        self,
        spec: Spec,
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
            (layout.padded_seeds, layout.padded_cells, chunk_bytes),
            tuple((a.shape, str(a.dtype)) for a in jax.tree.leaves(args.data)),
            tuple(sorted(programs.compiler_options(mesh).items())),
        )
        if key not in self._programs:
            self._programs[key] = programs.compile_program(
                spec, layout, args, pixels, chunk_bytes, self._scores
            )
        return self._programs[key]


PROCESS_CACHE = ProgramCache()


def _read_kib(path: str, key: str) -> int | None:
    """``key``'s value in bytes from a /proc file of "Key:  N kB" lines; None if absent."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_left() -> int | None:
    """What the process's cgroup memory limit leaves above its usage (v2 memory.max, v1
    memory.limit_in_bytes; the cgroup's own folder, or the mount's root inside a container);
    None if there is no limit."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = [ln.strip().split(":", 2) for ln in f]
    except OSError:
        return None
    for _, controllers, rel in lines:
        if controllers == "":
            mount, files = "/sys/fs/cgroup", ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            mount, files = (
                "/sys/fs/cgroup/memory",
                ("memory.limit_in_bytes", "memory.usage_in_bytes"),
            )
        else:
            continue
        for base in (os.path.join(mount, rel.lstrip("/")), mount):
            try:
                with open(os.path.join(base, files[0])) as f:
                    top = f.read().strip()
                with open(os.path.join(base, files[1])) as f:
                    used = int(f.read().strip())
            except (OSError, ValueError):
                continue
            if top != "max" and int(top) < 2**60:  # v1 writes "no limit" as about 2**63
                return max(int(top) - used, 0)
            break
    return None


def available_bytes() -> int:
    """Memory this process can still get: the least of MemAvailable (physical memory if
    unknown), what its address-space limit (ulimit -v, RLIMIT_AS) leaves above its present
    size, and what its cgroup's memory.max leaves (a container's or a Slurm job's limit)."""
    have = [
        _read_kib("/proc/meminfo", "MemAvailable")
        or os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    ]
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        have.append(max(soft - (_read_kib("/proc/self/status", "VmSize") or 0), 0))
    cgroup = _cgroup_left()
    if cgroup is not None:
        have.append(cgroup)
    return min(have)


def check_memory(
    specs: list[Spec], layout: programs.Layout, dataset: Dataset, limit: int | None
) -> None:
    """Refuse up front, with the estimate, a grid whose members cannot fit in memory (per device
    on accelerators; the devices of a CPU process share its memory). The advice names what
    to cut: epochs when one epoch's minibatch orders would fit, else the grid."""
    n_data = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(dataset))
    platform = layout.mesh.devices.flat[0].platform
    share = len(layout.mesh.local_devices) if platform == "cpu" else 1

    def need(specs: list[Spec]) -> int:
        return share * max(programs.estimate_bytes(spec, layout, n_data) for spec in specs)

    if platform == "cpu":
        have = available_bytes() if limit is None else limit
    else:
        stats = layout.mesh.local_devices[0].memory_stats() or {}
        have = stats.get("bytes_limit", 0) if limit is None else limit
    total = need(specs)
    if have and total > have:
        epochs = specs[0].epochs
        if need([spec._replace(epochs=1) for spec in specs]) <= have:
            advice = f"run fewer epochs (the {epochs} epochs' minibatch orders are most of it)"
        else:
            advice = "run fewer seeds, cells or shapes"
        raise UserError(
            f"{layout.n_seeds} seeds x {layout.n_cells} cells x {epochs} epochs need "
            f"~{total / 1e9:.1f} GB of memory, more than the {have / 1e9:.1f} GB available; "
            + advice
        )


def _host_draws(spec: Spec, layout: programs.Layout) -> tuple[list, np.ndarray, np.ndarray]:
    """Initial params per seed [padded_seeds, ...], orders [padded_seeds, epochs, steps,
    batch] and calibration key data [padded_seeds, 2] from each seed's numpy streams
    (deepmle.population.randomness); read-only, drawn once per shape and seed count (a
    search calls it for every call of every rung)."""
    return _draws(spec.layer_sizes, spec.n_train, spec.batch_size, spec.epochs,
                  layout.padded_seeds)  # fmt: skip


@lru_cache(maxsize=8)
def _draws(
    layer_sizes: tuple[int, ...], n_train: int, batch_size: int, epochs: int, n_seeds: int
) -> tuple[list, np.ndarray, np.ndarray]:
    seeds = range(n_seeds)
    per_seed = [from_normals(randomness.init_normals(s, layer_sizes)) for s in seeds]
    params = jax.tree.map(lambda *a: np.stack(a), *per_seed)
    orders = np.stack([randomness.epoch_orders(s, n_train, batch_size, epochs) for s in seeds])
    keys = np.stack([randomness.calibration_key(s) for s in seeds])
    for a in [*jax.tree.leaves(params), orders, keys]:
        a.flags.writeable = False
    return params, orders, keys


def prepare(
    spec: Spec,
    layout: programs.Layout,
    hparams: dict[str, np.ndarray],
    data: programs.DeviceData,
    cache: ProgramCache,
    chunk_bytes: int,
) -> tuple[programs.Program, programs.Inputs, float]:
    """A shape's host draws, its inputs on the devices and its compiled program; the seconds
    that took (mostly compiling)."""
    t0 = time.perf_counter()
    params, orders, keys = _host_draws(spec, layout)
    args = programs.inputs(layout, params, orders, hparams, data, keys)
    program = cache.get(spec, layout, args, data.pixels, chunk_bytes)
    return program, args, time.perf_counter() - t0


class Ahead:
    """Each shape's program and inputs, in training order. On an accelerator the next shape's
    are prepared in a background thread while this one trains; on CPU, compiling and training
    compete for the same cores (measured: no gain), so each is prepared when its turn comes."""

    def __init__(self, specs: list[Spec], prepare: Callable[[Spec], Any], background: bool) -> None:
        self.specs, self.prepare = specs, prepare
        self.pool = ThreadPoolExecutor(1, "deepmle-compile") if background else None
        self.jobs: dict[int, Any] = {}

    def __enter__(self) -> "Ahead":
        return self

    def get(self, spec: Spec) -> tuple[programs.Program, programs.Inputs, float]:
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


def train_shape(
    spec: Spec,
    ahead: Ahead,
    progress: Progress,
    interrupts: runtime.Interrupts,
    hparams: dict[str, np.ndarray],
    n_seeds: int,
) -> tuple[programs.GroupArrays, dict[str, Any]]:
    """Every member of one shape (its cells ``hparams`` {name: [cells]} x ``n_seeds``),
    trained to the last epoch by the one epoch loop (deepmle.population.loop) in one call per
    epoch, through the program ``ahead`` prepared: its host arrays, and timings for ``info``."""
    t0 = time.perf_counter()
    prepared: dict[str, float] = {}

    def prepare(_: Spec, layout: programs.Layout, hp: dict[str, np.ndarray]) -> tuple[Any, Any]:
        program, args, prepared["s"] = ahead.get(spec)
        return program, args

    env = loop.Env(prepare, partial(loop.wait, interrupts=interrupts), progress.epoch)
    n_cells = len(hparams["learning_rate"])
    _, arrays, seg = loop.train_cells(
        spec, env, None, hparams, n_seeds, 0, spec.epochs, capacity=n_cells, keep_state=False
    )
    info = {
        "wall_s": time.perf_counter() - t0,
        "prepare_s": prepared["s"],
        "compile_wait_s": seg["prepare_s"],
        "train_s": seg["train_s"],
        "layout": seg["layout"],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return arrays, info
