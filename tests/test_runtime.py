"""XLA:CPU speed choices never stop a run: a flag or compile option the installed jaxlib
lacks is probed, left out and recorded, with real subprocesses and real compiles."""

import json
import os
import subprocess
import sys

import pytest

from deepmle import config as config_lib
from deepmle import runtime, sweep

NO_SUCH_FLAG = "--xla_deepmle_no_such_flag_in_any_jaxlib=1"
NO_SUCH_OPTION = ("xla_deepmle_no_such_option_in_any_jaxlib", True)


def _jax_starts(flags: str) -> bool:
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    code = "import jax; jax.devices()"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    return proc.returncode == 0


@pytest.mark.slow
def test_an_unknown_xla_flag_is_left_out_and_jax_still_starts(tmp_path, monkeypatch):
    assert not _jax_starts(NO_SUCH_FLAG)  # what the guard is for: XLA aborts the process
    monkeypatch.setattr(runtime, "CPU_CHOICES", (
        runtime.CpuChoice("bogus", flag=NO_SUCH_FLAG), *runtime.CPU_CHOICES))  # fmt: skip
    monkeypatch.setenv("XLA_FLAGS", "")
    record = tmp_path / "flags.json"
    probe = runtime.set_cpu_flags(record)
    assert probe["unsupported"] == [NO_SUCH_FLAG]
    assert runtime.EIGEN_DOTS_FLAG in probe["applied"]
    assert NO_SUCH_FLAG not in os.environ["XLA_FLAGS"]
    assert _jax_starts(os.environ["XLA_FLAGS"])
    # Remembered per jaxlib version: the second time probes nothing.
    saved = json.loads(record.read_text())[f"jaxlib {runtime.jaxlib_version()}"]
    assert saved[NO_SUCH_FLAG] is False and saved[runtime.EIGEN_DOTS_FLAG] is True
    monkeypatch.setattr(runtime, "_flags_start", lambda flags: pytest.fail("probed again"))
    monkeypatch.setenv("XLA_FLAGS", "")
    assert runtime.set_cpu_flags(record) == probe


def test_a_flag_the_user_set_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=3")
    monkeypatch.setenv("DEEPMLE_CPU_OFF", "eigen_dots")
    monkeypatch.setattr(runtime, "_flags_start", lambda flags: pytest.fail("nothing to probe"))
    assert runtime.set_cpu_flags(tmp_path / "f.json") == {"applied": [], "unsupported": []}
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=3"


def test_an_unknown_compile_option_does_not_stop_a_run(small, tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "CPU_CHOICES", (
        runtime.CpuChoice("bogus", option=NO_SUCH_OPTION), *runtime.CPU_CHOICES))  # fmt: skip
    runtime.cpu_compiler_options.cache_clear()
    try:
        config = config_lib.from_dict(
            {"model": {"hidden_sizes": [4]}, "train": {"seeds": 2, "epochs": 1, "batch_size": 64}}
        )
        res = sweep.run(config, small, tmp_path / "run").results
        assert res.selected is not None
        tuning = json.loads((tmp_path / "run" / "meta.json").read_text())["cpu_tuning"]
        assert NO_SUCH_OPTION[0] in tuning["compiler_options_unsupported"]
        assert NO_SUCH_OPTION[0] not in tuning["compiler_options"]
        assert tuning["compiler_options"]["xla_backend_optimization_level"] == 1
    finally:
        runtime.cpu_compiler_options.cache_clear()


def test_switched_off_choices_are_not_applied(monkeypatch):
    monkeypatch.setenv("DEEPMLE_CPU_OFF", "llvm_level_1,loop_emitters")
    runtime.cpu_compiler_options.cache_clear()
    try:
        assert runtime.cpu_compiler_options() == {}
    finally:
        runtime.cpu_compiler_options.cache_clear()


def _python(code: str, tmp_path) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_setup_gives_a_notebook_the_commands_devices_and_cache(tmp_path):
    out = _python(
        "from deepmle import runtime\n"
        "runtime.setup()\n"
        "import jax\n"
        "print('devices', jax.device_count(), 'cores', runtime.cpu_cores())\n"
        "print('cache', jax.config.jax_compilation_cache_dir)\n",
        tmp_path,
    )
    import re

    devices = int(re.search(r"devices (\d+) cores \d+", out).group(1))
    assert devices == 1  # one CPU device per core is off by default (runtime.CPU_CHOICES)
    assert f"cache {tmp_path}/deepmle/jax" in out


def test_setup_after_jax_started_says_what_to_do(tmp_path):
    out = _python(
        "import jax\njax.devices()\nfrom deepmle import runtime\nprint(runtime.setup())\n",
        tmp_path,
    )
    assert "already started its devices" in out and "restart the kernel" in out
    assert "'too_late': True" in out


def test_a_ctrl_c_after_the_last_check_is_raised_on_exit_not_lost():
    # pressed while the sweep writes its last results: the flag is set after the last check;
    # a loop over sweeps (the research answers) must still stop
    import signal

    # Python's own handler, as in a terminal (a test run in the background ignores SIGINT)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.raises(KeyboardInterrupt):
        with runtime.Interrupts() as interrupts:
            interrupts.check()
            os.kill(os.getpid(), signal.SIGINT)  # handled by the flag: nothing raises here
            assert interrupts.requested
    assert signal.signal(signal.SIGINT, before) is signal.default_int_handler  # restored
    with runtime.Interrupts() as interrupts:  # no Ctrl-C: a clean exit
        interrupts.check()


def test_setup_without_cache_after_setup_with_one_writes_nothing_there(tmp_path):
    cache = tmp_path / "cache"
    out = _python(
        "from deepmle import runtime\n"
        f"runtime.setup({str(cache)!r})\n"
        "runtime.setup(cache=False)\n"
        "import jax, jax.numpy as jnp\n"
        "print(float(jax.jit(lambda x: jnp.sin(x) * 3.0 + x ** 2)(jnp.float32(2.0))))\n",
        tmp_path,
    )
    assert "6.727" in out  # sin(2) * 3 + 4: it ran
    assert cache.is_dir() and not list(cache.iterdir())
