"""Speed of the standard workload W through deepmle, beside the loop most JAX users write first.

    python experiments/benchmark.py [--repeats 3] [--out experiments/results/benchmark_cpu.json]

W (configs/workload_w.toml): 784 -> h -> 1 sigmoid, h in {16, 32, 64, 128} x lr in {0.03, 0.1,
0.3, 1.0} x 8 seeds = 128 networks, 10 epochs of SGD, batch 128, own init and shuffle per seed.

Measured in one run, on one machine, and saved as JSON:
  deepmle   `deepmle run configs/workload_w.toml` in a fresh process with the compilation
            cache off (cold compile), `--repeats` times: wall (process start to exit), the
            sweep's compile and execution seconds (meta.json), models·epochs/s; median
            reported. Then once more with a warm persistent cache: compiles must be 0.
            Results of the repeats are compared bitwise (params.npz).
  naive     a jitted step, Python loops over models and batches, numpy shuffles and
            gathers, the learning rate a Python float closed over by a step defined per run
            (a compile per run, as in JAX's from-scratch example); and, for reference, the
            same loop with the learning rate a static argument (a compile per shape and lr).
  peak      float32 jnp.dot of 2048x2048 matrices (median of 10), same XLA flags as deepmle.
  flops     counted from layer shapes: per example and step, forward 2·Σ n_in·n_out and
            backward 2·Σ n_in·n_out (weight gradients) + 2·Σ_{layers>1} n_in·n_out (input
            gradients; the first layer needs none), times executed steps·batch; evaluation
            adds 2·Σ n_in·n_out per example evaluated (validation each epoch, all splits at
            the end). Biases and elementwise work are left out (< 1%).
  scaling   members·epochs per second for h = 32 as members grow 8, 32, 128, 512 (4 lrs x
            2..128 seeds, 3 epochs, in process, compile excluded).
  memory    peak RSS of the W process.
"""

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "workload_w.toml"

from deepmle import runtime  # noqa: E402

runtime.use_eigen_dots()  # the same XLA:CPU flags as the `deepmle` command, before any JAX work

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from deepmle import config as config_lib  # noqa: E402
from deepmle import data, results, sweep  # noqa: E402
from deepmle.likelihood import accuracy_from_logits, mean_log_likelihood  # noqa: E402
from deepmle.model import forward, init_params  # noqa: E402


def matmul_peak(n: int = 2048, reps: int = 10) -> float:
    """Median float32 GFLOP/s of jnp.dot on n x n matrices."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        dot(a, b).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


PEAK_SNIPPET = """
import statistics, time, jax, jax.numpy as jnp
a = jax.random.normal(jax.random.key(0), (2048, 2048), jnp.float32)
dot = jax.jit(jnp.dot); dot(a, a).block_until_ready(); ts = []
for _ in range(10):
    t = time.perf_counter(); dot(a, a).block_until_ready(); ts.append(time.perf_counter() - t)
print(2 * 2048**3 / statistics.median(ts) / 1e9)
"""


def default_flags_peak() -> float:
    """jnp.dot's peak with XLA:CPU's default dot kernels (YNNPACK), in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", PEAK_SNIPPET], env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    return float(out.stdout.strip())


def workload_flops(config: config_lib.Config, n_train: int, n_val: int, n_test: int) -> dict:
    """FLOPs of the workload from its layer shapes (see the module docstring)."""
    t = config.train
    steps = n_train // t.batch_size
    members = len(t.learning_rate) * t.seeds
    train = evaluation = 0
    for sizes in config.shapes:
        macs = sum(a * b for a, b in itertools.pairwise(sizes))
        first = sizes[0] * sizes[1]
        per_example = 2 * macs + 2 * macs + 2 * (macs - first)
        train += members * t.epochs * steps * t.batch_size * per_example
        evaluated = t.epochs * n_val + n_train + n_val + n_test
        evaluation += members * evaluated * 2 * macs
    return {"train": train, "evaluation": evaluation, "total": train + evaluation}


def run_deepmle(out: Path, cache: Path | None) -> dict:
    """One `deepmle run` of W in a fresh process; its timings and peak RSS."""
    cmd = [sys.executable, "-m", "deepmle", "run", str(CONFIG), "--out", str(out), "--quiet",
           "--no-plots", *(["--cache-dir", str(cache)] if cache else ["--no-cache"])]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # MiB, max so far
    if proc.returncode != 0:
        raise SystemExit(f"deepmle run failed: {err}")
    meta = json.loads((out / "meta.json").read_text())
    return {
        "wall_s": wall,
        "sweep_wall_s": meta["wall_s"],
        "compile_s": meta["compile_s"],
        "execute_s": meta["train_s"],
        "compiles": meta["compiles"],
        "cache_hits": meta["cache_hits"],
        "max_rss_mib_so_far": rss,
    }


def naive_loop(config: config_lib.Config, ds: data.Dataset, static_lr: bool) -> dict:
    """W as most JAX users first write it: a jitted step, Python loops over models and
    batches, numpy shuffles and gathers, the learning rate a Python float.

    static_lr=False: the step is defined inside each run and closes over its learning rate,
    as in JAX's from-scratch MNIST example, so every run compiles its own step.
    static_lr=True: one step for all runs, the learning rate a static argument, so one
    compile per (shape, learning rate): the usual first fix, shown for reference.
    """

    @partial(jax.jit, static_argnames="lr")
    def shared_step(params, x, y, lr):
        grads = jax.grad(mean_log_likelihood)(params, x, y)
        return jax.tree.map(lambda p, g: p + lr * g, params, grads)  # gradient ascent

    @jax.jit
    def accuracy(params, x, y):
        return accuracy_from_logits(forward(params, x), y)

    x, y = ds.train
    t = config.train
    steps = x.shape[0] // t.batch_size
    t0 = time.perf_counter()
    val, test = [], []
    for sizes in config.shapes:
        for lr in t.learning_rate:
            for seed in range(t.seeds):
                if static_lr:
                    step = partial(shared_step, lr=lr)
                else:

                    @jax.jit
                    def step(params, x, y, lr=lr):
                        grads = jax.grad(mean_log_likelihood)(params, x, y)
                        return jax.tree.map(lambda p, g: p + lr * g, params, grads)

                params = init_params(jax.random.key(seed), sizes)
                rng = np.random.default_rng(seed)
                for _ in range(t.epochs):
                    order = rng.permutation(x.shape[0])
                    for b in range(steps):
                        idx = order[b * t.batch_size : (b + 1) * t.batch_size]
                        params = step(params, x[idx], y[idx])
                val.append(float(accuracy(params, *ds.validation)))
                test.append(float(accuracy(params, *ds.test)))
    return {
        "wall_s": time.perf_counter() - t0,
        "val_accuracy_mean": float(np.mean(val)),
        "test_accuracy_mean": float(np.mean(test)),
    }


def scaling(ds: data.Dataset, base: config_lib.Config) -> list[dict]:
    """Members·epochs per second for h = 32 at 8, 32, 128, 512 members: whole `sweep.run`
    calls (init, epochs, final evaluation, saving), programs compiled beforehand."""
    EPOCHS = 3
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seeds in (2, 8, 32, 128):
            config = config_lib.from_dict(
                config_lib.to_dict(base)
                | {"model": {"hidden_sizes": [[32]]}}
                | {"train": config_lib.to_dict(base)["train"] | {"seeds": seeds, "epochs": EPOCHS}}
            )
            members = seeds * len(config.train.learning_rate)
            sweep.run(config, ds, Path(tmp) / f"warm{seeds}")  # compile outside the timing
            t0 = time.perf_counter()
            sweep.run(config, ds, Path(tmp) / f"run{seeds}")
            seconds = time.perf_counter() - t0
            rows.append({"members": members, "seconds": seconds,
                         "member_epochs_per_s": members * EPOCHS / seconds})  # fmt: skip
            print(f"  scaling h=32: {members:4d} members  {rows[-1]['member_epochs_per_s']:8.1f}"
                  " member-epochs/s", flush=True)  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--out", type=Path, default=ROOT / "experiments" / "results" / "benchmark_cpu.json"
    )
    ap.add_argument("--skip-naive", action="store_true", help="leave out the slow naive loop")
    args = ap.parse_args()

    config = config_lib.load(CONFIG)
    ds = data.load(config.data)
    n_train, n_val, n_test = (s.y.shape[0] for s in ds)
    flops = workload_flops(config, n_train, n_val, n_test)
    members_epochs = len(config.shapes) * len(config.train.learning_rate) * config.train.seeds
    members_epochs *= config.train.epochs
    report: dict = {"environment": results.environment(), "workload": str(CONFIG.name),
                    "flops": flops, "n_train": n_train}  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = []
        for i in range(args.repeats):
            runs.append(run_deepmle(tmp / f"w{i}", cache=None))
            print(f"deepmle W run {i + 1}: wall {runs[-1]['wall_s']:.1f} s, compile "
                  f"{runs[-1]['compile_s']:.1f} s, execute {runs[-1]['execute_s']:.1f} s",
                  flush=True)  # fmt: skip
        peak_rss = runs[0]["max_rss_mib_so_far"]
        first = results.read_npz(tmp / "w0" / "params.npz")
        again = [results.read_npz(tmp / f"w{i}" / "params.npz") for i in range(1, args.repeats)]
        bitwise = all(np.array_equal(first[k], a[k]) for a in again for k in first)
        cache = tmp / "cache"
        run_deepmle(tmp / "fill", cache=cache)
        warm = run_deepmle(tmp / "warm", cache=cache)
        print(
            f"deepmle W with a warm cache: compiles {warm['compiles']}, "
            f"cache hits {warm['cache_hits']}, wall {warm['wall_s']:.1f} s",
            flush=True,
        )
        summary = results.read_csv(tmp / "w0" / "summary.csv")

    timed = ("wall_s", "sweep_wall_s", "compile_s", "execute_s")
    med = {k: statistics.median(r[k] for r in runs) for k in timed}
    peak_eigen, peak_default = matmul_peak(), default_flags_peak()
    peak = max(peak_eigen, peak_default)  # the stricter denominator
    achieved = flops["total"] / med["execute_s"] / 1e9
    report["deepmle"] = {
        "runs": runs,
        "median": med,
        "member_epochs_per_s": members_epochs / med["sweep_wall_s"],
        "achieved_gflops": achieved,
        "fraction_of_peak": achieved / peak,
        "peak_rss_mib": peak_rss,
        "bitwise_identical_reruns": bitwise,
        "warm_cache": warm,
        "best_cell": next(r for r in summary if r["selected"] == "True"),
    }
    report["peak_gflops"] = peak
    report["peak_gflops_by_xla_cpu_dots"] = {"eigen": peak_eigen, "default": peak_default}
    print(
        f"matmul peak {peak:.1f} GFLOP/s (eigen dots {peak_eigen:.0f}, default "
        f"{peak_default:.0f}); W executes {flops['total'] / 1e12:.2f} TFLOP in "
        f"{med['execute_s']:.1f} s = {achieved:.1f} GFLOP/s = {100 * achieved / peak:.0f}% of peak"
    )
    report["scaling_h32"] = scaling(ds, config)
    if not args.skip_naive:
        for name, static in (("naive_jax_loop", False), ("naive_jax_loop_static_lr", True)):
            print(f"{name} over W (a few minutes)...", flush=True)
            naive = naive_loop(config, ds, static_lr=static)
            report[name] = naive | {"speedup_of_deepmle": naive["wall_s"] / med["wall_s"]}
            print(f"{name}: {naive['wall_s']:.1f} s vs deepmle {med['wall_s']:.1f} s: "
                  f"deepmle {naive['wall_s'] / med['wall_s']:.1f}x faster", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results.write_json(args.out, report)
    print(f"peak RSS of W: {peak_rss:.0f} MiB; re-runs bitwise identical: {bitwise}")
    print(f"saved {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
