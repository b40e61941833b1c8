"""Body-part segmentation head, identical in structure and key names to Sapiens' ``VitHead``."""

from __future__ import annotations

from collections.abc import Sequence

from sapiens_kit.models.heads._blocks import UpsampleHead


class SegmentationHead(UpsampleHead):
    """3 stride-2 deconvs (8x), 3 1x1 convs, Dropout2d, then ``conv_seg`` to class logits.

    Args:
        in_channels: Backbone embedding dim ``D``.
        num_classes: Number of output classes (28 for the Sapiens Goliath vocabulary).
        deconv_channels: Output channels of each transposed conv (official: 768 x 3).
        conv_channels: Output channels of each 1x1 conv (official: 768 x 3).
        dropout: Dropout2d probability before ``conv_seg`` (official: 0.1).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        deconv_channels: Sequence[int] = (768, 768, 768),
        conv_channels: Sequence[int] = (768, 768, 768),
        dropout: float = 0.1,
    ) -> None:
        super().__init__(in_channels, num_classes, deconv_channels, conv_channels, dropout)
        self.num_classes = num_classes
