"""The task registry: task key <-> task class, found by subclass discovery.

A task class declares its short key in its own body (``key = "seg"``). Every subclass of
:class:`~sapiens_kit.tasks.base.BaseTask` that declares one is a registered task, wherever it is
defined (the kit's ``tasks/`` package, a user's module, a test module) once it has been
imported. Base classes without a key of their own (``BaseTask``, ``DenseTask``) are not tasks,
and a subclass that only inherits a key (a user's tweak of ``SegmentationTask``) does not take
it over.

Checkpoints and task files store the class path (``sapiens_kit.tasks.seg.SegmentationTask``);
:func:`load_class` turns it back into the class, :func:`class_path` writes it.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sapiens_kit.errors import UserError

if TYPE_CHECKING:
    from sapiens_kit.tasks.base import BaseTask

log = logging.getLogger(__name__)


def _all_subclasses(root: type) -> list[type]:
    found: list[type] = []
    stack: list[type] = list(root.__subclasses__())
    while stack:
        cls = stack.pop(0)
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def task_classes() -> dict[str, type[BaseTask]]:
    """Every registered task: ``{key: class}``, the kit's own tasks first.

    When two classes declare the same key, the first found (the kit's, or the earlier import)
    keeps it and a warning names the other; a class defined again under the same path (a
    re-executed module) replaces its earlier definition.
    """
    # Importing this module ran ``sapiens_kit/tasks/__init__.py`` first, which imports every
    # built-in task module: they are all subclasses by now.
    from sapiens_kit.tasks.base import BaseTask

    tasks: dict[str, type[BaseTask]] = {}
    found = _all_subclasses(BaseTask)
    found.sort(key=lambda c: not c.__module__.startswith("sapiens_kit."))  # stable: kit's first
    for cls in found:
        key = cls.__dict__.get("key")
        if not key:
            continue
        other = tasks.get(key)
        if other is None or class_path(other) == class_path(cls):  # a re-definition replaces
            tasks[key] = cls
        else:
            log.warning("task key '%s' is declared by %s and %s: using the first", key,
                        class_path(other), class_path(cls))
    return tasks


def task_keys() -> list[str]:
    """The registered task keys."""
    return list(task_classes())


def get_task_class(key: str) -> type[BaseTask]:
    """The task class registered under ``key``; a :class:`UserError` listing the keys if none."""
    tasks = task_classes()
    if key not in tasks:
        raise UserError(f"unknown task '{key}' (choose from {', '.join(tasks)})")
    return tasks[key]


def class_path(cls: type) -> str:
    """``module.QualName`` of a class: what checkpoints and task files store."""
    return f"{cls.__module__}.{cls.__qualname__}"


def task_key(task: Any) -> str:
    """The key of a task object or class (inherited keys count: a subclass of
    ``SegmentationTask`` is a ``seg`` task)."""
    cls = task if isinstance(task, type) else type(task)
    key = getattr(cls, "key", None)
    if not key:
        raise UserError(f"{class_path(cls)} is not a registered task (it has no task key; "
                        f"tasks: {', '.join(task_classes())})")
    return str(key)


def load_class(path: str) -> type[BaseTask]:
    """The task class stored as ``path`` (``sapiens_kit.tasks.seg.SegmentationTask``).

    Classes already registered are found by their path first (this covers tasks defined where
    they cannot be imported by name); otherwise the module is imported.
    """
    from sapiens_kit.tasks.base import BaseTask

    known = [cls for cls in _all_subclasses(BaseTask) if class_path(cls) == path]
    if known:
        return known[-1]  # the latest definition, when a module was re-executed
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise UserError(f"task class {path} cannot be imported ({err})") from err
    if not (isinstance(cls, type) and issubclass(cls, BaseTask)):
        raise UserError(f"{path} is not a sapiens_kit task class")
    return cls


def check_task(cls: type, expected: str | None, source: str | Path, what: str = "model") -> None:
    """Refuse a stored task (``what`` at ``source``) of another kind than the ``expected`` key
    (``None``: any)."""
    if expected is None:
        return
    get_task_class(expected)  # an unknown key is its own error
    found = getattr(cls, "key", None) or class_path(cls)
    if found != expected:
        raise UserError(f"{source}: {what} is for task '{found}', not task={expected}")


def load_task(ckpt: str | Path, task: str | None = None, **overrides: Any) -> BaseTask:
    """Load a sapiens_kit Lightning checkpoint as its task, checking it is the expected task.

    The pretrained ``weights`` the run started from are not needed again (the checkpoint holds
    the trained ones), so they are not reloaded.

    Args:
        ckpt: A checkpoint written by a sapiens_kit run.
        task: Expected task key; a checkpoint of another task is refused.
        **overrides: Constructor arguments to change.
    """
    from sapiens_kit.models import is_sharded_checkpoint, sharded_checkpoint_message
    from sapiens_kit.utils.checkpoint_io import load_for_inference, read_checkpoint

    path = Path(ckpt)
    if is_sharded_checkpoint(path):
        raise UserError(sharded_checkpoint_message(path))
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file does not exist")
    if task is not None:
        get_task_class(task)
    meta = read_checkpoint(path)
    info = meta.get("sapiens_kit") if isinstance(meta, dict) else None
    if not info:
        raise UserError(
            f"{path}: not a sapiens_kit Lightning checkpoint (for official .pth weights use "
            "weights=... instead of ckpt=...)"
        )
    cls = load_class(info["task_class"])
    check_task(cls, task, path, "checkpoint")
    # Only the weights and hyper-parameters are read, not the optimizer state (a fast start).
    return load_for_inference(cls, path, meta, weights=None, **overrides)


def checkpoint_task_class(ckpt: str | Path) -> type[BaseTask] | None:
    """The task class a Lightning checkpoint was written by (``None``: a checkpoint without
    sapiens_kit metadata), read without loading the weights.

    Raises:
        UserError: If the file is not a readable PyTorch checkpoint.
    """
    from sapiens_kit.utils.checkpoint_io import read_checkpoint

    meta = read_checkpoint(ckpt)
    info = meta.get("sapiens_kit") if isinstance(meta, dict) else None
    if not info or "task_class" not in info:
        return None
    return load_class(info["task_class"])


__all__ = [
    "check_task",
    "checkpoint_task_class",
    "class_path",
    "get_task_class",
    "load_class",
    "load_task",
    "task_classes",
    "task_key",
    "task_keys",
]
