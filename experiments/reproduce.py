"""Do the committed research answers come from this code? Retrain a few of their cells.

    python experiments/reproduce.py           # checks every experiments/results/*.json

Each research script records, in its JSON's ``reproduce`` list, a few cells it reported: the
config that trained them (restricted to that one shape, its learning rates as in the study, and
seeds 0 and 1), which learning rate the cell is, and what those two seeds measured there. A
seed's members do not depend on how many seeds train beside it (``fold_in`` per seed; measured
bitwise equal), so retraining the two seeds alone must give the same numbers: equal within
``TOLERANCE`` on the same kind of machine. The learning rates stay those of the study: a
shape's members of one seed are one wider GEMM, and another width rounds differently (one
learning rate alone gave LLs 2e-4 apart). A JSON written by older code fails here, which a
redraw from saved runs cannot hide.
CI runs it (tests/test_reproduce.py).
"""

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from deepmle import config as config_lib
from deepmle import data, sweep
from deepmle.runs.results import RunResults

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
ANSWERS = ("pairs", "hidden", "calibration", "depth")
METRICS = ("val_accuracy", "test_accuracy", "val_ll", "test_ll")
SEEDS = 2
TOLERANCE = {"val_accuracy": 1e-6, "test_accuracy": 1e-6, "val_ll": 1e-5, "test_ll": 1e-5}
"""Absolute: the same code on the same kind of machine gives the same float32 numbers (measured
bitwise equal); the slack is the JSON's round trip, far below one digit of a split (1/1270)."""


def block(
    what: str, cfg: config_lib.Config, results: RunResults, hidden: tuple[int, ...], lr: float
) -> dict[str, Any]:
    """A reproduction record of one reported cell (``hidden`` at ``lr``) of a study trained
    with ``cfg`` into ``results``: the one-cell config and seeds 0..SEEDS-1's numbers."""
    g = results.group(tuple(hidden))
    li = [float(x) for x in g.learning_rates].index(float(lr))
    one = replace(
        cfg,
        model=replace(cfg.model, hidden_sizes=(tuple(hidden),)),
        train=replace(cfg.train, seeds=SEEDS),
    )
    return {
        "what": what,
        "config": config_lib.to_dict(one),
        "lr_index": li,
        **{m: [float(v) for v in g.final[m][:SEEDS, li]] for m in METRICS},
    }


def retrain(record: dict[str, Any], runs: Path) -> dict[str, np.ndarray]:
    """``record``'s cell trained again from scratch into ``runs``: {metric: [seeds]}."""
    cfg = config_lib.from_dict(record["config"], name="reproduce")
    g = sweep.run(cfg, data.load(cfg.data), runs, overwrite=True).results.groups[0]
    return {m: g.final[m][:, record["lr_index"]].astype(np.float64) for m in METRICS}


def differences(record: dict[str, Any], now: dict[str, np.ndarray]) -> list[str]:
    """The metrics of ``now`` that differ from ``record``'s beyond TOLERANCE, in words."""
    problems = []
    for m in METRICS:
        then = np.asarray(record[m], np.float64)
        if now[m].shape != then.shape or np.any(np.abs(now[m] - then) > TOLERANCE[m]):
            problems.append(f"{m}: committed {then.tolist()}, retrained {now[m].tolist()}")
    return problems


def records(answer: str) -> list[dict[str, Any]]:
    """The reproduction records of experiments/results/<answer>.json."""
    return json.loads((RESULTS / f"{answer}.json").read_text()).get("reproduce", [])


def main() -> int:
    failed = 0
    with tempfile.TemporaryDirectory(prefix="deepmle-reproduce-") as tmp:
        for answer in ANSWERS:
            found = records(answer)
            if not found:
                print(f"{answer}.json: no reproduction records (written by an older script)")
                failed += 1
            for i, record in enumerate(found):
                problems = differences(record, retrain(record, Path(tmp) / f"{answer}{i}"))
                failed += bool(problems)
                verdict = "reproduced" if not problems else "DIFFERS: " + "; ".join(problems)
                print(f"{answer}.json, {record['what']}: {verdict}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    from deepmle import runtime

    runtime.setup()
    sys.exit(main())
