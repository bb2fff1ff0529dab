"""Process-wide JAX setup: XLA:CPU flags, the persistent compilation cache, multi-host
initialisation, a log of compiles, Ctrl-C handling and the environment a run records.

Who calls what: the command line (deepmle.cli) alone sets the process-wide state (XLA flags,
the compilation cache, distributed initialisation); deepmle.population.programs reads
``cpu_compiler_options`` for each program it compiles; deepmle.sweep and
deepmle.population.groups use ``Interrupts``, ``CompileLog`` and ``environment``. A library
user who never calls the setup functions gets JAX's defaults."""

import functools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from deepmle.errors import UserError

EIGEN_DOTS_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
"""Route XLA:CPU dots to its Eigen kernels instead of YNNPACK fusions (faster for these
shapes: docs/speed.md)."""
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


class CpuChoice(NamedTuple):
    """One XLA:CPU speed choice: an ``XLA_FLAGS`` entry (set before JAX starts) or a compile
    option (given to each compiled program). Applied only where the installed jaxlib knows
    it (probed) and not in ``skip_on``, the jaxlib versions (``major.minor``) on which it was
    measured not to pay; ``DEEPMLE_CPU_OFF=name,...`` leaves choices out (the benchmark's
    ablation), ``DEEPMLE_CPU_ON=name,...`` takes in one that is off by default."""

    name: str
    flag: str | None = None
    option: tuple[str, Any] | None = None
    skip_on: tuple[str, ...] = ()
    default: bool = True


CPU_CHOICES = (
    CpuChoice("eigen_dots", flag=EIGEN_DOTS_FLAG),
    # Off: with Eigen dots, two CPU devices computed the test split's logits inside the epoch
    # program wrongly on the first device for some shapes (784-64-1 x 8 seeds x 5 lrs, 7 v 9:
    # test accuracy up to 2 points low; training and validation bitwise right), jax 0.10.2.
    # One device gives the same parameters bitwise and the right test metrics (docs/speed.md).
    CpuChoice("device_per_core", flag=DEVICE_COUNT_FLAG, default=False),
    CpuChoice("llvm_level_1", option=("xla_backend_optimization_level", 1)),
    CpuChoice("loop_emitters", option=("xla_cpu_use_fusion_emitters", False)),
)
"""docs/speed.md gives what each bought, per jax version."""


def cpu_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def jaxlib_version() -> str:
    """The installed jaxlib's version, read without importing JAX."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxlib")
    except PackageNotFoundError:
        return "unknown"


def _wanted() -> list[CpuChoice]:
    """The choices meant for this jaxlib and not switched off by ``DEEPMLE_CPU_OFF``."""
    minor = ".".join(jaxlib_version().split(".")[:2])
    off = {n.strip() for n in os.environ.get("DEEPMLE_CPU_OFF", "").split(",")}
    on = {n.strip() for n in os.environ.get("DEEPMLE_CPU_ON", "").split(",")}
    return [
        c
        for c in CPU_CHOICES
        if minor not in c.skip_on and c.name not in off and (c.default or c.name in on)
    ]


def _flag_value(choice: CpuChoice) -> str:
    assert choice.flag is not None
    return f"{DEVICE_COUNT_FLAG}={cpu_cores()}" if choice.flag == DEVICE_COUNT_FLAG else choice.flag


def _flags_start(flags: list[str]) -> bool:
    """Whether a CPU JAX starts with ``flags`` in XLA_FLAGS (an unknown flag aborts it)."""
    env = {**os.environ, "XLA_FLAGS": " ".join(flags), "JAX_PLATFORMS": "cpu"}
    code = "import jax; jax.devices()"
    try:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              timeout=120).returncode == 0  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False


def supported_flags(flags: list[str], record: Path | None = None) -> dict[str, bool]:
    """Which of ``flags`` the installed jaxlib accepts in XLA_FLAGS, probed in a subprocess
    (XLA aborts the whole process on an unknown flag) and remembered per jaxlib version in
    ``record`` (a JSON file; None: probe every time)."""
    key = f"jaxlib {jaxlib_version()}"
    known: dict[str, dict[str, bool]] = {}
    if record is not None:
        try:
            known = json.loads(Path(record).read_text())
        except (OSError, ValueError):
            known = {}
        if not isinstance(known, dict) or not isinstance(known.get(key, {}), dict):
            known = {}
    seen = known.get(key, {})
    todo = [f for f in flags if not isinstance(seen.get(f), bool)]
    if todo:
        together = _flags_start(todo)
        seen = {**seen, **{f: together or _flags_start([f]) for f in todo}}
        if record is not None:
            try:
                Path(record).parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile("w", dir=Path(record).parent, delete=False,
                                                 suffix=".tmp") as f:  # fmt: skip
                    json.dump({**known, key: seen}, f, indent=1)
                os.replace(f.name, record)
            except OSError:
                pass  # an unwritable cache only means probing again next time
    return {f: seen[f] for f in flags}


def set_cpu_flags(record: Path | None = None) -> dict[str, list[str]]:
    """Before JAX starts: the XLA_FLAGS of CPU_CHOICES, each unless XLA_FLAGS already names
    it and only if the installed jaxlib accepts it (``supported_flags``; ``record`` keeps the
    answer): Eigen's dot kernels; one CPU device per core only with
    ``DEEPMLE_CPU_ON=device_per_core`` (off by default: CPU_CHOICES says why). Accelerator
    platforms ignore both. Returns {"applied": [...], "unsupported": [...]} for meta.json."""
    flags = os.environ.get("XLA_FLAGS", "")
    wanted = [
        _flag_value(c)
        for c in _wanted()
        if c.flag is not None and c.flag.split("=")[0].lstrip("-") not in flags
    ]
    ok = supported_flags(wanted, record) if wanted else {}
    applied = [f for f in wanted if ok[f]]
    os.environ["XLA_FLAGS"] = " ".join([flags, *applied]).strip()
    return {"applied": applied, "unsupported": [f for f in wanted if not ok[f]]}


_probing = threading.local()


@functools.cache
def cpu_compiler_options() -> dict[str, Any]:
    """The compile options of CPU_CHOICES that the installed jaxlib accepts (each probed once
    per process on a one-line program; an unknown option fails every compile)."""
    options = {}
    _probing.on = True  # these compiles are not the run's: CompileLog leaves them out
    try:
        for c in _wanted():
            if c.option is None:
                continue
            key, value = c.option
            try:
                jax.jit(lambda x: x + 1, compiler_options={key: value}).lower(
                    jax.ShapeDtypeStruct((), jnp.float32)
                ).compile()
            except Exception:  # jaxlib raises JaxRuntimeError (or ValueError) when it lacks one
                continue
            options[key] = value
    finally:
        _probing.on = False
    return options


def cpu_tuning() -> dict[str, Any]:
    """What meta.json records: the XLA flags and compile options deepmle applied here, and
    the ones it wanted but the installed jaxlib lacks."""
    wanted = {c.option[0]: c.option[1] for c in _wanted() if c.option is not None}
    applied = cpu_compiler_options()
    return {
        "jaxlib": jaxlib_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compiler_options": applied,
        "compiler_options_unsupported": sorted(set(wanted) - set(applied)),
        "off": os.environ.get("DEEPMLE_CPU_OFF", ""),
    }


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deepmle" / "jax"


def enable_compilation_cache(path: Path) -> None:
    """Keep compiled programs on disk at ``path`` so that a re-run of a shape compiles nothing.
    UserError, one line, if the directory cannot be used."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(20, "exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(
            f"cache directory {path}: {e.strerror or e}; choose another with --cache-dir, "
            "or run with --no-cache"
        ) from None
    # A write the OS refuses (a full disk, a file-size limit) only loses the cache entry: the
    # run goes on, and the one line the user reads is about deepmle's own files.
    warnings.filterwarnings("ignore", message="Error writing persistent compilation cache")
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def backends_started() -> bool:
    """Whether JAX has created its devices in this process (XLA_FLAGS no longer apply)."""
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def setup(cache_dir: str | Path | None = None, *, cache: bool = True) -> dict[str, Any]:
    """What ``deepmle run`` does before JAX starts, for a notebook or script using the library:
    the XLA:CPU flags (Eigen dot kernels; ``set_cpu_flags``) and the
    persistent compilation cache (``enable_compilation_cache``; ``cache=False`` leaves it off).
    Call it first, before anything runs JAX. If JAX has already started, the flags cannot
    apply: a RuntimeWarning says so (restart the kernel and call setup() first); the cache is
    still enabled. Returns what was applied, as meta.json records it."""
    import warnings

    if backends_started():
        warnings.warn(
            "deepmle.runtime.setup(): JAX has already started its devices, so its CPU flags "
            "cannot apply in this process; restart the kernel and call "
            "setup() before anything runs JAX",
            RuntimeWarning,
            stacklevel=2,
        )
        flags = {"applied": [], "unsupported": [], "too_late": True}
    else:
        flags = set_cpu_flags(default_cache_dir().parent / "xla_flags.json")
    if cache:
        enable_compilation_cache(Path(cache_dir) if cache_dir else default_cache_dir())
    else:  # off, even where an earlier setup() turned it on
        jax.config.update("jax_enable_compilation_cache", False)
    return flags


def initialize_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Join a multi-process run, before any computation: with a coordinator given, as told;
    without, as the cluster environment says (JAX detects Slurm, Open MPI and Cloud TPU).
    CPU processes exchange data through gloo (GPU and TPU backends ignore that setting)."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except (ValueError, RuntimeError) as e:
        if coordinator is None:
            raise UserError(
                "--distributed found no cluster to join (Slurm, Open MPI or Cloud TPU "
                f"environment): {str(e).splitlines()[0].rstrip('.')}; use --coordinator HOST:PORT "
                "--num-processes N --process-id I instead"
            ) from None
        why = str(e).splitlines()[0].rstrip(".")
        raise UserError(f"cannot join the run at {coordinator}: {why}") from None


class CompileLog:
    """Counts XLA compiles, persistent-cache hits and compile seconds (JAX monitoring events)."""

    _installed: "CompileLog | None" = None

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def get(cls) -> "CompileLog":
        """The process's one log, registered with jax.monitoring on first use."""
        if cls._installed is None:
            log = cls()
            jax.monitoring.register_event_listener(log._on_event)
            jax.monitoring.register_event_duration_secs_listener(log._on_duration)
            cls._installed = log
        return cls._installed

    def _on_event(self, event: str, **_: object) -> None:
        if getattr(_probing, "on", False):
            return
        with self._lock:
            self.counts[event] += 1

    def _on_duration(self, event: str, duration: float, **_: object) -> None:
        if getattr(_probing, "on", False):
            return
        with self._lock:
            self.counts[event] += 1
            self.seconds[event] += duration

    def snapshot(self) -> dict[str, float]:
        """compiles (XLA compiles, not counting programs read from the persistent cache),
        cache_hits, compile_s (trace + lower + compile or cache read)."""
        with self._lock:
            hits = self.counts["/jax/compilation_cache/cache_hits"]
            return {
                # JAX times a cache read under the same event as a compile.
                "compiles": self.counts["/jax/core/compile/backend_compile_duration"] - hits,
                "cache_hits": hits,
                "compile_s": sum(
                    self.seconds[e]
                    for e in (
                        "/jax/core/compile/jaxpr_trace_duration",
                        "/jax/core/compile/jaxpr_to_mlir_module_duration",
                        "/jax/core/compile/backend_compile_duration",
                    )
                ),
            }

    def since(self, before: dict[str, float]) -> dict[str, float]:
        now = self.snapshot()
        return {k: now[k] - before[k] for k in now}


def git_commit() -> str:
    """The commit of the deepmle source tree (with '+dirty' for local edits), or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        commit, dirty = (
            subprocess.run(
                ["git", "-C", str(here), *args],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
            for args in (["rev-parse", "HEAD"], ["status", "--porcelain", "--untracked-files=no"])
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Versions, devices and machine: what a reader needs to reproduce or compare a run."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("deepmle", "jax", "jaxlib", "optax", "numpy", "scipy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "versions": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "git_commit": git_commit(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "process_count": jax.process_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "cpu_tuning": cpu_tuning() if jax.default_backend() == "cpu" else None,
    }


class Interrupts:
    """Ctrl-C while a sweep runs, heard reliably: SIGINT sets a flag that the sweep checks
    (``check``) between its waits, instead of raising KeyboardInterrupt wherever the main
    thread happens to be, such as inside a garbage-collection callback, where Python swallows
    it. A second Ctrl-C raises at once. Installed only in the main thread, over Python's
    default handler, and restored on exit; a Ctrl-C heard after the last ``check`` (while the
    sweep writes its results, say) raises on exit, so that a caller's loop over sweeps stops
    instead of losing it."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self._previous = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        """Raise KeyboardInterrupt here, in the sweep's own code, if Ctrl-C was pressed."""
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if self.requested and exc_type is None:
            raise KeyboardInterrupt
