"""LightningModules: one per task (seg, pose, depth, normal)."""

from sapiens_kit.tasks.base import BaseTask
from sapiens_kit.tasks.depth import DepthTask
from sapiens_kit.tasks.normal import NormalTask
from sapiens_kit.tasks.pose import PoseTask
from sapiens_kit.tasks.seg import SegmentationTask

__all__ = ["BaseTask", "DepthTask", "NormalTask", "PoseTask", "SegmentationTask"]
