"""Griffe extension for the API reference: the docstrings use Sphinx roles
(``:class:`~sapiens_kit.tasks.hooks.TaskHooks```), which Markdown would show verbatim. Each role
becomes inline code: the last name for ``~a.b.C``, the full path otherwise."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|mod|func|meth|attr|data|exc|obj):`(~?)([^`]+)`")


def _plain(match: re.Match[str]) -> str:
    short, target = match[1], match[2]
    return f"``{target.rsplit('.', 1)[-1] if short else target}``"


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx cross-reference roles in every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_plain, obj.docstring.value)
