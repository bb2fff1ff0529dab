from pathlib import Path

ROOT = Path(__file__).parent.parent


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
