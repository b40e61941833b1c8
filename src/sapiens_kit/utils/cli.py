"""Helpers shared by the evaluate/predict/export apps: task lookup, checkpoint loading, errors."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import torch

from sapiens_kit.models import is_sharded_checkpoint, sharded_checkpoint_message

#: Task key -> LightningModule class path. The task group in conf/ is the user-facing registry;
#: this map only lets tools reload a checkpoint by key.
TASK_CLASSES = {
    "seg": "sapiens_kit.tasks.seg.SegmentationTask",
    "pose": "sapiens_kit.tasks.pose.PoseTask",
    "depth": "sapiens_kit.tasks.depth.DepthTask",
    "normal": "sapiens_kit.tasks.normal.NormalTask",
}


class UserError(Exception):
    """A problem with what the user asked for; reported as one line, exit status 1."""


def import_class(path: str) -> type:
    """Import ``package.module.Class``."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def load_task(ckpt: str | Path, task: str | None = None, **overrides: Any) -> Any:
    """Load a sapiens_kit Lightning checkpoint as its task, checking it is the expected task.

    The pretrained ``weights`` the run started from are not needed again (the checkpoint holds
    the trained ones), so they are not reloaded.
    """
    path = Path(ckpt)
    if is_sharded_checkpoint(path):
        raise UserError(sharded_checkpoint_message(path))
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file does not exist")
    if task is not None and task not in TASK_CLASSES:
        raise UserError(f"unknown task '{task}' (choose from {', '.join(TASK_CLASSES)})")
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise UserError(f"{path}: not a readable sapiens_kit checkpoint ({err})") from err
    info = meta.get("sapiens_kit") if isinstance(meta, dict) else None
    if not info:
        raise UserError(
            f"{path}: not a sapiens_kit Lightning checkpoint (for official .pth weights use "
            "weights=... instead of ckpt=...)"
        )
    cls_path = info["task_class"]
    if task is not None and cls_path != TASK_CLASSES[task]:
        found = next((k for k, v in TASK_CLASSES.items() if v == cls_path), cls_path)
        raise UserError(f"{path}: checkpoint is for task '{found}', not task={task}")
    cls = import_class(cls_path)
    return cls.load_from_checkpoint(path, map_location="cpu", weights=None, **overrides)


def requested_task(cfg: Any) -> str | None:
    """The task key the user chose on the command line (``task=...``), else ``None``."""
    try:
        from hydra.core.hydra_config import HydraConfig

        given = [o for o in HydraConfig.get().overrides.task if o.startswith("task=")]
    except ValueError:  # composed outside a Hydra app (tests): trust the config
        given = ["task="]
    if not given:
        return None
    target = str(cfg.model.get("_target_", ""))
    return next((k for k, v in TASK_CLASSES.items() if v.rsplit(".", 1)[-1] ==
                 target.rsplit(".", 1)[-1]), None)


F = TypeVar("F", bound=Callable[..., Any])


def report_errors(fn: F) -> F:
    """Turn the kit's own exceptions into one ``error: ...`` line and exit status 1."""
    from sapiens_kit.data.classes import ClassesFileError
    from sapiens_kit.data.io import DataFileError
    from sapiens_kit.models import WeightsError

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UserError, WeightsError, DataFileError, ClassesFileError) as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]
