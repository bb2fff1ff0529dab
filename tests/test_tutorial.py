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


@pytest.mark.slow
def test_the_tutorial_runs_in_a_fresh_kernel(monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("JAX_NUMPY_RANK_PROMOTION", "raise")  # strict, as the tests are
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": NOTEBOOK.parent}}
    )
    client.execute()  # CellExecutionError on the first cell that raises
