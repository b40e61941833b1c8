"""LightningModules: one per task (seg, pose, depth, normal), and the registry that finds them
(:mod:`sapiens_kit.tasks.registry`).

Every module of this package is imported here, so a new task is one new file whose class
declares a ``key``: the registry finds it by subclass discovery, with no edit to this file.
"""

import importlib
import pkgutil

from sapiens_kit.tasks.base import BaseTask
from sapiens_kit.tasks.depth import DepthTask
from sapiens_kit.tasks.hooks import CardInfo, TaskHooks
from sapiens_kit.tasks.normal import NormalTask
from sapiens_kit.tasks.pose import PoseTask
from sapiens_kit.tasks.registry import get_task_class, task_classes, task_key
from sapiens_kit.tasks.seg import SegmentationTask

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BaseTask",
    "CardInfo",
    "DepthTask",
    "NormalTask",
    "PoseTask",
    "SegmentationTask",
    "TaskHooks",
    "get_task_class",
    "task_classes",
    "task_key",
]
