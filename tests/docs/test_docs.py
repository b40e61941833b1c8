"""The README and the documentation site stay true to the repository: the README is a front page
of at most about 200 lines whose links and cited files exist, and every page in ``docs/`` is
reachable from the site's navigation. (``mkdocs build --strict`` checks links, anchors and the
API reference; it runs in CI, not here, because it takes tens of seconds.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.helpers import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"

#: Repository folders whose files the README may cite in backticks.
_CITED = re.compile(r"`((?:\.ci|bench|conf|docs|notebooks|src|tests)/[\w./-]+)`")
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _nav_pages(entries: Any) -> list[str]:
    """Every page path in an mkdocs ``nav`` (nested lists of strings and one-key mappings)."""
    if isinstance(entries, str):
        return [entries]
    if isinstance(entries, list):
        return [p for entry in entries for p in _nav_pages(entry)]
    if isinstance(entries, dict):
        return [p for value in entries.values() for p in _nav_pages(value)]
    return []


@pytest.fixture(scope="module")
def nav() -> list[str]:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    return _nav_pages(config["nav"])


def test_readme_is_a_front_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"
    # CI reads the README's test commands.
    commands = {line.split("#")[0].strip() for line in lines}
    assert {"pytest", "pytest -m slow"} <= commands
    assert "pip install -e \".[dev]\"" in README.read_text()


def test_readme_links_and_cited_files_exist() -> None:
    text = README.read_text()
    for target in _LINK.findall(text):
        if "://" not in target:
            assert (REPO / target).exists(), f"README links to missing {target}"
    for cited in _CITED.findall(text):
        assert (REPO / cited.rstrip("/")).exists(), f"README cites missing {cited}"


def test_every_docs_page_is_in_the_nav(nav: list[str]) -> None:
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
             if "_hooks" not in p.parts}
    assert pages - set(nav) == set(), "pages missing from mkdocs.yml nav"
    for page in nav:
        assert (DOCS / page).exists(), f"nav names missing page {page}"


def test_every_notebook_is_in_the_nav(nav: list[str]) -> None:
    notebooks = {f"notebooks/{p.name}" for p in (REPO / "notebooks").glob("*.ipynb")}
    assert notebooks and notebooks <= set(nav)


def test_the_home_page_is_the_readme() -> None:
    assert (DOCS / "index.md").read_text().strip() == '--8<-- "README.md"'
