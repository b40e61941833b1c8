"""Glue shared by the command-line apps: which task the user asked for, and turning the kit's
exceptions into one ``error:`` line.

The task registry and checkpoint loading live in :mod:`sapiens_kit.tasks.registry`, the
exceptions in :mod:`sapiens_kit.errors`; the names below are re-exported for old imports. This
module imports neither torch nor the task package, so an app that imports it still answers
``--help`` quickly.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sapiens_kit.errors import UserError

if TYPE_CHECKING:
    from sapiens_kit.tasks.base import BaseTask

#: Environment variables that ask for full tracebacks instead of one ``error:`` line.
DEBUG_VARIABLES = ("SAPIENS_KIT_DEBUG", "HYDRA_FULL_ERROR")


def debug_enabled() -> bool:
    """Whether ``SAPIENS_KIT_DEBUG=1`` (or Hydra's ``HYDRA_FULL_ERROR=1``) asks for tracebacks."""
    return any(os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
               for name in DEBUG_VARIABLES)


def import_class(path: str) -> type:
    """Import ``package.module.Class``."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


# The registry's functions, imported when first called (the task package imports torch).
def load_task(ckpt: str | Path, task: str | None = None, **overrides: Any) -> BaseTask:
    """See :func:`sapiens_kit.tasks.registry.load_task`."""
    from sapiens_kit.tasks.registry import load_task as load

    return load(ckpt, task, **overrides)


def load_class(path: str) -> type[BaseTask]:
    """See :func:`sapiens_kit.tasks.registry.load_class`."""
    from sapiens_kit.tasks.registry import load_class as load

    return load(path)


def class_path(cls: type) -> str:
    """See :func:`sapiens_kit.tasks.registry.class_path`."""
    return f"{cls.__module__}.{cls.__qualname__}"


def task_key(task: Any) -> str:
    """See :func:`sapiens_kit.tasks.registry.task_key`."""
    from sapiens_kit.tasks.registry import task_key as key

    return key(task)


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


# ------------------------------------------------------------------------------ error lines
def _user_error_classes() -> tuple[type[BaseException], ...]:
    """The user-error classes whose defining modules are imported: an exception of a class
    from a module never imported cannot have been raised, so nothing heavy is imported here."""
    from sapiens_kit import errors

    found: list[type[BaseException]] = [UserError]
    for name, module in errors._DEFINED_IN.items():
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def _causes(err: BaseException) -> Iterator[BaseException]:
    """``err`` and what it wraps (``raise ... from``, or raised while handling), outermost
    first: Hydra's ``InstantiationException`` wraps the constructor's own error this way."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _omegaconf_message(err: BaseException) -> str | None:
    """One line for a configuration value that cannot be used (not set, not resolvable, of the
    wrong type); ``None`` for other OmegaConf errors (a missing key read by code is a bug)."""
    from omegaconf.errors import (
        InterpolationResolutionError,
        MissingMandatoryValue,
        ValidationError,
    )

    key = getattr(err, "full_key", None) or ""
    if isinstance(err, MissingMandatoryValue):
        return f"{key} is not set: give it on the command line ({key}=...)"
    if isinstance(err, InterpolationResolutionError | ValidationError):
        text = _one_line(str(err).split("\n    full_key:")[0])
        return f"{key}: {text}" if key and key not in text else text
    return None


def user_message(err: BaseException) -> str | None:
    """The one-line message for ``err`` if it (or an error it wraps) is a user mistake, else
    ``None`` (a bug: show the traceback)."""
    classes = _user_error_classes()
    omegaconf_loaded = "omegaconf" in sys.modules
    for cause in _causes(err):
        if isinstance(cause, classes):
            return _one_line(str(cause))
        if omegaconf_loaded and (message := _omegaconf_message(cause)) is not None:
            return message
    return None


def print_error(message: str) -> None:
    """Write ``error: <message>`` (one line) to stderr."""
    print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)


F = TypeVar("F", bound=Callable[..., Any])


def report_errors(fn: F) -> F:
    """Turn user mistakes (:mod:`sapiens_kit.errors`, also when wrapped by Hydra's
    instantiation) into one ``error: ...`` line and exit status 1; with ``SAPIENS_KIT_DEBUG=1``
    they keep their traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            message = None if debug_enabled() else user_message(err)
            if message is None:
                raise
            print_error(message)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]


def user_errors() -> tuple[type[Exception], ...]:
    """See :func:`sapiens_kit.errors.user_errors` (imports the modules defining them)."""
    from sapiens_kit.errors import user_errors as every

    return every()


__all__ = [
    "UserError",
    "debug_enabled",
    "import_class",
    "load_task",
    "print_error",
    "report_errors",
    "requested_task",
    "user_message",
]
