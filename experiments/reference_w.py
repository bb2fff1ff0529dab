"""Workload W as a plain single-file JAX program: the reference deepmle's speed is measured against.

    python experiments/reference_w.py [--data PATH]

Written the way a user would in an afternoon, from the design in issue 7, without deepmle:

- one `jit` per hidden size, with `lax.scan` over epochs and over steps;
- the learning-rate members of a seed stacked side by side into one [784, lrs·h] layer-1
  matrix per seed (an einsum over seeds), and one `jax.grad` of the summed member losses;
- initial weights and every epoch's permutation drawn with numpy on the host and passed in as
  arrays, while the gather by index runs on the device inside the scan;
- test accuracy once, at the end.

W: 784 -> h -> 1 sigmoid, h in {16, 32, 64, 128} x lr in {0.03, 0.1, 0.3, 1} x 8 seeds, 10
epochs of SGD (gradient ascent on the mean log-likelihood), batch 128, on the same 11,430
training digits as deepmle (the embedded 1-vs-2 MNIST minus the same 10% validation carve).
Each seed has its own initialisation and shuffle; the learning rates of a seed share both.

Prints one JSON line: compile and execution seconds and the mean test accuracy per (h, lr).
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HIDDEN = (16, 32, 64, 128)
LRS = (0.03, 0.1, 0.3, 1.0)
SEEDS, EPOCHS, BATCH = 8, 10, 128
DATA = Path(__file__).resolve().parent.parent / "src" / "deepmle" / "data" / "mnist_by_digit.npz"


def load(path: Path) -> tuple[np.ndarray, ...]:
    """Train and test as float32 x [n, 784] in [0, 1], y [n] = 1. for the digit 1: the 1s and
    2s of the per-digit file, merged back into MNIST order by their stored indices."""

    def pair(f, split: str) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(np.concatenate([f[f"{split}_index_{d}"] for d in (1, 2)]))
        x = np.concatenate([f[f"{split}_images_{d}"] for d in (1, 2)])[order]
        y = np.concatenate([np.full(len(f[f"{split}_index_{d}"]), d == 1) for d in (1, 2)])
        return x.reshape(-1, 784) / np.float32(255), y[order]

    with np.load(path) as f:
        (x, y), (x_test, y_test) = pair(f, "train"), pair(f, "test")
    n = len(y)  # deepmle's validation carve: a fixed permutation sends 10% to validation
    keep = np.sort(np.random.default_rng(1729).permutation(n)[round(0.1 * n) :])
    return x[keep], y[keep].astype(np.float32), x_test, y_test.astype(np.float32)


def member_lls(params, xb, yb):
    """Mean log-likelihood of every member: xb [S, B, 784], yb [S, B] -> [S, L]."""
    w1, b1, w2, b2 = params  # [S, 784, L·h], [S, L·h], [S, L, h], [S, L]
    s, b, lh = xb.shape[0], xb.shape[1], w1.shape[2]
    h = jax.nn.sigmoid(jnp.einsum("sbi,sih->sbh", xb, w1) + b1[:, None, :])
    h = h.reshape(s, b, w2.shape[1], lh // w2.shape[1])
    z = jnp.einsum("sblh,slh->sbl", h, w2) + b2[:, None, :]
    y = yb[:, :, None]
    ll = y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z)
    return ll.mean(axis=1)


def train(params, perms, lrs, x, y, x_test, y_test):
    """perms [E, steps, S, B]; lrs [L]. Returns the test accuracy of every member, [S, L]."""
    hidden = params[2].shape[2]
    lr_cols = jnp.repeat(lrs, hidden)  # the lr of each layer-1 column, [L·h]
    scales = (lr_cols[None, None, :], lr_cols[None, :], lrs[None, :, None], lrs[None, :])

    def step(params, idx):
        grads = jax.grad(lambda p: member_lls(p, x[idx], y[idx]).sum())(params)
        return tuple(p + s * g for p, s, g in zip(params, scales, grads, strict=True)), None

    def epoch(params, epoch_perms):
        return jax.lax.scan(step, params, epoch_perms)[0], None

    params = jax.lax.scan(epoch, params, perms)[0]
    w1, b1, w2, b2 = params
    s = w1.shape[0]
    xt = jnp.broadcast_to(x_test, (s, *x_test.shape))
    h = jax.nn.sigmoid(jnp.einsum("sbi,sih->sbh", xt, w1) + b1[:, None, :])
    h = h.reshape(s, x_test.shape[0], w2.shape[1], hidden)
    z = jnp.einsum("sblh,slh->sbl", h, w2) + b2[:, None, :]
    return jnp.mean((z > 0) == (y_test[None, :, None] > 0.5), axis=1)


def host_inputs(hidden: int, n: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """LeCun-normal initial weights (shared by a seed's learning rates) and permutations."""
    w1, w2, perms = [], [], []
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        w1.append(np.tile(rng.standard_normal((784, hidden), np.float32) / np.sqrt(784), len(LRS)))
        w2.append(np.tile(rng.standard_normal(hidden, np.float32) / np.sqrt(hidden), (len(LRS), 1)))
        steps = n // BATCH
        perms.append(
            [rng.permutation(n)[: steps * BATCH].reshape(steps, BATCH) for _ in range(EPOCHS)]
        )
    params = (
        np.stack(w1).astype(np.float32),
        np.zeros((SEEDS, len(LRS) * hidden), np.float32),
        np.stack(w2).astype(np.float32),
        np.zeros((SEEDS, len(LRS)), np.float32),
    )
    return params, np.asarray(perms, np.int32).transpose(1, 2, 0, 3)  # [E, steps, S, B]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    x, y, x_test, y_test = (jnp.asarray(a) for a in load(args.data))
    lrs = jnp.asarray(LRS, jnp.float32)
    compile_s = execute_s = 0.0
    accuracy = {}
    for hidden in HIDDEN:
        params, perms = host_inputs(hidden, x.shape[0])
        args_ = (params, perms, lrs, x, y, x_test, y_test)
        t0 = time.perf_counter()
        compiled = jax.jit(train).lower(*args_).compile()
        t1 = time.perf_counter()
        acc = np.asarray(compiled(*args_))
        t2 = time.perf_counter()
        compile_s, execute_s = compile_s + t1 - t0, execute_s + t2 - t1
        accuracy.update(
            {f"h{hidden}_lr{lr:g}": float(acc[:, i].mean()) for i, lr in enumerate(LRS)}
        )
    print(json.dumps({"compile_s": compile_s, "execute_s": execute_s, "test_accuracy": accuracy}))


if __name__ == "__main__":
    main()
