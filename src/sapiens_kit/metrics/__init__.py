"""torchmetrics Metrics for the kit's tasks."""

from sapiens_kit.metrics.depth import DepthMetrics, align_depth
from sapiens_kit.metrics.normal import NormalMetrics
from sapiens_kit.metrics.pose import CocoKeypointMetric
from sapiens_kit.metrics.seg import SegmentationMetrics

__all__ = [
    "CocoKeypointMetric",
    "DepthMetrics",
    "NormalMetrics",
    "SegmentationMetrics",
    "align_depth",
]
