"""The README and its docs/ pages: the commands CI runs, the library examples run as written,
every link resolves, every code block is run, checked or marked as not run, and the README
stays a front page.

Code blocks: a ```python block is executed (test_the_readmes_library_examples_run); a ```toml
block is read as a deepmle config (test_toml_blocks_are_deepmle_configs); a block that is one
of the commands .ci/run and the tests here check verbatim is checked; any other block is shown,
not run, and says so with the line ``<!-- not run -->`` just before its opening fence."""

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import NamedTuple

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


NOT_RUN = "<!-- not run -->"
MAIN_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . "
    "&& deepmle run configs/seed.toml"
)


class Block(NamedTuple):
    page: str
    line: int  # of the opening fence, 1-based
    info: str  # the fence's info string: "python", "toml", ""
    body: str
    marked_not_run: bool


def _blocks(page: Path) -> list[Block]:
    """Every fenced code block of a page."""
    lines, blocks, start = page.read_text().split("\n"), [], None
    for i, line in enumerate(lines):
        if not line.startswith("```"):
            continue
        if start is None:
            start = i
            continue
        info, marked = lines[start][3:].strip(), start > 0 and lines[start - 1] == NOT_RUN
        name = page.relative_to(ROOT).as_posix()
        blocks.append(Block(name, start + 1, info, "\n".join(lines[start + 1 : i]), marked))
        start = None
    assert start is None, f"{page.name}:{start + 1}: a code fence is never closed"
    return blocks


def _prose(page: Path) -> str:
    """The page without its code blocks (their lines blanked, so line numbers hold)."""
    lines, inside = page.read_text().split("\n"), False
    for i, line in enumerate(lines):
        fence = line.startswith("```")
        if inside or fence:
            lines[i] = ""
        inside ^= fence
    return "\n".join(lines)


def _slugs(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to
    hyphens, a repeated slug numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    slugs = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", _prose(page), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        slugs.add(slug if seen[slug] == 0 else f"{slug}-{seen[slug]}")
    return slugs


def _links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link of a page outside code."""
    text = re.sub(r"`[^`\n]*`", "", _prose(page))
    return [
        (text.count("\n", 0, m.start()) + 1, m.group(1))
        for m in re.finditer(r"\]\(([^)\s]+)\)", text)
    ]


def test_every_relative_link_resolves_to_a_file_and_heading():
    broken = []
    for page in PAGES:
        for line, target in _links(page):
            if re.match(r"[a-z][a-z+.-]*:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}:{line}: {target}"
            if not file.is_relative_to(ROOT) or not file.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and (file.suffix != ".md" or anchor not in _slugs(file)):
                broken.append(f"{where} (no such heading)")
    assert not broken, "\n".join(broken)
    assert sum(len(_links(page)) for page in PAGES) > 20  # the pages do link


def test_every_code_block_is_run_checked_or_marked_not_run():
    checked_commands = {_ci_command(), MAIN_COMMAND}
    wrong = []
    for block in (b for page in PAGES for b in _blocks(page)):
        ways = {
            "run": block.info == "python",
            "checked": block.info == "toml" or block.body in checked_commands,
            "marked not run": block.marked_not_run,
        }
        if sum(ways.values()) != 1:
            said = [way for way, yes in ways.items() if yes] or ["none of run, checked, marked"]
            wrong.append(f"{block.page}:{block.line}: ```{block.info} is {' and '.join(said)}")
    assert not wrong, "\n".join(wrong)
    readme = _blocks(ROOT / "README.md")
    assert {b.body for b in readme} >= checked_commands


def test_toml_blocks_are_deepmle_configs():
    """Every [section] key a ```toml block shows is one deepmle reads; the block that shows all
    four sections shows every key, with the values configs/seed.toml resolves to."""
    from deepmle import config

    blocks = [b for page in PAGES for b in _blocks(page) if b.info == "toml"]
    assert len(blocks) >= 3
    full = []
    for block in blocks:
        raw = tomllib.loads(block.body)
        for section, body in raw.items():
            assert section in config.SECTIONS, f"{block.page}:{block.line}: [{section}]"
            keys = [f.name for f in dataclasses.fields(config.SECTIONS[section]) if f.compare]
            unknown = set(body) - set(keys)
            assert not unknown, f"{block.page}:{block.line}: [{section}] {unknown}"
        if set(raw) == set(config.SECTIONS):
            full.append(block)
            for section, cls in config.SECTIONS.items():
                keys = [f.name for f in dataclasses.fields(cls) if f.compare]
                missing = set(keys) - set(raw[section])
                assert not missing, f"{block.page}:{block.line}: [{section}] lacks {missing}"
            seed = config.from_dict(raw, where=f"{block.page}:{block.line}", name="seed")
            assert seed == config.load(ROOT / "configs" / "seed.toml")
    assert [b.page for b in full] == ["docs/cli.md"]


def test_readme_is_a_front_page_that_indexes_every_docs_page():
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 200
    linked = {(readme.parent / target.partition("#")[0]).resolve() for _, target in _links(readme)}
    unlisted = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert PAGES[1:] and not unlisted, f"docs pages the README does not link: {unlisted}"
