"""Task heads: pure ``nn.Module`` s that map a backbone feature map to task outputs."""

from sapiens_kit.models.heads.seg import SegmentationHead

__all__ = ["SegmentationHead"]
