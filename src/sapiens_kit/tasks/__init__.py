"""LightningModules: one per task (seg, pose, depth, normal), and the registry that finds them
(:mod:`sapiens_kit.tasks.registry`)."""

from sapiens_kit.tasks.base import BaseTask
from sapiens_kit.tasks.depth import DepthTask
from sapiens_kit.tasks.hooks import CardInfo, TaskHooks
from sapiens_kit.tasks.normal import NormalTask
from sapiens_kit.tasks.pose import PoseTask
from sapiens_kit.tasks.registry import get_task_class, task_classes, task_key
from sapiens_kit.tasks.seg import SegmentationTask

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
