"""Shared by the test files: the real `deepmle` command in a subprocess, and result comparison."""

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepmle import results

ROOT = Path(__file__).parent.parent
CONFIGS = ROOT / "configs"


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
