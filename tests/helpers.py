"""Shared by the test files: the one tiny config and the one interruptible config, the real
`deepmle` command in a subprocess, directories built once per test run, one member trained
alone, and result comparison."""

import contextlib
import fcntl
import functools
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepmle import results
from deepmle.core import member, model
from deepmle.population import randomness
from deepmle.runs.store import LOCK

ROOT = Path(__file__).parent.parent
CONFIGS = ROOT / "configs"

TINY = ["--set", "model.hidden_sizes=[[8]]", "--set", "train.seeds=2", "--set", "train.epochs=1",
        "--set", "train.batch_size=64"]  # fmt: skip
"""The one tiny config of the CLI and subprocess tests (on configs/seed.toml): every test that
does not care what it trains trains this, so the suite compiles its programs once."""

INTERRUPTIBLE = ["--set", "model.hidden_sizes=[[16], [256]]", "--set", "train.seeds=8",
                 "--set", "train.epochs=3", "--set", "train.batch_size=64"]  # fmt: skip
"""The one config of the kill, lock and overwrite tests: h16 is done in seconds, h256 then
trains long enough to be killed or found running by a second process."""


def once(name: str, build) -> Path:
    """The directory ``build(path)`` makes, built once per test run however many pytest-xdist
    workers ask for it: the first takes a file lock and builds it beside, then renames it into
    place; the others wait on the lock and find it there. It lives in the run's own cache home
    (conftest), removed with it. Read it only: a test that writes copies it (``copy``)."""
    root = Path(os.environ["XDG_CACHE_HOME"]) / "shared"
    root.mkdir(exist_ok=True)
    done = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_dir():
            building = root / f"{name}.building"
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir()
            build(building)
            building.rename(done)
    return done


def contents(run: Path) -> dict[Path, bytes]:
    """Every file's bytes under ``run`` but the lock's: the lock holds the pid of its last
    holder, and a run that is refused took it first (a shared run was built by another
    process than the test's)."""
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != LOCK}


def copy(run: Path, to: Path) -> Path:
    """A writable copy of a shared run directory at ``to``."""
    shutil.copytree(run, to)
    return to


@functools.partial(jax.jit, static_argnums=0)
def _alone(spec: member.Spec, params, orders, lr, data, key):
    return member.run(member.member(spec), params, orders, lr, data, key)


def member_alone(spec: member.Spec, dataset, seed: int, lr: float):
    """One member trained alone by the one definition (member.run), from seed's host draws as
    `deepmle run` draws them: (state, curves, final)."""
    params = model.from_normals(randomness.init_normals(seed, spec.layer_sizes))
    orders = randomness.epoch_orders(seed, spec.n_train, spec.batch_size, spec.epochs)
    data = jax.tree.map(jnp.asarray, dataset)
    return _alone(spec, params, orders, jnp.float32(lr), data, randomness.calibration_key(seed))


def built(counts: dict[str, float]) -> float:
    """Programs built, from a CompileLog difference: compiled, or read from the test run's
    persistent cache (conftest), where an earlier test compiled the same program."""
    return counts["compiles"] + counts["cache_hits"]


def env(devices: int = 1, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a `deepmle` subprocess with ``devices`` forced CPU devices."""
    out = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS" and not k.startswith("SLURM_")}
    out |= extra or {}
    out["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    out["JAX_PLATFORMS"] = "cpu"
    return out


def deepmle_process(
    out: Path,
    *extra: str,
    config: str = "seed.toml",
    devices: int = 1,
    extra_env: dict[str, str] | None = None,
    **kw,
) -> subprocess.Popen:
    """`python -m deepmle run configs/<config> --out out --no-plots ...extra`, started. SIGINT
    gets its default handling even where the test runner's shell ignores it (a background job)."""
    cmd = [sys.executable, "-m", "deepmle", "run", str(CONFIGS / config), "--out", str(out),
           "--no-plots", *extra]  # fmt: skip
    return interruptible(cmd, env=env(devices, extra_env), **kw)


def interruptible(cmd: list[str], **kw) -> subprocess.Popen:
    """``cmd`` started with its output piped, SIGINT at its default handling even where the
    test runner's shell ignores it (a background job): set in the parent around the start,
    not in a preexec_fn, which would fork a multithreaded JAX process."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        pipe = subprocess.PIPE
        return subprocess.Popen(cmd, stdout=pipe, stderr=pipe, text=True, **kw)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Until ``path`` exists; fails if the process ends first."""
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.02)


def same_members(a: Path, b: Path) -> None:
    """Two run directories hold the same members, every array within float tolerance."""
    ra, rb = results.load_run(a), results.load_run(b)
    for ga, gb in zip(ra.groups, rb.groups, strict=True):
        assert ga.name == gb.name
        for key in ga.final:
            # nan_ok: a metric may be NaN in both (a diverged member's)
            assert gb.final[key] == pytest.approx(ga.final[key], rel=1e-4, abs=1e-5, nan_ok=True), (
                key
            )
        assert ga.curves.keys() == gb.curves.keys()
        for key in ga.curves:  # padding members must not leak into the curves either
            assert ga.curves[key].shape == gb.curves[key].shape, key
            np.testing.assert_allclose(gb.curves[key], ga.curves[key], rtol=1e-4, atol=1e-5)
        for la, lb in zip(ga.params, gb.params, strict=True):
            for k in la:
                assert lb[k] == pytest.approx(la[k], rel=1e-4, abs=1e-5)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(low: int = 20000, high: int = 30000) -> int:
    """A free port in [low, high), tried from a random start: two test workers (pytest -n)
    starting a cluster at once do not both take the first free one."""
    start = random.randrange(low, high)
    return next(p for p in (*range(start, high), *range(low, start)) if _free(p))


ALL_DIVERGE = ["--set", "train.learning_rate=[1e30, 2e30, 3e30]", "--set", "train.epochs=2",
               "--set", "train.seeds=1", "--set", "model.hidden_sizes=[4]",
               "--set", "search.method=halving", "--set", "search.eta=2"]  # fmt: skip


def _all_diverge(directory: Path) -> None:
    from deepmle.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["run", str(CONFIGS / "seed.toml"), "--out", str(directory / "run"),
                     "--quiet", *ALL_DIVERGE])  # fmt: skip
    lines = stderr.getvalue().strip().splitlines()
    assert (code, lines) == (1, ["deepmle: every member diverged"]), stderr.getvalue()
    assert "selected" not in stdout.getvalue()


def all_diverged() -> Path:
    """A successive-halving run of 3 learning rates where every member diverges (exit 1, one
    line), built once per test run: copy it to write."""
    return once("all-diverged", _all_diverge) / "run"


DAMAGED_SEARCH = {
    "eta text": lambda s: s.update(eta="3"),
    "eta 1": lambda s: s.update(eta=1),
    "rungs object": lambda s: s.update(rungs={"a": 1}),
    "decisions missing": lambda s: s.pop("decisions"),
    "decision a number": lambda s: s["decisions"].__setitem__(0, 7),
    "rank text": lambda s: s["decisions"][0].update(rank="1"),
    "kept number": lambda s: s["decisions"][0].update(kept=1),
    "val_ll null": lambda s: s["decisions"][0].update(val_ll=None),
    "cutoff word": lambda s: s["rungs"][0].update(cutoff_val_ll="low"),
    "epoch float": lambda s: s["rungs"][-1].update(epoch=2.5),
    "grid 0": lambda s: s["rungs"][-1].update(grid_member_epochs=0),
    "search list": None,
}


def damage_search(run: Path, tmp_path: Path, case: str) -> Path:
    """A copy of ``run`` whose meta.json search section is damaged as DAMAGED_SEARCH[case] says."""
    out = shutil.copytree(run, tmp_path / "run")
    meta = json.loads((out / "meta.json").read_text())
    if DAMAGED_SEARCH[case] is None:
        meta["search"] = [1, 2]
    else:
        DAMAGED_SEARCH[case](meta["search"])
    (out / "meta.json").write_text(json.dumps(meta))
    return out
