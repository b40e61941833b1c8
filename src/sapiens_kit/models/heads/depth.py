"""Depth head, identical in structure and key names to Sapiens' ``VitDepthHead``."""

from __future__ import annotations

from collections.abc import Sequence

from sapiens_kit.models.heads._blocks import UpsampleHead


class DepthHead(UpsampleHead):
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
        super().__init__(in_channels, num_outputs, deconv_channels, conv_channels, dropout)
