"""Names bound at import time whose module is imported on first use.

The command-line apps (``python -m sapiens_kit.train`` ...) import torch and Lightning only when
they run a job: ``--help`` and mistakes on the command line answer in about a second instead of
ten. Their heavy imports are bound with these helpers, so the function bodies use them as usual
(``L.Trainer(...)``, ``DataLoader(...)``); type checkers see the real imports (guard them with
``if TYPE_CHECKING:``).
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    """Stands for module ``name``; the first attribute read imports it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__dict__["_lazy_target"]), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__dict__['_lazy_target']!r}>"


class LazyAttr:
    """Stands for ``module.name`` (a function or class); calling it or reading an attribute of
    it imports the module. Not usable as a base class or in ``isinstance``: import those where
    they are needed."""

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name

    def resolve(self) -> Any:
        """The real object."""
        return getattr(importlib.import_module(self._module), self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.resolve(), attr)

    def __repr__(self) -> str:
        return f"<lazy {self._module}.{self._name}>"


class LazySequence(LazyAttr):
    """Stands for a constant tuple ``module.name`` (file suffixes): ``in``, ``+``, iteration,
    ``len`` and indexing read it."""

    def __contains__(self, item: object) -> bool:
        return item in self.resolve()

    def __iter__(self) -> Any:
        return iter(self.resolve())

    def __len__(self) -> int:
        return len(self.resolve())

    def __getitem__(self, index: Any) -> Any:
        return self.resolve()[index]

    def __add__(self, other: Any) -> Any:
        return self.resolve() + (other.resolve() if isinstance(other, LazyAttr) else other)

    def __radd__(self, other: Any) -> Any:
        return other + self.resolve()


def lazy_module(name: str) -> Any:
    """``import name`` deferred to the first attribute read."""
    return LazyModule(name)


def lazy_attr(module: str, name: str) -> Any:
    """``from module import name`` deferred to the first call or attribute read."""
    return LazyAttr(module, name)


def lazy_sequence(module: str, name: str) -> Any:
    """``from module import NAME`` of a constant tuple, deferred to its first use."""
    return LazySequence(module, name)


__all__ = ["LazyAttr", "LazyModule", "LazySequence", "lazy_attr", "lazy_module", "lazy_sequence"]
