"""Successive halving against the full grid, side by side, on configs/halving.toml.

    python experiments/halving.py [--seeds 0 1 2] [--out experiments/results/halving_cpu.json]

For each search seed (``train.search_seed``: the 64 learning rates drawn), the config runs
twice in fresh processes, `deepmle run --no-plots --no-cache`: with halving (as shipped) and
as a full grid (``--set search.method=grid``), the same draws; the order alternates between
search seeds so that a slow stretch of a shared machine does not favour one. Printed and
saved per search seed:

  member-epochs ratio  halving's member-epochs / the grid's (meta.json);
  wall ratio           whole-process wall, compile included, halving / grid;
  rank                 the halving-selected cell's rank among the grid run's cells by mean
                       validation accuracy (ties: validation LL), and whether the grid run
                       marks it ≈ its own selection (or selects it);
  test diff            test accuracy of the halving-selected cell minus the grid-selected
                       cell's, paired by seed (the seeds share initialisation and
                       minibatches), mean and 95% t half-width over the config's seeds.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepmle.analysis.stats import paired_diff_ci95
from deepmle.results import load_run

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "halving.toml"


def _run(out: Path, seed: int, method: str) -> float:
    cmd = [sys.executable, "-m", "deepmle", "run", str(CONFIG), "--out", str(out), "--quiet",
           "--no-plots", "--no-cache", "--set", f"train.search_seed={seed}",
           "--set", f"search.method={method}"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _cell(row: dict) -> tuple[str, float]:
    return row["hidden_sizes"], row["learning_rate"]


def _test_accuracy(run, cell: tuple[str, float]) -> np.ndarray:
    """[seeds] test accuracy of a cell, NaN where a seed diverged."""
    g = next(g for g in run.groups if "-".join(map(str, g.hidden)) == cell[0])
    li = int(np.flatnonzero(g.learning_rates == cell[1])[0])
    ok = g.final["diverged_epoch"][:, li] < 0
    return np.where(ok, g.final["test_accuracy"][:, li].astype(np.float64), np.nan)


def compare(seed: int, tmp: Path, halving_first: bool) -> dict:
    walls = {}
    for method in ("halving", "grid") if halving_first else ("grid", "halving"):
        walls[method] = _run(tmp / f"{method}{seed}", seed, method)
    h, g = load_run(tmp / f"halving{seed}"), load_run(tmp / f"grid{seed}")
    h_best, g_best = _cell(h.selected), _cell(g.selected)
    ranked = sorted(g.summary, key=lambda r: (-r["val_accuracy_mean"], -r["val_ll_mean"]))
    rank = 1 + [_cell(r) for r in ranked].index(h_best)
    g_row = next(r for r in g.summary if _cell(r) == h_best)
    diff = paired_diff_ci95(_test_accuracy(h, h_best), _test_accuracy(g, g_best))
    record = h.meta["search"]
    return {
        "search_seed": seed,
        "order": "halving, grid" if halving_first else "grid, halving",
        "member_epochs": record["member_epochs"],
        "grid_member_epochs": record["grid_member_epochs"],
        "member_epochs_ratio": record["member_epochs"] / record["grid_member_epochs"],
        "wall_s": walls,
        "wall_ratio": walls["halving"] / walls["grid"],
        "compile_s": {"halving": h.meta.get("compile_s"), "grid": g.meta.get("compile_s")},
        "compiles": {"halving": h.meta.get("compiles"), "grid": g.meta.get("compiles")},
        "halving_selected": {"hidden": h_best[0], "lr": h_best[1]},
        "grid_selected": {"hidden": g_best[0], "lr": g_best[1]},
        "rank_in_grid_by_val_accuracy": rank,
        "of_cells": len(ranked),
        "indistinguishable_in_grid": bool(g_row["selected"] or g_row["indistinguishable"]),
        "val_accuracy_diff_in_grid": [g_row[f"val_accuracy_diff_{k}"] for k in ("mean", "ci95")],
        "test_accuracy_diff": {"mean": diff[0], "ci95": diff[1], "n": len(h.groups[0].seeds)},
    }


def _line(row: dict) -> str:
    d, sel, wall = row["test_accuracy_diff"], row["halving_selected"], row["wall_s"]
    near = "≈ its selection" if row["indistinguishable_in_grid"] else "distinguishable"
    return (
        f"search seed {row['search_seed']}: member-epochs {100 * row['member_epochs_ratio']:.1f}%"
        f" of the grid's, wall {100 * row['wall_ratio']:.1f}% ({wall['halving']:.1f} s / "
        f"{wall['grid']:.1f} s); halving selects h{sel['hidden']} lr {sel['lr']:.3g}, rank "
        f"{row['rank_in_grid_by_val_accuracy']} of {row['of_cells']} in the grid ({near}); "
        f"test accuracy minus the grid-selected's {100 * d['mean']:+.2f} ± "
        f"{100 * d['ci95']:.2f} points (paired, n = {d['n']} seeds)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=ROOT / "experiments/results/halving_cpu.json")
    args = p.parse_args()
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate(args.seeds):
            row = compare(seed, Path(tmp), halving_first=i % 2 == 0)
            rows.append(row)
            print(_line(row), flush=True)
    result = {
        "command": "python experiments/halving.py",
        "config": "configs/halving.toml",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t0)),
        "total_wall_s": time.time() - t0,
        "load_average_at_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "seeds": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
