"""Apply deliberate one-line bugs to the source, one at a time, and show that a test fails.

    python tests/tools/deliberate_bugs.py [--only WORD]

Each bug is found by meaning, not by line: a module, a function in it (found with ``ast``),
and a pattern that must occur exactly once inside that function. The file is restored
afterwards (also on Ctrl-C). Every bug should end "caught"; "MISSED" means the suite lets
that bug through, and "TEST RUN BROKEN" that the tests could not run at all. Exit code 0
only if every bug is caught; 2 if pytest is not installed.
"""

import argparse
import ast
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]


class Bug(NamedTuple):
    name: str
    module: str
    """Dotted module name, e.g. ``deepmle.core.member``."""
    function: str
    """The function (or ``Class.method``) whose body holds the edit."""
    pattern: str
    """A regular expression that matches once in that function's source."""
    replacement: str
    tests: str
    """What pytest runs: a file, or ``file::test``."""


BUGS = [
    Bug("every epoch reuses the same shuffle (host)", "deepmle.population.randomness",
        "epoch_orders", r"rng\.permutation\(n_train\)",
        "stream(seed, SHUFFLE).permutation(n_train)", "tests/population/test_randomness.py"),
    Bug("every epoch reuses the same shuffle (JAX key)", "deepmle.core.member", "key_orders",
        r"jax\.random\.fold_in\(key, epoch\)", "key", "tests/test_train.py"),
    Bug("divergence guard never freezes", "deepmle.core.member", "end_epoch",
        r"jnp\.where\(accept, new, old\)", "new", "tests/test_train.py"),
    Bug("1.96 instead of Student's t", "deepmle.analysis.stats", "mean_ci95",
        r"t_quantile\(n - 1\)", "1.96", "tests/analysis/test_stats.py"),
    Bug("standard deviation with ddof=0", "deepmle.analysis.stats", "mean_ci95",
        r"ddof=1", "ddof=0", "tests/analysis/test_stats.py"),
    Bug("saved group reused despite a different recorded identity", "deepmle.runs.store",
        "read_group", r"record\.get\(\"identity\"\) != identity\([^)]*\)", "False",
        "tests/runs/test_store.py"),
    Bug("padding members leak into the curves", "deepmle.population.programs", "group_arrays",
        r"(np\.stack\(\[c\[k\] for c in curves\], axis=-1\))\[:s, :c\]", r"\1",
        "tests/population/test_programs.py::test_four_devices_give_the_same_results"),
    Bug("the divergence tolerance with the wrong sign", "deepmle.core.member", "end_epoch",
        r"start_log_prior - WORSE_NATS", "start_log_prior + WORSE_NATS", "tests/test_train.py"),
    Bug("the divergence baseline over every example, not those the epoch saw",
        "deepmle.core.member", "end_epoch", r"seed\.start_lls\)\[seed\.order\]",
        "seed.start_lls)",
        "tests/test_train.py"),
    Bug("a seed's shuffle stream is the next seed's initialisation stream",
        "deepmle.population.randomness", "stream", r"SeedSequence\(\[int\(seed\), purpose\]\)",
        "SeedSequence(int(seed) + purpose)", "tests/population/test_randomness.py"),
    Bug("a file rewritten in place, not beside and renamed", "deepmle.runs.store",
        "atomic_write_bytes", r"tempfile\.mkstemp\([^\n]*\)",
        "os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), None",
        "tests/runs/test_store.py::test_a_rewrite_refused_midway_keeps_the_old_file_whole"),
    Bug("only the largest learning rate counts as an edge", "deepmle.analysis.report",
        "edge_lines", r"v in \(values\[0\], values\[-1\]\)", "v == values[-1]",
        "tests/analysis/test_report.py"),
    Bug("a test metric in the HParams experiment", "deepmle.analysis.tensorboard", "write",
        r"for m in METRICS(\s+)if m\.tensorboard\]",
        r"for m in METRICS\1if m.tensorboard or m.is_test]",
        "tests/analysis/test_tensorboard.py"),
    Bug("momentum and Adam forget their state between steps", "deepmle.core.member", "step",
        r"opt_state=opt_state\)", "opt_state=member.opt_state)",
        "tests/core/test_member.py"),
    Bug("the optimizer state re-initialised at every step", "deepmle.core.member", "step",
        r"\.update\(grads, opt_state, params\)",
        ".update(grads, spec.optimizer(member.hparams).init(params), params)",
        "tests/core/test_member.py"),
    Bug("labels of another length than the batch broadcast", "deepmle.core.checks", "labels",
        r"if shape != \(n,\):", "if len(shape) != 1:",
        "tests/core/test_checks.py::"
        "test_labels_of_another_length_than_the_batch_are_refused_not_broadcast"),
    Bug("momentum 1.0 accepted", "deepmle.core.hyperparams", "HYPERPARAMETERS",
        r"low=0\.0, high=1\.0, low_open=False, high_open=True",
        "low=0.0, high=1.0, low_open=False, high_open=False",
        "tests/test_config.py::test_momentum_must_be_below_one"),
    Bug("every seed starts from seed 0's weights", "deepmle.population.randomness",
        "init_normals", r"stream\(seed, INIT\)", "stream(0, INIT)",
        "tests/population/test_randomness.py::test_seeds_start_from_different_weights_of_their_own"),
    Bug("a shape's seeds all drawn from seed 0's initialisation", "deepmle.population.groups",
        "_draws", r"init_normals\(s, ", "init_normals(0, ",
        "tests/population/test_groups.py"),
    Bug("chunks of seeds cut from the orders by reshape, not by moving the axis",
        "deepmle.population.programs", "_by_chunks",
        r"jnp\.moveaxis\(order\.reshape\(order\.shape\[0\], n // chunk, chunk, -1\), 1, 0\)",
        "order.reshape(n // chunk, order.shape[0], chunk, -1)",
        "tests/population/test_programs.py::"
        "test_every_chunking_gives_each_seed_its_own_state_and_minibatches"),
    Bug("an npz pair sorted on its way to the test split", "deepmle.data", "_load_npz_source",
        r"a\[\"y_test\"\], digits\)", 'a["y_test"], tuple(sorted(digits)))',
        "tests/test_data.py::test_npz_source_any_pair"),
    Bug("an embedded array checked against any digit's checksum, not its own",
        "deepmle.data", "load_embedded", r"!= expected\[name\]", "not in expected.values()",
        "tests/test_data.py::test_a_digits_arrays_swapped_for_anothers_are_refused"),
    Bug("the fewest lost seeds counted over stopped cells too", "deepmle.analysis.report",
        "select_best", r"for r in alive\)", "for r in rows)",
        "tests/analysis/test_report.py::test_a_stopped_cell_that_lost_no_seed_does_not_block_the_selection"),
    Bug("selection refuses test metrics only, not training ones", "deepmle.analysis.report",
        "select_best", r"not k\.startswith\(\"val_\"\)", 'k.startswith("test_")',
        "tests/analysis/test_report.py::test_selection_refuses_training_metrics_as_well_as_test_ones"),
    Bug("shapes ordered by depth before hidden units", "deepmle.analysis.report", "edge_lines",
        r"\(r\[\"hidden_units\"\], r\[\"depth\"\]\)", '(r["depth"], r["hidden_units"])',
        "tests/analysis/test_report.py::test_the_edge_of_the_grid_among_shapes_of_mixed_depths"),
    Bug("shapes ordered by their labels as text", "deepmle.analysis.report", "edge_lines",
        r"sorted\(size, key=size\.__getitem__\)", "sorted(size)",
        "tests/analysis/test_report.py::test_the_edge_of_the_grid_among_shapes_of_mixed_depths"),
    Bug("pairs kept where the first cell has a value, the selected one maybe not",
        "deepmle.analysis.stats", "paired_diff_ci95",
        r"both = np\.isfinite\(a\) & np\.isfinite\(b\)", "both = np.isfinite(a)",
        "tests/analysis/test_report.py::test_the_paired_difference_skips_the_seed_the_selected_cell_lost"),
    Bug("paired seeds counted where the cell has a value, not both", "deepmle.analysis.report",
        "summary_rows", r"np\.isfinite\(cells\[i\]\) & np\.isfinite\(cells\[best\]\)",
        "np.isfinite(cells[i])",
        "tests/analysis/test_report.py::test_the_paired_difference_skips_the_seed_the_selected_cell_lost"),
    Bug("the figures' seed picked on test accuracy", "deepmle.analysis.plots",
        "selected_member", r"g\.final\[\"val_accuracy\"\]\[:, li\]",
        'g.final["test_accuracy"][:, li]',
        "tests/analysis/test_plots.py::"
        "test_weights_and_misclassified_show_the_seed_best_on_validation_never_on_test"),
    Bug("a rung ranks on its segment's first epoch, not its own", "deepmle.population.search",
        "run", r"\[:, li : li \+ 1, end - 1\]", "[:, li : li + 1, start]",
        "tests/population/test_halving.py::"
        "test_with_eta_3_each_rung_ranks_on_its_own_epoch_and_keeps_a_third"),
    Bug("halving keeps half whatever eta", "deepmle.population.halving", "keep",
        r"keep_count\(n, config\.search\.eta\)", "keep_count(n, 2)",
        "tests/population/test_halving.py::"
        "test_with_eta_3_each_rung_ranks_on_its_own_epoch_and_keeps_a_third"),
    Bug("a frozen member's train accuracy still reported", "deepmle.core.member", "end_epoch",
        r"jnp\.where\(seen, jnp\.mean\(epoch\.accs\), nan\)", "jnp.mean(epoch.accs)",
        "tests/core/test_member.py::test_a_frozen_member_has_no_train_metrics_after_its_stop"),
    Bug("a saved group read back with one hidden layer", "deepmle.runs.results",
        "group_from_arrays", r"len\(hidden\) \+ 1", "2",
        "tests/runs/test_results.py::test_a_deeper_sweep_reads_back_from_disk_as_it_was_in_memory"),
    Bug("an example equal to a quantile edge put in the bin above", "deepmle.core.bins",
        "bin_of_rank", r"\(edge >= p_sorted\[j \+ 1\]\)", "(edge > p_sorted[j + 1])",
        "tests/core/test_calibration.py::test_ece_bins_are_calibration_curves_quantile_bins_at_every_size"),
    Bug("the edge compared with float32's half gap, not float64's", "deepmle.core.calibration",
        "_bin_ids", r"2\.0\*\*-55, 2\.0\*\*-54", "2.0**-25, 2.0**-24",
        "tests/core/test_calibration.py::test_ece_bins_are_calibration_curves_quantile_bins_at_every_size"),
    Bug("the program's bins cut at the float index's floor, whatever the edge's value",
        "deepmle.core.calibration", "_bin_ids", r"\+ on_rank\.astype\(jnp\.int32\)", "+ 0",
        "tests/core/test_calibration.py::test_ece_bins_are_calibration_curves_quantile_bins_at_every_size"),
    Bug("the divergence guard without its margin: a slow start stopped as divergence",
        "deepmle.core.member", "end_epoch", r"start_log_prior - WORSE_NATS",
        "start_log_prior",
        "tests/test_train.py::test_a_slow_start_on_a_plateau_is_not_divergence"),
    Bug("a group trained by other code reused on resume", "deepmle.runs.store", "read_group",
        r"code is not None and record\.get\(\"code\"\) != code", "False",
        "tests/runs/test_store.py::test_a_group_trained_by_other_code_is_retrained_with_a_line"),
    Bug('explain takes a learning rate that is no cell', 'deepmle.analysis.report', 'explain',
        'if k == "learning_rate" and not \\(math\\.isfinite\\(v\\) and v > 0\\):',
        'if False:',
        'tests/test_cli_refusals.py::test_explain_refuses_a_learning_rate_that_is_no_cell'),
    Bug('a damaged meta.json search section read as it is', 'deepmle.analysis.load', 'load_run',
        '_check_search\\(run_dir / "meta\\.json", meta\\.get\\("search", \\{\\}\\)\\)', 'None',
        'tests/test_cli_refusals.py::test_a_damaged_search_section_is_refused_by_load_run'),
    Bug('log axes set from no learning rate when every member diverged', 'deepmle.analysis.plots', '_lr_curve',  # noqa: E501
        'ax\\.set_xlim\\(min\\(lrs\\) / 1\\.5, max\\(lrs\\) \\* 1\\.5\\)', 'None',
        'tests/test_cli_refusals.py::test_every_member_diverged_draws_the_log_scaled_figures_and_exits_1'),
    Bug("an npz's declared sizes not checked before loading", 'deepmle.data', '_read_npz',
        '_check_declared\\(path, f, k\\)', 'None',
        'tests/test_cli_refusals.py::test_an_npz_declaring_two_million_images_is_refused_from_its_header'),
    Bug('an npz with no ink accepted', 'deepmle.data', '_select_pair',
        'if not np\\.any\\(x\\[keep\\]\\):', 'if False:',
        'tests/test_cli_refusals.py::test_an_npz_without_ink_is_one_line'),
    Bug('the memory check reads free RAM only', 'deepmle.population.groups', 'available_bytes',
        'return min\\(have\\)', 'return have[0]',
        'tests/test_cli_refusals.py::test_the_memory_check_counts_the_address_space_limit'),
    Bug('train outside jit on numpy data', 'deepmle.train', 'make_train.train',
        'data = _as_arrays\\(data\\)', 'data = data',
        'tests/test_train.py::test_train_outside_jit_takes_numpy_data'),
    Bug('TOML strings written as JSON strings', 'deepmle.config', 'to_toml',
        'return toml_string\\(v\\)', 'return __import__("json").dumps(v, ensure_ascii=False)',
        'tests/test_config.py::test_every_string_field_round_trips_through_the_written_toml'),
    Bug('a config changed in code not validated', 'deepmle.config', 'validate',
        'checked = from_dict\\(to_dict\\(config\\), where=where, name=config\\.name\\)', 'checked = config',  # noqa: E501
        'tests/test_config.py::test_a_config_changed_in_code_is_validated_by_the_file_rules'),
    Bug('a long value echoed whole', 'deepmle.errors', 'cut',
        'text\\[: limit - 1\\] \\+ "…"', 'text',
        'tests/test_cli_refusals.py::test_a_huge_value_is_not_echoed_whole'),
    Bug('a FIFO called a directory', 'deepmle.errors', 'not_a_file',
        '"a named pipe \\(FIFO\\)"', '"a directory"',
        'tests/test_cli_refusals.py::test_a_fifo_or_directory_is_named_for_what_it_is'),
    Bug('a temperature interval printed through zero', 'deepmle.analysis.report', 'calibration_lines',  # noqa: E501
        '_positive_pm\\(', '_pm(',
        'tests/analysis/test_report.py::test_a_temperature_interval_never_reaches_zero_or_below'),
    Bug("a 'selected' legend with nothing selected", 'deepmle.analysis.report', 'table',
        'if sweep and any\\(r\\["selected"\\] for r in rows\\):', 'if sweep:',
        'tests/analysis/test_report.py::test_no_selected_legend_when_every_member_diverged'),
    Bug('setup(cache=False) leaves an earlier cache on', 'deepmle.runtime', 'setup',
        'jax\\.config\\.update\\("jax_enable_compilation_cache", False\\)', 'None',
        'tests/test_runtime.py::test_setup_without_cache_after_setup_with_one_writes_nothing_there'),
    Bug('a link inside a run directory written through', 'deepmle.runs.store', 'no_link',
        'if os\\.path\\.islink\\(at\\):', 'if False:',
        'tests/runs/test_store.py::test_a_linked_figure_is_never_replaced'),
    Bug('a config stem of dots becomes a run directory', 'deepmle.cli', '_default_out',
        'not name\\.strip\\("\\. "\\)', 'not name',
        'tests/test_cli.py::test_a_config_name_that_is_no_folder_name_is_refused'),
    Bug('an edited group record reused', 'deepmle.runs.store', '_read_saved',
        'record\\.get\\("record_sha256"\\) != record_sha256\\(record\\)', 'False',
        'tests/runs/test_store.py::test_an_edited_group_record_is_not_reused'),
    Bug('a resealed rung snapshot resumed unchecked', 'deepmle.sweep', '_search',
        'problem = search\\.check_resume\\(config, method, shapes, \\*resume\\)',
        'problem = ""',
        'tests/population/test_halving.py::test_a_resealed_rung_record_is_rejected_on_resume'),
    Bug("a halving group's identity of its own shape only", 'deepmle.runs.store', 'identity',
        'whole = not SEARCHES\\[config\\.search\\.method\\]\\.per_shape', 'whole = False',
        'tests/population/test_halving.py::test_a_halving_group_from_a_search_of_other_shapes_is_refused'),
    Bug('a diverged cell fills a halving slot', 'deepmle.population.search', 'run',
        'min\\(method\\.keep\\(len\\(cells\\), config\\), finite\\)',
        'method.keep(len(cells), config)',
        'tests/population/test_halving.py::test_a_diverged_cell_never_fills_a_slot'),
    Bug('rungs.csv columns in the order a resume met them', 'deepmle.population.search', 'run',
        '\\[\\{c: row\\[c\\] for c in RUNG_COLUMNS\\} for row in table\\]', 'table',
        'tests/population/test_halving.py::test_a_resumed_run_writes_rungs_csv_as_an_uninterrupted_one'),
    Bug('--overwrite with the same config keeps the old groups', 'deepmle.runs.store', 'open_run',
        'if same and not overwrite:', 'if same:',
        'tests/runs/test_store.py::test_overwrite_with_the_same_config_trains_every_group_again'),
]  # fmt: skip


def source_path(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise LookupError(f"module {module} not found")
    return Path(spec.origin)


def _targets(node: ast.AnnAssign | ast.Assign) -> list[str]:
    """The names a module-level assignment binds (a table such as HYPERPARAMETERS)."""
    targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
    return [t.id for t in targets if isinstance(t, ast.Name)]


def locate(bug: Bug) -> tuple[Path, int, int]:
    """(file, start, end): the character span in the file that the bug's pattern matches,
    inside the function it names. LookupError if the function is missing or the pattern does
    not match there exactly once."""
    path = source_path(bug.module)
    text = path.read_text()
    tree = ast.parse(text)
    node: ast.AST = tree
    for name in bug.function.split("."):
        found = [
            n
            for n in ast.iter_child_nodes(node)
            if (isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and n.name == name)
            or (isinstance(n, ast.AnnAssign | ast.Assign) and name in _targets(n))
        ]  # fmt: skip
        if not found:
            raise LookupError(f"{bug.module} has no {bug.function}")
        node = found[0]
    lines = text.splitlines(keepends=True)
    start = sum(len(line) for line in lines[: node.lineno - 1])
    end = sum(len(line) for line in lines[: node.end_lineno])
    matches = list(re.finditer(bug.pattern, text[start:end]))
    if len(matches) != 1:
        raise LookupError(
            f"{bug.module}.{bug.function}: /{bug.pattern}/ matches {len(matches)} times, not once"
        )
    return path, start + matches[0].start(), start + matches[0].end()


def apply(bug: Bug) -> str:
    """The file's text with the bug in it."""
    path, start, end = locate(bug)
    text = path.read_text()
    broken = re.sub(bug.pattern, bug.replacement, text[start:end])
    return text[:start] + broken + text[end:]


def try_bug(bug: Bug) -> tuple[str, str]:
    """(verdict, detail): "caught", "MISSED" or "TEST RUN BROKEN"."""
    path = locate(bug)[0]
    broken = apply(bug)
    with tempfile.NamedTemporaryFile() as backup:
        shutil.copy(path, backup.name)
        path.write_text(broken)
        try:
            cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", bug.tests]
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        finally:
            shutil.copy(backup.name, path)
    # a failing assertion in a fixture reports ERROR, with the same exit code as a FAILED test;
    # a test that cannot even be collected exits 2 (TEST RUN BROKEN below)
    failed = [line for line in r.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if r.returncode == 1 and failed:
        return "caught", failed[0]
    if r.returncode == 0:
        return "MISSED", "every test passed"
    tail = (r.stdout + r.stderr).strip().splitlines()[-1:] or [""]
    return "TEST RUN BROKEN", f"pytest exit {r.returncode}: {tail[0]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="only the bugs whose name contains this")
    args = ap.parse_args()
    if importlib.util.find_spec("pytest") is None:
        print("deliberate_bugs: pytest is not installed: pip install -e '.[test]'", file=sys.stderr)
        return 2
    bugs = [b for b in BUGS if args.only is None or args.only in b.name]
    verdicts = []
    for bug in bugs:
        try:
            verdict, detail = try_bug(bug)
        except LookupError as e:
            verdict, detail = "TEST RUN BROKEN", f"edit site not found: {e}"
        verdicts.append(verdict)
        print(f"{bug.name}: {verdict}; {detail}", flush=True)
    caught = verdicts.count("caught")
    print(f"{caught} of {len(bugs)} deliberate bugs caught")
    return 0 if caught == len(bugs) else 1


if __name__ == "__main__":
    sys.exit(main())
