"""The README and its docs/ pages: the commands CI runs, the library examples run as written."""

from pathlib import Path

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _ci_command() -> str:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return lines[lines.index("# README test command:") + 1]


def test_ci_runs_exactly_the_readme_test_command():
    command = _ci_command()
    assert "python -m pytest" in command
    assert f"```\n{command}\n```" in (ROOT / "README.md").read_text()


def test_readme_main_job_command_runs_the_seed_config():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e . && deepmle run configs/seed.toml\n```" in readme


def _python_blocks() -> list[tuple[str, str]]:
    """(page, code) of every ```python block of the README and docs/, in PAGES order."""
    return [
        (page.relative_to(ROOT).as_posix(), block.split("```", 1)[0])
        for page in PAGES
        for block in page.read_text().split("```python\n")[1:]
    ]


def test_the_readmes_library_examples_run(tmp_path, monkeypatch):
    """Every Python block of the README and docs/, run as written (its run directory moved to
    tmp): the README's one network, then docs/library.md's sweep from a notebook."""
    from deepmle import runtime

    monkeypatch.chdir(ROOT)
    called = []  # JAX runs in this test process already: setup() is checked in test_runtime
    monkeypatch.setattr(runtime, "setup", lambda *a, **k: called.append(1))
    blocks = _python_blocks()
    assert [page for page, _ in blocks] == ["README.md", "docs/library.md"]
    spaces = []
    for page, block in blocks:
        code = block.replace('"runs/notebook"', repr(str(tmp_path / "notebook")))
        spaces.append({})
        exec(compile(code, page, "exec"), spaces[-1])
    one_network, sweep_block = spaces
    g = sweep_block["g"]
    assert g.final["val_accuracy"].shape == (4, 6) and g.curves["val_ll"].shape == (4, 6, 2)
    assert sweep_block["again"].selected == sweep_block["run"].selected
    assert called == [1] and (tmp_path / "notebook" / "plots" / "heatmap.png").is_file()
    names = [set(space) - {"__builtins__"} for space in spaces]
    assert not names[0] & names[1] - {"config", "data", "jax"}  # no name means two things
    assert one_network["metrics"]["val_accuracy"].shape == (8, 3)
