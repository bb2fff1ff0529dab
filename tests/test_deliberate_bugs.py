"""tests/tools/deliberate_bugs.py cannot rot: every bug's edit site is found, once, and the
edit really changes the source (running each bug's tests is the script's own, slower job)."""

import importlib.util
import sys

import pytest

from .helpers import ROOT


def _script():
    spec = importlib.util.spec_from_file_location(
        "deliberate_bugs", ROOT / "tests" / "tools" / "deliberate_bugs.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["deliberate_bugs"] = module
    spec.loader.exec_module(module)
    return module


bugs = _script()


@pytest.mark.parametrize("bug", bugs.BUGS, ids=lambda b: b.name)
def test_every_deliberate_bug_finds_its_edit_site(bug):
    path = bugs.locate(bug)[0]
    text = path.read_text()
    broken = bugs.apply(bug)
    assert broken != text and len(broken.splitlines()) == len(text.splitlines())
    assert (ROOT / bug.tests.split("::")[0]).is_file()


def test_a_pattern_that_no_longer_matches_is_reported_not_applied():
    moved = bugs.BUGS[0]._replace(pattern=r"rng\.shuffle\(")
    with pytest.raises(LookupError, match="matches 0 times"):
        bugs.locate(moved)
