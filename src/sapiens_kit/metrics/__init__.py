"""torchmetrics Metrics for the kit's tasks."""

from sapiens_kit.metrics.seg import SegmentationMetrics

__all__ = ["SegmentationMetrics"]
