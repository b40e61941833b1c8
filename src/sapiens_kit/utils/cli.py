"""Glue shared by the evaluate/predict/export apps: which task the user asked for, and turning
the kit's exceptions into one ``error:`` line.

The task registry and checkpoint loading live in :mod:`sapiens_kit.tasks.registry`, the
exceptions in :mod:`sapiens_kit.errors`; the names below are re-exported for old imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from sapiens_kit.errors import UserError, user_errors
from sapiens_kit.tasks.registry import class_path, load_class, load_task, task_key


def import_class(path: str) -> type:
    """Import ``package.module.Class``."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    # Old spelling of the task registry as ``{key: class path}``, derived from the registry.
    if name == "TASK_CLASSES":
        from sapiens_kit.tasks.registry import task_classes

        return {key: class_path(cls) for key, cls in task_classes().items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def requested_task(cfg: Any) -> str | None:
    """The key of the task the user chose on the command line (``task=...``), else ``None``.

    The key is read from the composed model's class (``model._target_``) through the task
    registry, so a preset whose file name is not a task key still names the right task.
    """
    try:
        from hydra.core.hydra_config import HydraConfig

        given = any(o.startswith("task=") for o in HydraConfig.get().overrides.task)
    except ValueError:  # composed outside a Hydra app (tests): trust the config
        given = True
    target = cfg.model.get("_target_") if given else None
    return task_key(load_class(str(target))) if target else None


F = TypeVar("F", bound=Callable[..., Any])


def report_errors(fn: F) -> F:
    """Turn the kit's own exceptions (:mod:`sapiens_kit.errors`) into one ``error: ...`` line
    and exit status 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except user_errors() as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]


__all__ = ["UserError", "import_class", "load_task", "report_errors", "requested_task"]
