"""Speed of workload W through `deepmle run`, side by side with the plain reference program.

    python experiments/benchmark.py [--repeats 3] [--naive] [--accuracy] [--out FILE]

W (configs/workload_w.toml): 784 -> h -> 1 sigmoid, h in {16, 32, 64, 128} x lr in {0.03, 0.1,
0.3, 1.0} x 8 seeds = 128 networks, 10 epochs of SGD, batch 128, own init and shuffle per seed.

Measured in one run, on one machine, the programs alternated and medians reported:
  deepmle    `deepmle run configs/workload_w.toml --no-plots --no-cache` in a fresh process:
             whole-process wall, and from its meta.json the compile and train seconds;
  reference  experiments/reference_w.py, a plain single-file JAX program of the stacked design
             (one jit per hidden size, host numpy draws, gather on the device), default XLA
             flags: whole-process wall and its own compile and execute seconds;
  ratios     deepmle / reference for the wall (target <= 0.85) and compile (target <= 1.2);
  peak       float32 jnp.dot of 2048x2048 matrices (median of 10), with each of XLA:CPU's two
             dot back ends in a fresh process, the higher taken;
  flops      counted from layer shapes: per example and step, forward 2·Σ n_in·n_out and
             weight gradients 2·Σ n_in·n_out, input gradients 2·Σ n_in·n_out for every layer
             but the first; evaluation 2·Σ n_in·n_out per example (validation each epoch, the
             training split once at init, the test split at the end). "nominal" counts 784
             inputs, "executed" the pixels deepmle trains on (those some training image inks);
  cache      the same run twice with a persistent cache: the second must compile nothing;
  memory     peak RSS of each deepmle W process; re-runs compared bitwise (params.npz).
  ablation   with --ablate, W again with each CPU speed choice (deepmle.runtime.CPU_CHOICES)
             left out in turn, alternated with W with all of them: the wall ratio
             (without / with) per choice, > 1 where the choice pays on this jax version;
Optional: --naive, the loop most users write first (a jitted step per run, lr closed over),
as a secondary baseline; --accuracy, the seed, deep and sweep configs' selected cells.
"""

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "workload_w.toml"

PEAK = """
import statistics, time, jax, jax.numpy as jnp
a = jax.random.normal(jax.random.key(0), (2048, 2048), jnp.float32)
dot = jax.jit(jnp.dot); dot(a, a).block_until_ready(); ts = []
for _ in range(10):
    t = time.perf_counter(); dot(a, a).block_until_ready(); ts.append(time.perf_counter() - t)
print(2 * 2048**3 / statistics.median(ts) / 1e9)
"""


def run_deepmle(out: Path, cache: Path | None = None, off: str = "") -> dict:
    """One `deepmle run` of W; ``off`` names CPU speed choices to leave out (DEEPMLE_CPU_OFF)."""
    cmd = [sys.executable, "-m", "deepmle", "run", str(CONFIG), "--out", str(out), "--quiet",
           "--no-plots", *(["--cache-dir", str(cache)] if cache else ["--no-cache"])]  # fmt: skip
    t0 = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "DEEPMLE_CPU_OFF"} | {"DEEPMLE_CPU_OFF": off}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"deepmle run failed: {proc.stderr.read()}")
    meta = json.loads((out / "meta.json").read_text())
    return {
        "wall_s": wall,
        "compile_s": meta["compile_s"],
        "train_s": meta["train_s"],
        "compiles": meta["compiles"],
        "cache_hits": meta["cache_hits"],
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "layout": meta["layout"],
        "cpu_tuning": meta["cpu_tuning"],
    }


def run_reference() -> dict:
    cmd = [sys.executable, str(ROOT / "experiments" / "reference_w.py")]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # a plain program
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"reference failed: {err}")
    got = json.loads(out.strip().splitlines()[-1])
    return {"wall_s": wall, "compile_s": got["compile_s"], "execute_s": got["execute_s"],
            "test_accuracy": got["test_accuracy"]}  # fmt: skip


def matmul_peak() -> dict:
    """jnp.dot peak with each XLA:CPU dot back end, each in a fresh process."""
    out = {}
    for name, flags in (("eigen", "--xla_cpu_experimental_ynn_fusion_type="), ("default", "")):
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"XLA_FLAGS": flags}
        proc = subprocess.run([sys.executable, "-c", PEAK], env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        out[name] = float(proc.stdout.strip())
    return out


def workload_flops(config, n_train: int, n_val: int, n_test: int, n_used: int) -> dict:
    """Nominal and executed FLOPs of W from its layer shapes (see the module docstring)."""
    t = config.train
    steps = n_train // t.batch_size
    members = len(t.learning_rate) * t.seeds
    out = {}
    for name, inputs in (("nominal", 784), ("executed", n_used)):
        train = evaluation = 0
        for sizes in config.shapes(784):
            trained = (inputs, *sizes[1:])
            macs = sum(a * b for a, b in itertools.pairwise(trained))
            full = sum(a * b for a, b in itertools.pairwise(sizes))
            per_example = 4 * macs + 2 * (macs - trained[0] * trained[1])
            train += members * t.epochs * steps * t.batch_size * per_example
            # init (training split, once per seed) and validation each epoch on the trained
            # pixels; the test split on every pixel
            evaluation += t.seeds * n_train * 2 * macs
            evaluation += members * (t.epochs * n_val * 2 * macs + n_test * 2 * full)
        out[name] = {"train": train, "evaluation": evaluation, "total": train + evaluation}
    return out


def naive_loop(config, ds) -> dict:
    """W as most JAX users first write it: a jitted step defined per run that closes over its
    learning rate (a compile per run, as in JAX's from-scratch MNIST example), Python loops
    over models and batches, numpy shuffles and gathers."""
    import jax

    from deepmle.core.likelihood import accuracy_from_logits, mean_log_likelihood
    from deepmle.core.model import forward, init_params

    accuracy = jax.jit(lambda p, x, y: accuracy_from_logits(forward(p, x), y))
    x, y = ds.train
    t = config.train
    steps = x.shape[0] // t.batch_size
    t0 = time.perf_counter()
    test = []
    for sizes in config.shapes(784):
        for lr in t.learning_rate:
            for seed in range(t.seeds):

                @jax.jit
                def step(params, xb, yb, lr=lr):
                    grads = jax.grad(mean_log_likelihood)(params, xb, yb)
                    return jax.tree.map(lambda p, g: p + lr * g, params, grads)

                params = init_params(jax.random.key(seed), sizes)
                rng = np.random.default_rng(seed)
                for _ in range(t.epochs):
                    order = rng.permutation(x.shape[0])
                    for b in range(steps):
                        idx = order[b * t.batch_size : (b + 1) * t.batch_size]
                        params = step(params, x[idx], y[idx])
                test.append(float(accuracy(params, *ds.test)))
    return {"wall_s": time.perf_counter() - t0, "test_accuracy_mean": float(np.mean(test))}


def accuracy_runs(tmp: Path) -> dict:
    """Selected cell of each result config, from fresh `deepmle run`s (cache off)."""
    from deepmle import results

    out = {}
    keys = ("hidden_sizes", "learning_rate", "val_accuracy_mean", "val_accuracy_ci95",
            "test_accuracy_mean", "test_accuracy_ci95")  # fmt: skip
    for name in ("seed", "deep", "sweep", "sweep_depth"):
        t0 = time.perf_counter()
        config = str(ROOT / "configs" / f"{name}.toml")
        cmd = [sys.executable, "-m", "deepmle", "run", config, "--out", str(tmp / name),
               "--quiet", "--no-plots", "--no-cache"]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
        row = results.load_run(tmp / name).selected
        out[name] = {k: row[k] for k in keys} | {"wall_s": time.perf_counter() - t0}
        print(f"  {name}: {row['hidden_sizes']}, lr {row['learning_rate']:g}: test "
              f"{100 * row['test_accuracy_mean']:.2f} ± {100 * row['test_accuracy_ci95']:.2f} %, "
              f"val {100 * row['val_accuracy_mean']:.2f} ± {100 * row['val_accuracy_ci95']:.2f} %",
              flush=True)  # fmt: skip
    return out


def ablate(tmp: Path, repeats: int) -> dict:
    """W with each CPU speed choice left out in turn, alternated with W with all of them, in
    fresh processes: per choice the median wall and compile ratio (without / with)."""
    from deepmle import runtime

    names = [c.name for c in runtime.CPU_CHOICES]
    runs: dict[str, list[dict]] = {"all": [], **{n: [] for n in names}}
    for i in range(repeats):
        for name in ["all", *names]:
            off = "" if name == "all" else name
            runs[name].append(run_deepmle(tmp / f"ablate_{name}_{i}", off=off))
        print(f"ablation round {i + 1}: " + ", ".join(
            f"{n} {runs[n][-1]['wall_s']:.2f} s" for n in runs), flush=True)  # fmt: skip
    med = lambda name, k: statistics.median(r[k] for r in runs[name])  # noqa: E731
    out = {"runs": runs, "ratio_without": {}}
    for n in names:
        ratio = {k: med(n, k) / med("all", k) for k in ("wall_s", "compile_s", "train_s")}
        out["ratio_without"][n] = ratio
        print(
            f"without {n}: wall x{ratio['wall_s']:.3f}, compile x{ratio['compile_s']:.3f}, "
            f"train x{ratio['train_s']:.3f}  (> 1: the choice pays)",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--naive", action="store_true", help="also time the naive loop (minutes)")
    ap.add_argument("--accuracy", action="store_true", help="also run the result configs")
    ap.add_argument("--ablate", action="store_true", help="time W without each CPU choice")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from deepmle import config as config_lib
    from deepmle import data, runtime
    from deepmle.population import programs

    config = config_lib.load(CONFIG)
    ds = data.load(config.data)
    n_train, n_val, n_test = (s.y.shape[0] for s in ds)
    n_used = len(programs.split_pixels(ds).used)
    flops = workload_flops(config, n_train, n_val, n_test, n_used)
    report: dict = {"workload": CONFIG.name, "flops": flops, "pixels_trained": n_used}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        deepmle, reference = [], []
        for i in range(args.repeats):  # alternated, so both see the same machine
            deepmle.append(run_deepmle(tmp / f"w{i}"))
            reference.append(run_reference())
            d, r = deepmle[-1], reference[-1]
            print(f"round {i + 1}: deepmle {d['wall_s']:.2f} s (compile {d['compile_s']:.2f}, "
                  f"train {d['train_s']:.2f}) | reference {r['wall_s']:.2f} s (compile "
                  f"{r['compile_s']:.2f}, execute {r['execute_s']:.2f}) | ratio "
                  f"{d['wall_s'] / r['wall_s']:.3f}", flush=True)  # fmt: skip
        first = np.load(tmp / "w0" / "params.npz")
        bitwise = all(
            np.array_equal(first[k], np.load(tmp / f"w{i}" / "params.npz")[k])
            for i in range(1, args.repeats)
            for k in first.files
        )
        cache = tmp / "cache"
        run_deepmle(tmp / "fill", cache=cache)
        warm = run_deepmle(tmp / "warm", cache=cache)
        print(f"warm persistent cache: {warm['compiles']} compiles, {warm['cache_hits']} cache "
              f"hits, {warm['wall_s']:.2f} s", flush=True)  # fmt: skip
        accuracy = accuracy_runs(tmp) if args.accuracy else None
        ablation = ablate(tmp, args.repeats) if args.ablate else None

    med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
    peak = matmul_peak()
    best_peak = max(peak.values())
    train_s = med(deepmle, "train_s")
    rates = {k: v["total"] / train_s / 1e9 for k, v in flops.items()}
    report |= {
        "environment": runtime.environment(),
        "deepmle": {"runs": deepmle, "median": {k: med(deepmle, k) for k in
                                                ("wall_s", "compile_s", "train_s")}},
        "reference": {"runs": reference, "median": {k: med(reference, k) for k in
                                                    ("wall_s", "compile_s", "execute_s")}},
        "wall_ratio": med(deepmle, "wall_s") / med(reference, "wall_s"),
        "wall_ratio_per_round": [
            d["wall_s"] / r["wall_s"] for d, r in zip(deepmle, reference, strict=True)
        ],
        "compile_ratio": med(deepmle, "compile_s") / med(reference, "compile_s"),
        "matmul_peak_gflops": peak,
        "gflops": rates,
        "fraction_of_peak": {k: v / best_peak for k, v in rates.items()},
        "warm_cache": warm,
        "bitwise_identical_reruns": bitwise,
        "peak_rss_mib": max(r["peak_rss_mib"] for r in deepmle),
        "accuracy": accuracy,
        "ablation": ablation,
    }  # fmt: skip
    if args.naive:
        print("naive loop over W (minutes)...", flush=True)
        report["naive_loop"] = naive_loop(config, ds)
    print(
        f"wall: deepmle {med(deepmle, 'wall_s'):.2f} s / reference {med(reference, 'wall_s'):.2f} s"
        f" = {report['wall_ratio']:.3f} (target <= 0.85)\n"
        f"compile: deepmle {med(deepmle, 'compile_s'):.2f} s / reference "
        f"{med(reference, 'compile_s'):.2f} s = {report['compile_ratio']:.2f} (target <= 1.2)\n"
        f"execution: {flops['executed']['total'] / 1e12:.2f} TFLOP executed "
        f"({flops['nominal']['total'] / 1e12:.2f} nominal) in {train_s:.2f} s = "
        f"{rates['executed']:.0f} GFLOP/s = {100 * report['fraction_of_peak']['executed']:.0f}% of "
        f"the {best_peak:.0f} GFLOP/s jnp.dot peak "
        f"({100 * report['fraction_of_peak']['nominal']:.0f}%"
        f" counting nominal FLOPs) (target >= 70%)\n"
        f"peak RSS {report['peak_rss_mib']:.0f} MiB (target < 1024); re-runs bitwise identical: "
        f"{bitwise}; warm cache compiles: {warm['compiles']}"
    )  # fmt: skip
    if args.naive:
        n = report["naive_loop"]
        faster = n["wall_s"] / med(deepmle, "wall_s")
        print(f"naive loop: {n['wall_s']:.1f} s; deepmle {faster:.1f}x faster")
    import jax

    backend = jax.default_backend()
    name = f"benchmark_{backend}_jax{jax.__version__}.json"
    out = args.out or ROOT / "experiments" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
