"""Surface-normal head, identical in structure and key names to Sapiens' ``VitNormalHead``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sapiens_kit.models.heads._blocks import UpsampleHead


class NormalHead(UpsampleHead):
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
        super().__init__(in_channels, num_outputs, deconv_channels, conv_channels, dropout)


def normalize_normals(normals: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-pixel unit vectors ``n / (|n| + eps)`` along dim 1, as the official inference does."""
    return normals / (normals.norm(dim=1, keepdim=True) + eps)
