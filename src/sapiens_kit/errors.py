"""The exceptions the command-line apps report as one ``error: ...`` line (exit status 1).

:class:`UserError` is defined here. The others stay defined beside the code that raises them
(so those modules import nothing from the apps) and are re-exported here lazily, which keeps
``import sapiens_kit.errors`` free of the data and model packages:

- :class:`WeightsError`: weights that cannot be found, read or matched to the model;
- :class:`DataFileError`: a data file that cannot be read or is malformed;
- :class:`ClassesFileError`: a bad class vocabulary file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sapiens_kit.data.classes import ClassesFileError
    from sapiens_kit.data.io import DataFileError
    from sapiens_kit.models import WeightsError, WeightsUnavailableError


class UserError(Exception):
    """A problem with what the user asked for; reported as one line, exit status 1."""


#: Where each re-exported exception is defined.
_DEFINED_IN = {
    "WeightsError": "sapiens_kit.models",
    "WeightsUnavailableError": "sapiens_kit.models",
    "DataFileError": "sapiens_kit.data.io",
    "ClassesFileError": "sapiens_kit.data.classes",
}


def __getattr__(name: str) -> Any:
    if name in _DEFINED_IN:
        return getattr(importlib.import_module(_DEFINED_IN[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def user_errors() -> tuple[type[Exception], ...]:
    """Every exception class that means "the user asked for something that cannot be done"."""
    return (UserError, *(__getattr__(name) for name in _DEFINED_IN))


__all__ = [
    "ClassesFileError",
    "DataFileError",
    "UserError",
    "WeightsError",
    "WeightsUnavailableError",
    "user_errors",
]
