"""Research answer 3: does the chain rule survive depth?

    python experiments/depth.py            # writes experiments/results/depth.{json,png}
    python experiments/depth.py --smoke    # seconds, into a temporary directory

Sigmoid networks of 1 to 8 hidden layers of 32 cells against tanh and relu at the same depths,
on the embedded 1-vs-2 data, each (activation, depth) trained through ``deepmle.sweep.run`` over
a small list of learning rates and seeds; the learning rate is selected on validation accuracy
and test accuracy is reported for it alone (mean ± 95% Student-t half-width over seeds).

Eq. 5 is why depth should hurt σ: a weight k layers below the output gets a gradient that is a
product of k factors ∂h/∂(pre-activation) = h(1−h) = σ'(z) ≤ 1/4, each times a weight matrix.
So the script also measures each layer's gradient norm ‖∂LL/∂W_layer‖ (of the mean LL on a
fixed batch of training digits, mean over seeds) at initialisation and after one epoch of
training at the selected learning rate.
"""

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from deepmle import config, data, likelihood, model, results, runtime, sweep
from deepmle.analysis import inference, report, stats
from deepmle.core import registry

import reproduce

ACTIVATIONS = ("sigmoid", "tanh", "relu")
COLORS = {"sigmoid": "tab:blue", "tanh": "tab:orange", "relu": "tab:green"}
GRAD_BATCH = 512
"""The fixed batch for gradient norms: the first 512 training digits."""


class Plan(NamedTuple):
    depths: tuple[int, ...]
    width: int
    learning_rates: tuple[float, ...]
    seeds: int
    epochs: int


FULL = Plan(
    depths=(1, 2, 3, 4, 5, 6, 7, 8),
    width=32,
    learning_rates=(0.1, 0.3, 1.0, 3.0, 10.0),
    seeds=8,
    epochs=5,
)
SMOKE = Plan(depths=(1, 2), width=8, learning_rates=(0.3, 1.0), seeds=2, epochs=1)
REPRODUCED = (("sigmoid", 4),)
"""The cells CI retrains (experiments/reproduce.py): 4 sigmoid layers, the depth where the
divergence guard once stopped networks that train."""


def sweep_config(plan: Plan, activation: str) -> config.Config:
    """Every depth of one activation as one sweep: depths × learning rates × seeds."""
    return config.from_dict(
        {
            "model": {
                "hidden_sizes": [[plan.width] * d for d in plan.depths],
                "activation": activation,
            },
            "train": {
                "learning_rate": list(plan.learning_rates),
                "seeds": plan.seeds,
                "epochs": plan.epochs,
            },
        },
        name=f"depth_{activation}",
    )


def select(group: results.GroupResult, plan: Plan) -> dict:
    """The learning rate of one (activation, depth) the library selects
    (``report.select_best``: the fewest diverged seeds, then the highest mean validation
    accuracy, ties validation LL), with its test accuracy and every lr's record. Its means are
    over all its seeds (a diverged one, rare under the guard's margin, at its parameters from
    before the epoch that failed); ``diverged_seeds`` says how many.

    Test accuracy over seeds is often bimodal here (a seed trains, or stays at the majority
    class): the cell counts the seeds that trained (``inference.TRAINED_RULE`` on each seed's
    validation accuracy) and gives the t half-width only when all or none did (else NaN; the
    half-width over all seeds stays in ``test_accuracy_ci95_all_seeds``)."""
    final = group.final
    val = final["val_accuracy"].mean(axis=0)
    best = report.select_best(report.summary_rows([group]))
    if best is None:  # every member of every lr diverged: the least bad on validation
        best = max(range(val.size), key=lambda i: (val[i], final["val_ll"][:, i].mean()))
    lr = float(group.learning_rates[best])
    diverged = (final["diverged_epoch"] >= 0).sum(axis=0)
    val_m, val_hw = stats.mean_ci95(final["val_accuracy"][:, best])
    test_m, test_hw = stats.mean_ci95(final["test_accuracy"][:, best])
    trained = inference.trained(final["val_accuracy"])  # [seeds, lrs]
    outcome = inference.seed_outcome(final["test_accuracy"][:, best], trained[:, best])
    return {
        "selected_lr": lr,
        "selected_lr_at_edge": lr in (min(plan.learning_rates), max(plan.learning_rates)),
        "diverged_seeds": int(diverged[best]),
        "val_accuracy_mean": val_m,
        "val_accuracy_ci95": val_hw,
        "test_accuracy_mean": test_m,
        "test_accuracy_ci95": test_hw if outcome.n_trained in (0, outcome.n) else float("nan"),
        "test_accuracy_ci95_all_seeds": test_hw,
        "seeds": int(final["val_accuracy"].shape[0]),
        "trained_seeds": outcome.n_trained,
        "test_accuracy_trained_mean": outcome.mean_trained,
        "test_accuracy_untrained_mean": outcome.mean_untrained,
        "test_accuracy_outcome": outcome.text(),
        "trained_rule": inference.TRAINED_RULE,
        "trained_by_lr": {
            str(float(lr)): int(k)
            for lr, k in zip(group.learning_rates, trained.sum(axis=0), strict=True)
        },
        "val_accuracy_by_lr": {
            str(float(lr)): float(v) for lr, v in zip(group.learning_rates, val, strict=True)
        },
        "diverged_by_lr": {
            str(float(lr)): int(d) for lr, d in zip(group.learning_rates, diverged, strict=True)
        },
    }


def grad_norms(params: list[dict], x: jax.Array, y: jax.Array, activation: str) -> np.ndarray:
    """‖∂(LL/n)/∂W_layer‖ (Frobenius, weights only) for params stacked over seeds, averaged
    over them: one number per layer, from the first hidden layer to the output."""

    def norms(p):
        g = jax.grad(likelihood.mean_log_likelihood)(p, x, y, registry.activation(activation))
        return jnp.stack([jnp.linalg.norm(layer["w"]) for layer in g])

    return np.asarray(jnp.mean(jax.jit(jax.vmap(norms))(params), axis=0), np.float64)


def study(plan: Plan, ds: data.Dataset, runs_dir: Path) -> dict:
    """Train and measure every (activation, depth); the JSON-ready results.

    Per activation, one sweep of every depth for ``plan.epochs`` (accuracy, lr selection) and
    one of a single epoch (the parameters whose gradient norms are "after one epoch", at the
    selected lr: the same seeds, so the same initial weights and first-epoch minibatches as
    the trained members); the norms "at init" are of ``init_params`` draws, one per seed."""
    x, y = jnp.asarray(ds.train.x[:GRAD_BATCH]), jnp.asarray(ds.train.y[:GRAD_BATCH])
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(2024), s))(jnp.arange(plan.seeds))
    out = {}
    for activation in ACTIVATIONS:
        t = time.perf_counter()
        cfg = sweep_config(plan, activation)
        trained = sweep.run(cfg, ds, runs_dir / activation).results
        if plan.epochs == 1:  # the smoke plan: the trained members are "after one epoch"
            after_one = trained
        else:
            one_epoch = replace(cfg, train=replace(cfg.train, epochs=1))
            after_one = sweep.run(one_epoch, ds, runs_dir / f"{activation}_epoch1").results
        out[activation] = {}
        for depth, hidden in zip(plan.depths, cfg.model.hidden_sizes, strict=True):
            cell = select(trained.group(hidden), plan)
            sizes = (784, *hidden, 1)
            init = jax.vmap(lambda k, sizes=sizes: model.init_params(k, sizes))(keys)
            g1 = after_one.group(hidden)
            li = list(g1.learning_rates).index(cell["selected_lr"])
            epoch1 = [{k: v[:, li] for k, v in layer.items()} for layer in g1.params]
            out[activation][str(depth)] = {
                **cell,
                "grad_norm_init": grad_norms(init, x, y, activation).tolist(),
                "grad_norm_epoch1": grad_norms(epoch1, x, y, activation).tolist(),
            }
            if (activation, depth) in REPRODUCED:
                out[activation][str(depth)]["reproduce"] = reproduce.block(
                    f"{activation}, {depth} hidden layers, lr {cell['selected_lr']:g}",
                    cfg, trained, hidden, cell["selected_lr"],
                )  # fmt: skip
        print(f"{activation}: {time.perf_counter() - t:.0f} s")
    return out


def ratio_per_layer(cells: dict, plan: Plan) -> dict:
    """By what factor each extra hidden layer shrinks the first layer's gradient norm, as the
    geometric mean over the depths (the constant c of ‖∂LL/∂W₁‖ ∝ c^depth)."""
    first, last = plan.depths[0], plan.depths[-1]
    return {
        key: (cells[str(last)][key][0] / cells[str(first)][key][0]) ** (1 / (last - first))
        for key in ("grad_norm_init", "grad_norm_epoch1")
    }


def draw(res: dict, plan: Plan, path_main: Path, path_layers: Path) -> None:
    """depth.png: accuracy vs depth with 95% bands, the first layer's gradient norm vs depth
    with the (1/4)^depth of eq. 5, and per-layer norms at init of the deepest networks;
    depth_layers.png: per-layer norms of every depth, at init and after one epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = np.array(plan.depths)
    fig, (acc_ax, first_ax, layer_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    for act in ACTIVATIONS:
        cells = [res[act][str(d)] for d in plan.depths]
        m = np.array([100 * c["test_accuracy_mean"] for c in cells])
        hw = np.array([100 * c["test_accuracy_ci95"] for c in cells])
        acc_ax.plot(depths, m, "o-", color=COLORS[act], label=act)
        acc_ax.fill_between(depths, m - hw, m + hw, color=COLORS[act], alpha=0.25)
        for d, mm, c in zip(depths, m, cells, strict=True):
            if 0 < c["trained_seeds"] < c["seeds"]:  # bimodal: counts, no band
                acc_ax.annotate(f"{c['trained_seeds']}/{c['seeds']} trained", (d, mm),
                                xytext=(3, -10), textcoords="offset points", fontsize=7,
                                color=COLORS[act])  # fmt: skip
        first_ax.plot(
            depths, [c["grad_norm_init"][0] for c in cells], "o-", color=COLORS[act],
            label=f"{act}, init",
        )  # fmt: skip
        first_ax.plot(
            depths, [c["grad_norm_epoch1"][0] for c in cells], "s--", color=COLORS[act],
            alpha=0.6, label=f"{act}, after 1 epoch",
        )  # fmt: skip
        deepest = res[act][str(plan.depths[-1])]["grad_norm_init"]
        layer_ax.plot(np.arange(1, len(deepest) + 1), deepest, "o-", color=COLORS[act], label=act)
    sig1 = res["sigmoid"][str(plan.depths[0])]["grad_norm_init"][0]
    first_ax.plot(
        depths, sig1 * 0.25 ** (depths - depths[0]), ":", color="black",
        label="× 1/4 per extra layer (σ' ≤ 1/4)",
    )  # fmt: skip
    acc_ax.set(
        xlabel=f"hidden layers ({plan.width} cells each)",
        xticks=depths,
        ylabel="test accuracy (%), validation-selected lr",
        title=f"accuracy after {plan.epochs} epoch(s), mean of {plan.seeds} seeds;\n"
        "95% band where every seed trained (val acc ≥ 0.9), else counts",
    )
    acc_ax.legend()
    first_ax.set(
        yscale="log",
        xlabel="hidden layers",
        xticks=depths,
        ylabel="‖∂LL/∂W₁‖ (first layer, mean LL)",
        title="gradient reaching the first layer",
    )
    first_ax.legend(fontsize=7)
    layer_ax.set(
        yscale="log",
        xlabel="layer (1 = first hidden, last = output)",
        xticks=np.arange(1, plan.depths[-1] + 2),
        ylabel="‖∂LL/∂W_layer‖ at initialisation",
        title=f"per layer, {plan.depths[-1]} hidden layers, at init",
    )
    layer_ax.legend()
    for ax in (acc_ax, first_ax, layer_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path_main, dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5), sharey=True)
    cmap = plt.get_cmap("viridis")
    for col, act in enumerate(ACTIVATIONS):
        for row, (key, when) in enumerate(
            [("grad_norm_init", "at init"), ("grad_norm_epoch1", "after 1 epoch")]
        ):
            ax = axes[row, col]
            for k, d in enumerate(plan.depths):
                norms = res[act][str(d)][key]
                color = cmap(k / max(len(plan.depths) - 1, 1))
                ax.plot(np.arange(1, len(norms) + 1), norms, "o-", color=color, label=f"{d}")
            ax.set(yscale="log", title=f"{act}, {when}", xlabel="layer (last = output)")
            ax.set_xticks(np.arange(1, plan.depths[-1] + 2))
            ax.grid(alpha=0.3)
        axes[0, col].legend(title="hidden layers", fontsize=7, ncol=2)
    axes[0, 0].set_ylabel("‖∂LL/∂W_layer‖")
    axes[1, 0].set_ylabel("‖∂LL/∂W_layer‖")
    fig.tight_layout()
    fig.savefig(path_layers, dpi=90)
    plt.close(fig)


def main() -> None:
    from deepmle.errors import UserError

    import plumbing

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny plan, seconds, into a temp dir")
    ap.add_argument(
        "--out",
        type=plumbing.path_argument,
        help="default: experiments/results (smoke: a temp dir)",
    )
    args = ap.parse_args()
    runtime.setup()
    plan = SMOKE if args.smoke else FULL
    out = args.out or (
        Path(tempfile.mkdtemp(prefix="depth-smoke-"))
        if args.smoke
        else Path(__file__).parent / "results"
    )
    try:  # before the study, not after it: an --out that cannot take the files loses nothing
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise UserError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    started = time.perf_counter()
    ds = data.load(config.DataConfig())
    with tempfile.TemporaryDirectory() as runs:
        res = study(plan, ds, Path(runs))
    wall = time.perf_counter() - started
    checks = [c.pop("reproduce") for act in res.values() for c in act.values() if "reproduce" in c]
    record = {
        "question": "Does the chain rule survive depth?",
        "command": "python experiments/depth.py" + (" --smoke" if args.smoke else ""),
        "plan": plan._asdict(),
        "grad_batch": GRAD_BATCH,
        "selection": "per (activation, depth), the learning rate the library selects on "
        "validation (report.select_best: fewest diverged seeds, then mean validation accuracy, "
        "ties validation LL); test accuracy for it alone, over all its seeds (a member stopped "
        "as diverged at its parameters from before the failed epoch)",
        "first_layer_factor_per_extra_layer": {
            act: ratio_per_layer(res[act], plan) for act in ACTIVATIONS
        },
        "grad_norms": "mean over seeds of the Frobenius norm of the gradient of the mean LL "
        "on the first grad_batch training digits, weights of each layer from the first hidden "
        "to the output; at init (init_params, one draw per seed) and after one epoch at the "
        "selected lr (a 1-epoch sweep of the same config)",
        "wall_s": round(wall, 1),
        "cpu_cores": os.cpu_count(),
        "reproduce": checks,
        "results": res,
    }
    (out / "depth.json").write_text(json.dumps(record, indent=1) + "\n")
    draw(res, plan, out / "depth.png", out / "depth_layers.png")
    for act in ACTIVATIONS:
        cells = [res[act][str(d)] for d in plan.depths]
        line = "  ".join(
            f"{d}:{100 * c['test_accuracy_mean']:.1f}±{100 * c['test_accuracy_ci95']:.1f}"
            for d, c in zip(plan.depths, cells, strict=True)
        )
        factor = record["first_layer_factor_per_extra_layer"][act]["grad_norm_init"]
        print(f"{act:8} test accuracy by depth  {line}")
        print(f"{'':8} ‖∂LL/∂W₁‖ at init shrinks ×{factor:.3f} per extra hidden layer")
    print(f"wrote {out / 'depth.json'}, depth.png, depth_layers.png in {wall:.0f} s")


if __name__ == "__main__":
    import sys

    import plumbing

    sys.exit(plumbing.entry(main, interrupted="its runs were temporary: nothing is saved"))
