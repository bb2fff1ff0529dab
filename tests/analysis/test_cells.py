"""A shape's selected cell: its per-seed values (diverged members left out), the library's
selection on validation, paired differences over seeds and over seeds and digits, its members'
predictions from saved params, and what a study's config trains."""

import itertools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepmle.analysis import cells, inference, report
from deepmle.core.model import forward
from deepmle.runs.results import GroupResult

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _group(val_acc, test_acc=None, val_ll=None, diverged=None, lrs=None, params=()):
    """One shape (8,) with final metrics [seeds, lrs]; ``diverged``: bool [seeds, lrs]."""
    val_acc = np.asarray(val_acc, np.float32)
    s, n_lr = val_acc.shape
    div = np.zeros((s, n_lr), bool) if diverged is None else np.asarray(diverged)
    final = {
        "val_accuracy": val_acc,
        "test_accuracy": np.full((s, n_lr), 0.9, np.float32) if test_acc is None else test_acc,
        "val_ll": np.full((s, n_lr), -0.1, np.float32) if val_ll is None else val_ll,
        "test_ll": np.full((s, n_lr), -0.2, np.float32),
        "diverged_epoch": np.where(div, 0, -1),
        "diverged_reason": np.where(div, 2, 0),
        "diverged_train_ll": np.where(div, -5.0, np.nan),
        "diverged_start_ll": np.where(div, -0.7, np.nan),
    }
    lrs = np.arange(1.0, n_lr + 1) if lrs is None else np.asarray(lrs, float)
    return GroupResult((8,), np.arange(s), lrs, list(params), final, {}, {})


def test_a_cell_holds_each_seeds_metrics_with_diverged_members_as_nan():
    acc = [[0.9, 0.95, 0.8], [0.92, 0.97, 0.1], [0.94, 0.99, 0.85]]
    div = [[False, False, False], [False, False, True], [False, False, False]]
    test = np.array([[0.5, 0.96, 0.7]] * 3, np.float32)
    c = cells.cell(_group(acc, test_acc=test, diverged=div, lrs=[0.1, 1.0, 3.0]), 2)
    assert (c.hidden, c.lr, c.lr_at_edge, c.seeds, c.diverged) == ((8,), 3.0, True, 3, 1)
    assert not set(c.values) & {"diverged_epoch", "diverged_reason", "diverged_train_ll"}
    np.testing.assert_array_equal(np.isnan(c.values["val_accuracy"]), [False, True, False])
    np.testing.assert_allclose(c.values["val_error"], [0.2, np.nan, 0.15], rtol=1e-6)
    np.testing.assert_allclose(c.values["test_error"], [0.3, np.nan, 0.3], rtol=1e-6)
    s = c.summary("val_accuracy")
    assert s["n"] == 2 and s["mean"] == pytest.approx(0.825) and s["ci95"] > 0
    record = c.record(["test_error"])
    assert record["selected_lr"] == 3.0 and record["diverged_seeds"] == 1
    assert record["test_error"]["n"] == 2
    middle = cells.cell(_group(acc, lrs=[0.1, 1.0, 3.0]), 1)
    assert not middle.lr_at_edge and middle.diverged == 0


def test_select_is_the_librarys_choice_on_validation_never_test():
    acc = [[0.90, 0.97, 0.95], [0.91, 0.98, 0.96]]
    ll = np.array([[-0.3, -0.2, -0.05]] * 2, np.float32)  # the best LL is another cell
    test = np.array([[1.0, 0.5, 0.5]] * 2, np.float32)  # the best test is the worst on val
    g = _group(acc, test_acc=test, val_ll=ll, lrs=[0.1, 1.0, 3.0])
    assert cells.select(g).lr == 1.0
    assert report.select_best(report.summary_rows([g])) == 1
    assert cells.select(g, by=("val_ll",)).lr == 3.0
    lost = _group(acc, diverged=np.ones((2, 3), bool))
    with pytest.raises(cells.AllDiverged, match=r"hidden sizes \[8\] diverged"):
        cells.select(lost)
    with pytest.raises(ValueError, match="validation metrics"):
        cells.select(g, by=("test_accuracy",))


def test_paired_is_over_the_seeds_where_neither_diverged():
    acc = [[0.90, 0.95], [0.80, 0.87], [0.70, 0.10], [0.60, 0.66]]
    div = [[False, False], [False, False], [False, True], [False, False]]
    g = _group(acc, diverged=div)
    a, b = cells.cell(g, 1), cells.cell(g, 0)
    d = cells.paired(a, b, "val_accuracy")
    assert d["n"] == 3 and d["mean"] == pytest.approx((0.05 + 0.07 + 0.06) / 3, rel=1e-5)
    assert d["ci95"] == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-4)
    assert cells.paired(b, b, "val_accuracy") == {"mean": 0.0, "ci95": 0.0, "n": 4}


def _params(seeds, lrs, hidden=(5,)):
    rng = np.random.default_rng(3)
    return [
        {
            "w": rng.normal(0, 1 / np.sqrt(a), (seeds, lrs, a, b)).astype(np.float32),
            "b": rng.normal(0, 0.5, (seeds, lrs, b)).astype(np.float32),
        }
        for a, b in itertools.pairwise((784, *hidden, 1))
    ]


def test_a_cells_logits_and_correct_digits_are_its_own_members(small):
    g = _group(np.full((2, 3), 0.9), lrs=[0.1, 1.0, 3.0], params=_params(2, 3))
    c = cells.cell(g, 1)
    x, y = small.test.x[:64], small.test.y[:64]
    z = cells.logits(g, c, x, "sigmoid")
    assert z.shape == (2, 64)
    for s in range(2):  # the members at lr 1.0 (index 1), not another learning rate's
        want = forward(g.member_params(s, 1), jnp.asarray(x), jax.nn.sigmoid)
        np.testing.assert_allclose(z[s], want, rtol=1e-5, atol=1e-5)
        assert not np.allclose(z[s], forward(g.member_params(s, 0), jnp.asarray(x), jax.nn.sigmoid))
    right = cells.correct(g, c, small.test._replace(x=x, y=y), "sigmoid")
    np.testing.assert_array_equal(right, (z > 0) == (y > 0.5))
    assert right.dtype == bool and 0 < right.mean() < 1


def test_bootstrap_and_minus_reference_leave_a_diverged_seed_out(rng):
    test = np.array([[0.9, 0.8]] * 3, np.float32)
    g = _group(np.full((3, 2), 0.9), test_acc=test, diverged=[[0, 0], [0, 1], [0, 0]])
    a, b = cells.cell(g, 0), cells.cell(g, 1)
    ok_a, ok_b = rng.random((3, 40)) < 0.9, rng.random((3, 40)) < 0.8
    r = cells.bootstrap(ok_a, a, ok_b, b)
    want = inference.paired_bootstrap(ok_a, ok_b, valid=[True, False, True], draws=10_000)
    assert r == want._asdict() and r["n_seeds"] == 2 and r["n_digits"] == 40
    err = lambda ok: 1 - ok.mean()  # noqa: E731
    assert r["diff"] == pytest.approx(err(ok_a[[0, 2]]) - err(ok_b[[0, 2]]))
    reference = rng.random(40) < 0.85
    m = cells.minus_reference(ok_b, b, reference)
    assert m["n_seeds"] == 2 and m["diff"] == pytest.approx(err(ok_b[[0, 2]]) - err(reference))
    assert cells.minus_reference(ok_a, a, reference)["n_seeds"] == 3
    assert cells.BOOTSTRAP.startswith("bootstrap:") and "10000" in cells.BOOTSTRAP


def test_lr_table_is_what_the_selection_saw():
    g = _group([[0.90, 0.97, 0.5], [0.91, 0.98, 0.5]], diverged=[[0, 0, 1], [0, 0, 0]])
    table = cells.lr_table(g)
    assert [t["lr"] for t in table] == [1.0, 2.0, 3.0]
    assert [t["selected"] for t in table] == [False, True, False]
    assert [t["diverged_seeds"] for t in table] == [0, 0, 1]
    assert table[2]["seeds_used"] == 1 and table[1]["val_accuracy_mean"] == pytest.approx(0.975)


def test_pair_config_replaces_the_digits_and_grid_says_what_it_trains():
    cfg = cells.pair_config(CONFIGS / "pairs.toml", (4, 9), ["train.seeds=3", "train.epochs=1"])
    assert tuple(cfg.data.digits) == (4, 9)
    g = cells.grid(cfg)
    assert g["seeds"] == 3 and g["epochs"] == 1
    assert (
        g["hidden_sizes"] == [list(h) for h in cfg.model.hidden_sizes] and [] in g["hidden_sizes"]
    )
    assert g["learning_rates"] == list(cfg.train.learning_rate)


def test_fmt_is_mean_and_half_width_in_points_and_never_minus_zero():
    assert cells.fmt({"mean": 0.01234, "ci95": 0.005}) == "1.23 ± 0.50"
    assert cells.fmt({"mean": -0.00001, "ci95": 0.001}) == "0.00 ± 0.10"
    assert cells.fmt({"mean": 0.0014, "ci95": 0.0005}, 1, 4) == "0.0014 ± 0.0005"
