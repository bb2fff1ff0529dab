"""Logistic regression as a network shape: ``hidden_sizes = [[]]`` (ŷ = σ(θᵀx), no hidden
layer) trains in the same sweep as the networks, through the same one definition of
training, and reaches every table, figure, TensorBoard run and ``load_run``."""

import csv

import chex
import numpy as np
import pytest

from deepmle import config as config_lib
from deepmle import sweep, train
from deepmle.analysis import plots, report, tensorboard
from deepmle.analysis.load import load_run
from deepmle.runs.results import LOGISTIC_LABEL, RunResults

from .helpers import member_alone, once

MIXED = ((), (4,), (6, 4))


def _config(**train_kw) -> config_lib.Config:
    return config_lib.Config(
        model=config_lib.ModelConfig(hidden_sizes=MIXED),
        train=config_lib.TrainConfig(
            **{"learning_rate": (0.3, 1.0), "seeds": 2, "epochs": 2, "batch_size": 64} | train_kw
        ),
    )


def test_no_hidden_layer_is_a_shape_in_a_config(tmp_path):
    config = config_lib.load(_write(tmp_path, "[model]\nhidden_sizes = [[], [32], [64, 32]]\n"))
    assert config.model.hidden_sizes == ((), (32,), (64, 32))
    assert config.shapes(784)[0] == (784, 1)  # input size from the data
    assert config.shapes(10)[0] == (10, 1)
    again = _write(tmp_path, config_lib.to_toml(config))
    assert config_lib.load(again) == config
    assert config_lib.load(_write(tmp_path, "[model]\nhidden_sizes = [[]]\n")).shapes(784) == (
        (784, 1),
    )


def _write(tmp_path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def mixed(small) -> RunResults:
    """Logistic regression beside two networks, built once per test run (read only)."""
    return load_run(
        once("logistic-mixed", lambda d: sweep.run(_config(), small, d / "run")) / "run"
    )


def test_logistic_members_equal_the_one_definition_run_alone(mixed, small):
    """The sweep's logistic members (the [784, lrs, 1] layout, left-out pixels, vmaps) equal
    member.run for one member with the same draws; and their θ is a real logistic regression:
    ŷ = σ(xθ + b) reproduces the saved test accuracy."""
    g = mixed.group(())
    assert [p["w"].shape for p in g.params] == [(2, 2, 784, 1)]
    spec = train.spec_from_config(mixed.config, (784, 1), small.train.y.shape[0])
    for s, li in [(0, 0), (1, 1)]:
        state, _, final = member_alone(spec, small, s, g.learning_rates[li])
        chex.assert_trees_all_close(g.member_params(s, li), state.params, rtol=1e-4, atol=1e-5)
        assert g.final["test_ll"][s, li] == pytest.approx(float(final["test_ll"]), rel=1e-4)
        p = g.member_params(s, li)[0]
        y_hat = 1 / (1 + np.exp(-(small.test.x @ p["w"][:, 0] + p["b"][0])))
        acc = np.mean((y_hat > 0.5) == (small.test.y > 0.5))
        assert g.final["test_accuracy"][s, li] == pytest.approx(acc, abs=1e-6)


def test_logistic_regression_is_labelled_everywhere(mixed, tmp_path):
    rows = mixed.summary
    lr_rows = [r for r in rows if r["hidden_sizes"] == LOGISTIC_LABEL]
    assert len(lr_rows) == 2 and all(r["depth"] == 0 and r["hidden_units"] == 0 for r in lr_rows)
    assert "0 (logistic)" in report.table(rows)
    with open(mixed.run_dir / "members.csv") as f:
        members = list(csv.DictReader(f))
    assert sum(m["hidden_sizes"] == "0 (logistic)" for m in members) == 4
    with open(mixed.run_dir / "summary.csv") as f:
        first = next(csv.DictReader(f))
    assert (first["hidden_sizes"], first["depth"], first["hidden_units"]) == (
        "0 (logistic)",
        "0",
        "0",
    )
    assert (mixed.run_dir / "groups" / "h0.npz").is_file()
    shapes, lrs = tensorboard.sortable_labels(mixed.groups, [0.3, 1.0])
    assert shapes == {(): "h0", (4,): "h4", (6, 4): "h6-4"}  # logistic regression sorts first
    assert tensorboard.cell_name(shapes[()], lrs[0.3]) == "h0_lr0.3"


def test_a_selected_logistic_regression_draws_one_28x28_weight_map(mixed):
    only = RunResults(
        mixed.run_dir,
        mixed.config,
        [mixed.group(())],
        report.summary_rows([mixed.group(())]),
        mixed.meta,
    )
    plt = plots._pyplot()
    fig = plots.weights(only, plt)
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 1 and images[0].get_array().shape == (28, 28)
    assert "logistic" in fig.axes[0].get_title()
    plt.close(fig)
