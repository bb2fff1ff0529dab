"""Reading a finished run back (deepmle.analysis.load): a damaged meta.json is a one-line
UserError naming what is wrong, never a traceback from deep inside a reader."""

import pytest

from deepmle.analysis.load import load_run
from deepmle.errors import UserError

from ..helpers import DAMAGED_SEARCH, all_diverged, damage_search


@pytest.fixture(scope="module")
def diverged():
    return all_diverged()


@pytest.mark.parametrize("case", DAMAGED_SEARCH)
def test_a_damaged_search_section_is_refused_by_load_run(diverged, tmp_path, case):
    with pytest.raises(UserError, match=r"meta.json: damaged search section \(.*\); re-run"):
        load_run(damage_search(diverged, tmp_path, case))
