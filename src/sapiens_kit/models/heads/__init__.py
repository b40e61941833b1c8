"""Task heads: pure ``nn.Module`` s that map a backbone feature map to task outputs."""

from sapiens_kit.models.heads.depth import DepthHead
from sapiens_kit.models.heads.heatmap import HeatmapHead
from sapiens_kit.models.heads.normal import NormalHead
from sapiens_kit.models.heads.seg import SegmentationHead

__all__ = ["DepthHead", "HeatmapHead", "NormalHead", "SegmentationHead"]
