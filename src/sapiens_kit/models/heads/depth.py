"""Depth head, identical in structure and key names to Sapiens' ``VitDepthHead``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sapiens_kit.models.heads._blocks import conv_stack, deconv_stack, init_head_weights


class DepthHead(nn.Module):
    """Stride-2 deconvs (official: 4 -> 16x, full input resolution), 1x1 convs, Dropout2d, then
    ``conv_seg`` to one unbounded depth channel (no activation, as the official head).

    State-dict keys match the official checkpoints' ``decode_head.*``:
    ``deconv_layers.{0,3,6,9}``, ``conv_layers.{0,3}``, ``conv_seg``. Any number of deconvs is
    accepted (each doubles the resolution); the task upsamples the output to the target size.

    Args:
        in_channels: Backbone embedding dim ``D``.
        num_outputs: Output channels (1 for depth).
        deconv_channels: Output channels of each transposed conv (official: 384 x 4).
        conv_channels: Output channels of each 1x1 conv (official: 384 x 2).
        dropout: Dropout2d probability before ``conv_seg`` (official: 0.1).
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int = 1,
        deconv_channels: Sequence[int] = (384, 384, 384, 384),
        conv_channels: Sequence[int] = (384, 384),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.deconv_layers = deconv_stack(in_channels, deconv_channels)
        last = deconv_channels[-1] if deconv_channels else in_channels
        self.conv_layers = conv_stack(last, conv_channels)
        last = conv_channels[-1] if conv_channels else last
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(last, num_outputs, 1)
        self.upsample_factor = 2 ** len(deconv_channels)
        init_head_weights(self)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map ``(B, D, h, w)`` features to ``(B, num_outputs, h * 2^n, w * 2^n)`` depth."""
        x = self.conv_layers(self.deconv_layers(features))
        return self.conv_seg(self.dropout(x))
