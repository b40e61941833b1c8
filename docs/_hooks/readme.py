"""MkDocs hook: the site's home page is the README, so the front page has one source.

``docs/index.md`` holds the single line ``--8<-- "README.md"``. The README's links point into
``docs/`` so that they work on GitHub; on the site the page already sits in ``docs/``, so the
include drops that prefix (``](docs/pose.md)`` becomes ``](pose.md)``). Done here rather than with
``pymdownx.snippets`` because snippets are expanded after MkDocs checks the links.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_INCLUDE = re.compile(r'^--8<-- "(?P<path>[^"]+)"\s*$', re.MULTILINE)
_DOCS_LINK = re.compile(r"\]\(docs/")


def on_page_markdown(markdown: str, page: Any, config: Any, **_: Any) -> str:
    """Replace each include line with the file it names (relative to the repository root)."""
    root = Path(config.config_file_path).parent

    def include(match: re.Match[str]) -> str:
        text = (root / match["path"]).read_text(encoding="utf-8")
        return _DOCS_LINK.sub("](", text)

    return _INCLUDE.sub(include, markdown)
