"""Selection on validation only, paired comparisons with the selected cell, edges, and a
readable table (the intervals themselves: test_stats.py)."""

import math

import numpy as np
import pytest

from deepmle.analysis import report, stats
from deepmle.runs.results import GroupResult


def _group(hidden, lrs, val_acc, val_ll=None, diverged=None, test_acc=None):
    s, lr = val_acc.shape
    final = {
        "train_ll": np.full((s, lr), -0.05),
        "train_accuracy": np.full((s, lr), 0.99),
        "val_ll": np.full((s, lr), -0.05) if val_ll is None else val_ll,
        "val_accuracy": val_acc,
        "test_ll": np.full((s, lr), -0.05),
        "test_accuracy": np.full((s, lr), 0.5) if test_acc is None else test_acc,
        "diverged_epoch": np.full((s, lr), -1) if diverged is None else diverged,
        "diverged_reason": np.where(
            np.full((s, lr), -1) if diverged is None else diverged >= 0, 2, 0
        ),
    }
    return GroupResult(hidden, np.arange(s), np.asarray(lrs, float), [], final, {}, {})


def test_selection_uses_validation_only_and_pairs_every_cell_with_it():
    acc = np.array([[0.97, 0.99, 0.985], [0.96, 0.98, 0.975], [0.98, 1.0, 0.995]])
    test = np.array([[1.0, 0.5, 0.5]] * 3)  # the best test accuracy is on the worst cell
    rows = report.summary_rows([_group((8,), [0.1, 1.0, 3.0], acc, test_acc=test)])
    assert [r["selected"] for r in rows] == [False, True, False]
    assert rows[1]["val_accuracy_diff_mean"] == 0 and rows[1]["val_accuracy_diff_ci95"] == 0
    assert rows[0]["val_accuracy_diff_mean"] == pytest.approx(-0.02)
    assert rows[2]["val_accuracy_diff_mean"] == pytest.approx(-0.005)
    assert rows[2]["val_accuracy_diff_ci95"] == pytest.approx(0.0, abs=1e-12)
    assert not rows[2]["indistinguishable"]  # consistently worse on every seed


def test_cells_that_cannot_be_told_apart_are_marked():
    acc = np.array([[0.98, 0.981], [0.99, 0.985], [0.97, 0.975]])
    rows = report.summary_rows([_group((8,), [0.1, 1.0], acc)])
    assert rows[1]["selected"] and rows[0]["indistinguishable"]
    assert "≈" in report.table(rows)


def test_ties_go_to_the_higher_validation_ll():
    acc = np.full((2, 2), 0.99)
    ll = np.array([[-0.05, -0.04], [-0.05, -0.04]])
    rows = report.summary_rows([_group((8,), [0.1, 1.0], acc, val_ll=ll)])
    assert [r["selected"] for r in rows] == [False, True]


def test_the_same_correct_count_is_a_tie_whatever_float32_makes_of_it():
    n = 1270  # 1 vs 2's validation digits
    a = np.array([[1260, 1259], [1259, 1260]], dtype=np.float64)  # two cells, 2519 correct each
    acc = (a / n).astype(np.float32).astype(np.float64)
    acc[:, 1] = np.array([1259.5 / n - 4e-9, 1259.5 / n + 5e-9])  # as float32 noise leaves it
    assert acc[:, 0].mean() != acc[:, 1].mean()
    ll = np.array([[-0.05, -0.04], [-0.05, -0.04]])  # the second is the more likely
    rows = report.summary_rows([_group((8,), [0.1, 1.0], acc, val_ll=ll)])
    assert report.select_best(rows) == 1


def test_selection_can_maximise_validation_ll_instead_and_never_a_test_metric():
    acc = np.array([[0.99, 0.98], [0.99, 0.98]])  # lr 0.1 is more accurate ...
    ll = np.array([[-0.06, -0.04], [-0.06, -0.04]])  # ... lr 1.0 more likely
    rows = report.summary_rows([_group((8,), [0.1, 1.0], acc, val_ll=ll)])
    assert report.select_best(rows) == 0
    assert report.select_best(rows, by=("val_ll", "val_accuracy")) == 1
    with pytest.raises(ValueError, match="validation"):
        report.select_best(rows, by=("test_accuracy",))


def test_diverged_members_are_left_out_and_an_all_diverged_grid_selects_nothing():
    acc = np.array([[0.99, 0.5], [0.98, 0.5]])
    div = np.array([[-1, 0], [-1, 0]])
    rows = report.summary_rows([_group((8,), [0.1, 1e3], acc, diverged=div)])
    assert rows[1]["diverged"] == 2 and math.isnan(rows[1]["val_accuracy_mean"])
    assert rows[0]["selected"]
    rows = report.summary_rows([_group((8,), [1e3], acc[:, 1:], diverged=div[:, 1:])])
    assert report.select_best(rows) is None and not rows[0]["selected"]


def test_a_selection_at_the_edge_of_the_grid_says_so():
    acc = np.array([[0.97, 0.98, 0.99]] * 2)
    groups = [_group((8,), [0.1, 0.3, 1.0], acc - 0.01), _group((16,), [0.1, 0.3, 1.0], acc)]
    lines = report.edge_lines(report.summary_rows(groups))
    assert any("lr 1" in line and "edge" in line and "largest" in line for line in lines)
    assert any("hidden sizes 16" in line and "edge" in line for line in lines)
    inner = np.array([[0.97, 0.99, 0.98]] * 2)
    rows = report.summary_rows([_group((8,), [0.1, 0.3, 1.0], inner)])
    assert report.edge_lines(rows) == []


def test_huge_and_tiny_numbers_print_in_scientific_notation():
    assert report._num(-1.0e29) == "-1.000e+29"
    assert report._num(-105.25) == "-105.2500"
    assert report._num(3e-7) == "3.000e-07"
    assert report._num(0.0) == "0.0000"
    rows = report.summary_rows([_group((8,), [1e30], np.array([[0.5], [0.5]]))])
    rows[0]["train_ll_mean"], rows[0]["train_ll_ci95"] = -1.0e29, 4.0e27
    table = report.table(rows)
    assert "-1.000e+29 ± 4.000e+27" in table
    assert max(len(line) for line in table.splitlines()) < 100


def test_a_cell_whose_seeds_diverged_cannot_win_on_its_survivors():
    """The hostile case: lr 10 lost 2 of 4 seeds, its 2 survivors beat lr 1 (no seed lost)."""
    acc = np.array([[0.98, 0.995], [0.981, 0.996], [0.979, 0.5], [0.98, 0.5]])
    div = np.array([[-1, -1], [-1, -1], [-1, 1], [-1, 0]])
    rows = report.summary_rows([_group((8,), [1.0, 10.0], acc, diverged=div)])
    assert [r["selected"] for r in rows] == [True, False]
    assert [r["seeds_used"] for r in rows] == [4, 2]
    assert report.selection_lines(rows) == []
    table = report.table(rows)
    assert "2 of 4" in table.splitlines()[2]  # how many seeds the mean is over
    assert "over 4 seeds" not in table


def test_a_cell_with_one_surviving_seed_is_shown_as_such_never_a_silent_nan():
    acc = np.array([[0.98, 0.999, 0.97], [0.981, 0.5, 0.972], [0.979, 0.5, 0.969]])
    div = np.array([[0, -1, 0], [-1, 0, -1], [-1, 1, -1]])  # every cell lost a seed
    rows = report.summary_rows([_group((8,), [1.0, 10.0, 0.1], acc, diverged=div)])
    assert rows[0]["selected"]  # lost 1 of 3, beats 0.1 (also 1), not 10 on its one seed
    assert rows[2]["indistinguishable"] is False and math.isfinite(
        rows[2]["val_accuracy_diff_ci95"]
    )
    assert rows[1]["val_accuracy_diff_n"] == 0 and not rows[1]["indistinguishable"]
    table = report.table(rows).splitlines()
    assert "1 of 3" in table[2] and "(no CI)" in table[2] and "?" in table[2]
    (warning,) = report.selection_lines(rows)
    assert "lost 1 of 3 seeds" in warning and "over the 2 left" in warning


def test_one_line_per_diverged_cell_with_counts_not_a_clause_per_seed():
    acc = np.full((8, 1), 0.5)
    div = np.array([[0], [1], [2], [3], [-1], [1], [2], [0]])
    (line,) = report.divergence_lines([_group((32,), [3.0], acc, diverged=div)])
    assert "7 of 8 seeds diverged at epochs 1-4" in line and len(line) < 200


def test_a_stop_for_a_worse_ll_names_the_lls_that_triggered_it():
    div = np.array([[0], [-1], [2]])
    g = _group((32,), [30.0], np.full((3, 1), 0.5), diverged=div)
    g.final["diverged_train_ll"] = np.array([[-3.4], [np.nan], [-10.25]])
    g.final["diverged_start_ll"] = np.array([[-0.7], [np.nan], [-0.69]])
    (line,) = report.divergence_lines([g])
    assert (
        "2 train LL far below its initial value (train LL -3.40 vs -0.70, -10.25 vs -0.69" in line
    )
    rows = [r for r in report.member_rows([g]) if r["diverged"]]
    assert [(r["diverged_train_ll"], r["diverged_start_ll"]) for r in rows] == [
        (pytest.approx(-3.4), pytest.approx(-0.7)),
        (pytest.approx(-10.25), pytest.approx(-0.69)),
    ]


def test_the_smallest_learning_rate_and_shape_are_edges_too():
    acc = np.array([[0.99, 0.98, 0.97]] * 2)
    groups = [_group((8,), [0.1, 0.3, 1.0], acc), _group((16,), [0.1, 0.3, 1.0], acc - 0.01)]
    lines = report.edge_lines(report.summary_rows(groups))
    assert any("lr 0.1" in line and "edge" in line and "smallest" in line for line in lines)
    assert any("hidden sizes 8" in line and "edge" in line and "smallest" in line for line in lines)


def test_a_stopped_cell_that_lost_no_seed_does_not_block_the_selection():
    """Successive halving: both cells trained to the end lost a seed, the cell stopped at a
    rung lost none. Selection is among the finished cells, so the fewest losses are counted
    among them, and one of them is selected (the better)."""
    acc = np.array([[0.97, 0.5, 0.99], [0.98, 0.99, 0.99], [0.975, 0.985, 0.99]])
    div = np.array([[-1, 2, -1], [-1, -1, -1], [2, -1, -1]])
    g = _group((8,), [0.1, 0.3, 1.0], acc, diverged=div)
    g.final["stopped_epoch"] = np.array([[-1, -1, 1]] * 3)  # lr 1.0 stopped at epoch 2
    rows = report.summary_rows([g])
    assert [r["stopped_epoch"] for r in rows] == ["", "", 1]
    assert report.select_best(rows) == 1 and rows[1]["selected"]
    assert rows[1]["diverged"] == 1 and rows[2]["diverged"] == 0


@pytest.mark.parametrize("metric", ["train_accuracy", "train_ll", "test_accuracy", "test_ll"])
def test_selection_refuses_training_metrics_as_well_as_test_ones(metric):
    rows = report.summary_rows([_group((8,), [0.1, 1.0], np.array([[0.99, 0.98]] * 2))])
    with pytest.raises(ValueError, match="validation"):
        report.select_best(rows, by=(metric,))
    with pytest.raises(ValueError, match="validation"):
        report.select_best(rows, by=("val_accuracy", metric))


@pytest.mark.parametrize(("best", "side"), [(0, "smallest"), (1, None), (2, "largest")])
def test_the_edge_of_the_grid_among_shapes_of_mixed_depths(best, side):
    """Shapes are ordered by hidden units: 8 < 6-4 (10) < 32, whatever their depth or how
    their labels sort as text."""
    shapes = [(8,), (6, 4), (32,)]
    acc = [np.full((2, 3), 0.99 if i == best else 0.97) for i in range(3)]
    acc[best][:, 1] = 0.995  # an inner learning rate: only the shape may be at an edge
    rows = report.summary_rows(
        [_group(h, [0.1, 0.3, 1.0], a) for h, a in zip(shapes, acc, strict=True)]
    )
    label = ("8", "6-4", "32")[best]
    assert next(r for r in rows if r["selected"])["hidden_sizes"] == label
    lines = report.edge_lines(rows)
    if side is None:
        assert lines == []
    else:
        (line,) = lines
        assert f"hidden sizes {label} are at the edge" in line and f"the {side} swept" in line


def test_the_paired_difference_skips_the_seed_the_selected_cell_lost():
    """Every cell lost a seed, each a different one: lr 1.0 (selected) lost seed 0, lr 0.1
    seed 3. lr 0.1's difference is over seeds 1 and 2, where both have a value."""
    acc = np.array([[0.5, 0.98], [0.97, 0.99], [0.96, 0.985], [0.9, 0.5]])
    div = np.array([[-1, 0], [-1, -1], [-1, -1], [1, -1]])
    rows = report.summary_rows([_group((8,), [0.1, 1.0], acc, diverged=div)])
    assert [r["selected"] for r in rows] == [False, True]
    assert rows[0]["val_accuracy_diff_n"] == 2
    assert rows[0]["val_accuracy_diff_mean"] == pytest.approx(-0.0225)
    assert rows[0]["val_accuracy_diff_ci95"] == pytest.approx(
        stats.t_quantile(1) * np.std([-0.02, -0.025], ddof=1) / np.sqrt(2)
    )
    valid = np.where(div >= 0, np.nan, acc)  # the selected cell's lost seed is the NaN in b
    mean, half = stats.paired_diff_ci95(valid[:, 0], valid[:, 1])
    assert mean == pytest.approx(-0.0225) and math.isfinite(half)


def test_a_temperature_interval_never_reaches_zero_or_below():
    row = {"selected": True, "test_ece_mean": 0.01, "test_ece_ci95": 0.001,
           "test_ece_ts_mean": 0.01, "test_ece_ts_ci95": 0.001}  # fmt: skip
    wide = report.calibration_lines([row | {"temperature_mean": 0.49, "temperature_ci95": 0.62}])
    assert "T 0.4900 (95% interval 0 < T <= 1.1100)" in wide[1] and "±" not in wide[1].split(")")[0]
    narrow = report.calibration_lines([row | {"temperature_mean": 1.2, "temperature_ci95": 0.1}])
    assert "T 1.2000 ± 0.1000" in narrow[1]


def test_no_selected_legend_when_every_member_diverged():
    acc = np.full((2, 3), np.nan)
    rows = report.summary_rows([_group((8,), [0.1, 1.0, 3.0], acc, diverged=np.zeros((2, 3)))])
    assert not any(r["selected"] for r in rows)
    assert "selected" not in report.table(rows)
