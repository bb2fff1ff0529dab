"""The notes' closed-form gradients (eqs. 4-5) beside jax.grad and a central finite difference.

    python experiments/gradient_check.py [--batch 256] [--hidden 32]

On real digits, in float64. First the two worked examples as scalars, term by term:
  Example 1 (output weight):  ∂LL/∂θ^(ŷ)_j   = Σ_n (y − ŷ) · h_j
  Example 2 (hidden weight):  ∂LL/∂θ^(h)_{i,j} = Σ_n (y − ŷ) · θ^(ŷ)_j · h_j(1 − h_j) · x_i
then every layer of logistic regression (784-1, no hidden layer), a 784-32-1 and a
784-32-16-1 network in full (deepmle.core.backprop), with the largest relative difference
to jax.grad, and finite differences at sampled coordinates.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from deepmle import config as config_lib  # noqa: E402
from deepmle import data  # noqa: E402
from deepmle.core.backprop import closed_form_grad  # noqa: E402
from deepmle.core.likelihood import log_likelihood  # noqa: E402
from deepmle.core.model import init_params  # noqa: E402


def finite_difference(f, params, path: tuple[int, str, int, int], eps: float = 1e-6) -> float:
    """Central difference of f at one weight: params[layer][name][i, j]."""
    layer, name, i, j = path

    def shifted(delta: float) -> float:
        p = jax.tree.map(lambda a: a, params)
        p[layer] = dict(p[layer])
        p[layer][name] = p[layer][name].at[i, j].add(delta)
        return float(f(p))

    return (shifted(eps) - shifted(-eps)) / (2 * eps)


def rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def worked_examples(params, x, y) -> None:
    h = jax.nn.sigmoid(x @ params[0]["w"] + params[0]["b"][None, :])  # eq. 2, [n, hidden]
    y_hat = jax.nn.sigmoid(h @ params[1]["w"] + params[1]["b"][None, :])[:, 0]  # eq. 1
    grads = jax.grad(log_likelihood)(params, x, y)
    ll = lambda p: log_likelihood(p, x, y)  # noqa: E731
    j, i = 3, 14 * 28 + 14  # hidden cell 3; the centre pixel
    ex1 = float(jnp.sum((y - y_hat) * h[:, j]))
    ex2 = float(jnp.sum((y - y_hat) * params[1]["w"][j, 0] * h[:, j] * (1 - h[:, j]) * x[:, i]))
    print("Worked examples (scalars, term by term from the notes):")
    print(f"{'':28}{'closed form':>16}{'jax.grad':>16}{'finite diff':>16}")
    fd1 = finite_difference(ll, params, (1, "w", j, 0))
    fd2 = finite_difference(ll, params, (0, "w", i, j))
    print(f"{'Ex. 1  dLL/dθ^(ŷ)_3':28}{ex1:16.10f}{float(grads[1]['w'][j, 0]):16.10f}{fd1:16.10f}")
    print(
        f"{'Ex. 2  dLL/dθ^(h)_406,3':28}{ex2:16.10f}{float(grads[0]['w'][i, j]):16.10f}{fd2:16.10f}"
    )
    print()


def compare(sizes, x, y, key) -> float:
    params = jax.tree.map(lambda a: a.astype(jnp.float64), init_params(key, sizes))
    ours = closed_form_grad(params, x, y)
    auto = jax.grad(log_likelihood)(params, x, y)
    ll = lambda p: log_likelihood(p, x, y)  # noqa: E731
    rng = np.random.default_rng(0)
    worst = 0.0
    print(f"network {'-'.join(map(str, sizes))}")
    print(
        f"  {'layer':8}{'param':8}{'shape':>12}{'max |closed−grad|/max|grad|':>30}"
        f"{'max rel. vs finite diff (5 coords)':>36}"
    )
    for k, (lo, la) in enumerate(zip(ours, auto, strict=True)):
        for name in ("w", "b"):
            r = rel(lo[name], la[name])
            worst = max(worst, r)
            fd_rel = 0.0
            if name == "w":
                for _ in range(5):
                    i, j = (int(rng.integers(n)) for n in lo["w"].shape)
                    fd = finite_difference(ll, params, (k, "w", i, j))
                    fd_rel = max(fd_rel, abs(float(lo["w"][i, j]) - fd) / max(abs(fd), 1e-8))
            shape = "x".join(map(str, lo[name].shape))
            fd_text = f"{fd_rel:36.2e}" if name == "w" else f"{'—':>36}"
            print(f"  {k:<8}{name:8}{shape:>12}{r:30.2e}{fd_text}")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=32)
    args = ap.parse_args()
    ds = data.load(config_lib.DataConfig())
    x = jnp.asarray(ds.train.x[: args.batch], jnp.float64)
    y = jnp.asarray(ds.train.y[: args.batch], jnp.float64)
    print(f"{args.batch} real training digits ({int(y.sum())} ones), float64\n")
    params = jax.tree.map(
        lambda a: a.astype(jnp.float64), init_params(jax.random.key(0), (784, args.hidden, 1))
    )
    worked_examples(params, x, y)
    worst = max(
        compare((784, 1), x, y, jax.random.key(2)),  # logistic regression: no hidden layer
        compare((784, args.hidden, 1), x, y, jax.random.key(0)),
        compare((784, args.hidden, 16, 1), x, y, jax.random.key(1)),
    )
    print(f"\nlargest relative difference, closed form vs jax.grad: {worst:.2e}")


if __name__ == "__main__":
    main()
