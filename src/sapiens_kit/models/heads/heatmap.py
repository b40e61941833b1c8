"""Keypoint heatmap head, identical in structure and key names to Sapiens' ``HeatmapHead``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sapiens_kit.models.heads._blocks import conv_stack, deconv_stack, init_head_weights


class HeatmapHead(nn.Module):
    """2 stride-2 deconvs (4x), 2 1x1 convs, then ``final_layer`` to one heatmap per keypoint.

    Each deconv/conv is followed by InstanceNorm2d (no affine) and SiLU, as in the Sapiens fork of
    mmpose, so official pose checkpoints (``head.deconv_layers.{0,3}``, ``head.conv_layers.{0,3}``,
    ``head.final_layer``) load strictly. A 1024x768 input gives ``(B, K, 256, 192)`` heatmaps.

    Args:
        in_channels: Backbone embedding dim ``D``.
        num_keypoints: Number of heatmaps ``K`` (17, 133, 308 or a custom set's size).
        deconv_channels: Output channels of each transposed conv (official: 768 x 2); the
            output stride is ``16 / 2 ** len(deconv_channels)``.
        conv_channels: Output channels of each 1x1 conv (official: 768 x 2).
    """

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        deconv_channels: Sequence[int] = (768, 768),
        conv_channels: Sequence[int] = (768, 768),
    ) -> None:
        super().__init__()
        self.deconv_layers = deconv_stack(in_channels, deconv_channels)
        last = deconv_channels[-1] if deconv_channels else in_channels
        self.conv_layers = conv_stack(last, conv_channels)
        last = conv_channels[-1] if conv_channels else last
        self.final_layer = nn.Conv2d(last, num_keypoints, 1)
        self.num_keypoints = num_keypoints
        self.upsample = 2 ** len(deconv_channels)
        init_head_weights(self)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map ``(B, D, h, w)`` features to ``(B, K, h * 2^n, w * 2^n)`` heatmaps."""
        out: torch.Tensor = self.final_layer(self.conv_layers(self.deconv_layers(features)))
        return out
