"""Body-part segmentation head, identical in structure and key names to Sapiens' ``VitHead``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sapiens_kit.models.heads._blocks import conv_stack, deconv_stack, init_head_weights


class SegmentationHead(nn.Module):
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
        super().__init__()
        self.deconv_layers = deconv_stack(in_channels, deconv_channels)
        last = deconv_channels[-1] if deconv_channels else in_channels
        self.conv_layers = conv_stack(last, conv_channels)
        last = conv_channels[-1] if conv_channels else last
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(last, num_classes, 1)
        self.num_classes = num_classes
        init_head_weights(self)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map ``(B, D, h, w)`` features to ``(B, num_classes, 8h, 8w)`` logits."""
        x = self.conv_layers(self.deconv_layers(features))
        return self.conv_seg(self.dropout(x))
