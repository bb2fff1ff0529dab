"""experiments/tutorial.ipynb: committed with its outputs, and runs top to bottom in a fresh
kernel (every comparison in it is an assert, so a wrong gradient or a changed API fails here)."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).parent.parent / "experiments" / "tutorial.ipynb"


def test_the_tutorial_is_committed_with_its_outputs_in_order():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))
    assert not any(o.output_type == "error" for c in cells for o in c.outputs)
    assert any("image/png" in o.get("data", {}) for c in cells for o in c.outputs)


def test_the_tutorial_follows_the_notebook_path_of_docs_library_md():
    """runtime.setup() before anything runs JAX, a sweep with progress and figures=True, the
    library's interval (no copy of it), and the weight tiles as one image on one scale."""
    code = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    first = code[0]
    assert "runtime.setup()" in first and first.index("runtime.setup()") < first.index("data.load(")
    sweep = next(c for c in code if "sweep.run(" in c)
    assert "progress=Progress()" in sweep and "figures=True" in sweep
    assert "deepmle plot" not in sweep  # the figures are the sweep's own plots/
    assert not any("def mean_ci95" in c for c in code)
    assert "from deepmle.analysis.stats import mean_ci95" in first
    tiles = code[-1]
    assert tiles.count(".imshow(") == 1 and "vmin=-lim, vmax=lim" in tiles
    assert "lim = np.abs(w).max()" in tiles  # over every cell, not per tile


@pytest.mark.slow
def test_the_tutorial_runs_in_a_fresh_kernel(monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("JAX_NUMPY_RANK_PROMOTION", "raise")  # strict, as the tests are
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": NOTEBOOK.parent}}
    )
    client.execute()  # CellExecutionError on the first cell that raises
