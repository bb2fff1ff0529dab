"""The bar's halving search in deepmle against the same search in Optuna, side by side.

    python experiments/optuna_peer.py [--rounds 2] [--out experiments/results/optuna_peer.json]

The search (configs/halving.toml): widths {16, 32, 64} x 64 learning rates drawn
log-uniformly from [0.001, 10] x 4 seeds, 27 epochs, successive halving with eta 3 from 1
epoch, ranked on mean validation LL over seeds.

- deepmle: ``deepmle run configs/halving.toml --no-cache --no-plots`` in a fresh process.
- Optuna (the peer, ``pip install optuna``): the same 3 widths x 64 learning rates, one trial
  per cell in a random order (``GridSampler(seed=0)``: a ``RandomSampler`` over the 192
  cells would draw some twice and miss others), ``SuccessiveHalvingPruner`` with
  ``min_resource=1, reduction_factor=3``, and a JAX objective written the way a careful user
  would: one jitted epoch per width, the 4 seeds vmapped, the learning rate traced (3
  compiles), the same initial weights and minibatches (deepmle.population.randomness), each
  epoch's mean validation LL reported to the pruner. Fresh process, no compilation cache.

Both run in fresh processes, alternated (deepmle first in even rounds), cold compile. Printed
and saved: each one's whole-process wall per round, the medians, their ratio, deepmle's
compiles, the member-epochs each trained (Optuna's asynchronous pruner stops other trials than
deepmle's synchronous rungs) and wall per member-epoch, and the validation accuracy of each
one's best cell trained to epoch 27.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "halving.toml"


def peer() -> None:
    """The Optuna side, run in its own process (``--peer``): prints one JSON line."""
    t0 = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optuna

    from deepmle import config as config_lib
    from deepmle import data as data_lib
    from deepmle.core import member, model, registry
    from deepmle.population import randomness

    config = config_lib.load(CONFIG)
    dataset = data_lib.load(config.data)
    data = jax.tree.map(jnp.asarray, dataset)
    n_train, seeds, epochs = dataset.train.y.shape[0], config.train.seeds, config.train.epochs
    widths = [h[0] for h in config.model.hidden_sizes]
    lrs = list(config.train.learning_rate)
    programs = {}

    def program(width: int):
        if width in programs:
            return programs[width]
        spec = member.Spec((784, width, 1), jax.nn.sigmoid, registry.optimizer("sgd"),
                           config.train.batch_size, epochs, n_train)  # fmt: skip
        one = member.member(spec)
        normals = [randomness.init_normals(s, spec.layer_sizes) for s in range(seeds)]
        params = jax.tree.map(lambda *a: jnp.stack(a), *[model.from_normals(n) for n in normals])
        orders = jnp.asarray(np.stack([
            randomness.epoch_orders(s, n_train, spec.batch_size, epochs) for s in range(seeds)
        ]))  # fmt: skip

        @jax.jit
        def start(lr, data):
            shared = member.Shared(data, jnp.int32(0))
            state = jax.vmap(lambda p: one.init(lr, p, shared))(params)
            return state, jax.vmap(one.start_lls, (0, None))(params, data)

        @jax.jit
        def epoch(state, baseline, lr, e, data):
            def f(m, b, o):
                return member.run_epoch(one, m, member.Seed(o, b), member.Shared(data, e))

            return jax.vmap(f)(state, baseline, orders[:, e])

        programs[width] = (start, epoch)
        return programs[width]

    cells = [(w, lr) for w in widths for lr in lrs]
    finished = {}
    member_epochs = [0]

    def objective(trial: optuna.Trial) -> float:
        w, lr = cells[trial.suggest_int("cell", 0, len(cells) - 1)]
        start, epoch = program(w)
        state, baseline = start(jnp.float32(lr), data)
        for e in range(epochs):
            state, metrics = epoch(state, baseline, jnp.float32(lr), jnp.int32(e), data)
            member_epochs[0] += seeds
            val_ll = float(jnp.mean(metrics["val_ll"]))
            trial.report(val_ll if np.isfinite(val_ll) else -1e9, e + 1)
            if trial.should_prune():
                raise optuna.TrialPruned()
        finished[(w, lr)] = float(jnp.mean(metrics["val_accuracy"]))
        return val_ll

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.GridSampler({"cell": list(range(len(cells)))}, seed=0)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(objective, n_trials=len(cells))
    best = max(finished.values()) if finished else float("nan")
    print(json.dumps({"wall_s": time.perf_counter() - t0, "finished_cells": len(finished),
                      "member_epochs": member_epochs[0], "best_val_accuracy": best}))  # fmt: skip


def _deepmle(out: Path) -> dict:
    cmd = [sys.executable, "-m", "deepmle", "run", str(CONFIG), "--out", str(out), "--quiet",
           "--no-plots", "--no-cache", "--overwrite"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    meta = json.loads((out / "meta.json").read_text())
    best = next(r for r in _summary(out) if r["selected"] == "True")
    return {"wall_s": wall, "compiles": meta["compiles"], "compile_s": meta["compile_s"],
            "member_epochs": meta["search"]["member_epochs"],
            "rung_wall_s": [r["wall_s"] for r in meta["search"]["rungs"]],
            "best_val_accuracy": float(best["val_accuracy_mean"])}  # fmt: skip


def _summary(out: Path) -> list[dict]:
    import csv

    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


def _peer() -> dict:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--peer"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {**out, "wall_s": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "experiments/results/optuna_peer.json")
    p.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.peer:
        return peer()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ("deepmle", "optuna") if r % 2 == 0 else ("optuna", "deepmle")
            row = {}
            for who in order:
                row[who] = _deepmle(Path(tmp) / "run") if who == "deepmle" else _peer()
                print(f"round {r} {who}: {json.dumps(row[who])}", flush=True)
            rows.append(row)
    import statistics

    med = {w: statistics.median(r[w]["wall_s"] for r in rows) for w in ("deepmle", "optuna")}
    per = {w: statistics.median(r[w]["wall_s"] / r[w]["member_epochs"] for r in rows)
           for w in ("deepmle", "optuna")}  # fmt: skip
    result = {
        "search": "configs/halving.toml: 3 widths x 64 lrs x 4 seeds, 27 epochs, eta 3",
        "rounds": rows,
        "median_wall_s": med,
        "wall_ratio_deepmle_over_optuna": med["deepmle"] / med["optuna"],
        "median_wall_per_member_epoch_ms": {w: 1e3 * v for w, v in per.items()},
    }
    print(f"median wall: deepmle {med['deepmle']:.1f} s, Optuna {med['optuna']:.1f} s, "
          f"ratio {result['wall_ratio_deepmle_over_optuna']:.2f}")  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
