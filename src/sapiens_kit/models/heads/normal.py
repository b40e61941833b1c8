"""Surface-normal head, identical in structure and key names to Sapiens' ``VitNormalHead``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sapiens_kit.models.heads._blocks import conv_stack, deconv_stack, init_head_weights


class NormalHead(nn.Module):
    """The segmentation head's layout with 3 outputs: 3 stride-2 deconvs (8x), 3 1x1 convs,
    Dropout2d, ``conv_seg`` to un-normalised XYZ.

    State-dict keys match the official checkpoints' ``decode_head.*``:
    ``deconv_layers.{0,3,6}``, ``conv_layers.{0,3,6}``, ``conv_seg``. The output is not
    normalised here (the loss's L1 term sees the raw vector, as in the official recipe);
    :func:`normalize_normals` gives unit normals for inference.

    Args:
        in_channels: Backbone embedding dim ``D``.
        num_outputs: Output channels (3: X, Y, Z).
        deconv_channels: Output channels of each transposed conv (official: 768 x 3).
        conv_channels: Output channels of each 1x1 conv (official: 768 x 3).
        dropout: Dropout2d probability before ``conv_seg`` (official: 0.1).
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int = 3,
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
        self.conv_seg = nn.Conv2d(last, num_outputs, 1)
        init_head_weights(self)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map ``(B, D, h, w)`` features to ``(B, 3, h * 2^n, w * 2^n)`` raw normals."""
        x = self.conv_layers(self.deconv_layers(features))
        return self.conv_seg(self.dropout(x))


def normalize_normals(normals: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-pixel unit vectors ``n / (|n| + eps)`` along dim 1, as the official inference does."""
    return normals / (normals.norm(dim=1, keepdim=True) + eps)
