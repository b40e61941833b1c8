"""Keypoint heatmap head, identical in structure and key names to Sapiens' ``HeatmapHead``."""

from __future__ import annotations

from collections.abc import Sequence

from sapiens_kit.models.heads._blocks import UpsampleHead


class HeatmapHead(UpsampleHead):
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

    output_name = "final_layer"

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        deconv_channels: Sequence[int] = (768, 768),
        conv_channels: Sequence[int] = (768, 768),
    ) -> None:
        super().__init__(in_channels, num_keypoints, deconv_channels, conv_channels)
        self.num_keypoints = num_keypoints
        self.upsample = self.upsample_factor
