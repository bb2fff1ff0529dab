"""The measurement behind the divergence guard's margin (docs/notes.md, "The divergence guard").

    python experiments/guard_margin.py    # about a minute on 2 cores; prints one line a member

With the "worse than initialisation" rule off (``member.WORSE_NATS = inf``; non-finite values
still stop a member), every member's mean train LL per epoch minus its seed's initial LL on the
same minibatches (the member at lr 1e-9), for sigmoid, tanh and relu networks at learning rates
where the old rule (no margin) fired, and its final validation accuracy.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

from deepmle import config, data, runtime, sweep
from deepmle.core import member

GRID = (
    ("sigmoid", (1, 3, 4, 5), (1e-9, 1.0, 3.0, 10.0, 30.0)),
    ("tanh", (2, 4), (1e-9, 1.0, 3.0, 10.0)),
    ("relu", (2, 4), (1e-9, 1.0, 3.0, 10.0)),
)


def main() -> int:
    runtime.setup()
    member.WORSE_NATS = float("inf")  # traced into the programs built below
    ds = data.load(config.DataConfig())
    with tempfile.TemporaryDirectory() as runs:
        for act, depths, lrs in GRID:
            cfg = config.from_dict(
                {
                    "model": {"hidden_sizes": [[32] * d for d in depths], "activation": act},
                    "train": {"learning_rate": list(lrs), "seeds": 8, "epochs": 5},
                },
                name=f"guard_{act}",
            )
            res = sweep.run(cfg, ds, Path(runs) / act).results
            for depth, hidden in zip(depths, cfg.model.hidden_sizes, strict=True):
                g = res.group(hidden)
                start = g.curves["train_ll"][:, 0, :1]  # [seeds, 1]: lr 1e-9's first epoch
                for li, lr in enumerate(g.learning_rates[1:], start=1):
                    below = g.curves["train_ll"][:, li] - start  # [seeds, epochs]
                    for s in range(below.shape[0]):
                        epochs = " ".join(f"{v:+9.2f}" for v in below[s])
                        acc = g.final["val_accuracy"][s, li]
                        print(f"{act:7} {depth} layers lr {lr:<4g} seed {s}: train LL − "
                              f"initial by epoch {epochs}; val acc {acc:.3f}")  # fmt: skip
                    worst = np.nanmin(below[:, 0])
                    print(f"{act:7} {depth} layers lr {lr:<4g}: epoch 1 at worst {worst:+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
