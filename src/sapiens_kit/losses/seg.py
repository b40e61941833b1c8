"""Segmentation loss: class-weighted cross-entropy as the official recipe reduces it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SegmentationLoss(nn.Module):
    """Weighted CE averaged over all pixels (ignored pixels count as zeros), plus optional Dice.

    The official loss computes ``F.cross_entropy(..., weight, reduction='none')`` and then takes a
    plain ``.mean()`` over every pixel, ignored ones included; this is reproduced exactly. Logits
    are bilinearly upsampled to the label size first.

    Args:
        class_weight: Per-class weights (the Sapiens 28-class preset ships the official ones).
        ignore_index: Label to ignore.
        dice_weight: Weight of a soft multi-class Dice term (0 = off, the official setting).
    """

    def __init__(
        self,
        class_weight: Sequence[float] | None = None,
        ignore_index: int = 255,
        dice_weight: float = 0.0,
    ) -> None:
        super().__init__()
        weight = torch.tensor(class_weight, dtype=torch.float32) if class_weight else None
        self.register_buffer("class_weight", weight, persistent=False)
        self.ignore_index = ignore_index
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits (B, C, h, w)``, ``target (B, H, W)`` int64 -> scalar loss."""
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(
                logits, size=target.shape[-2:], mode="bilinear", align_corners=False
            )
        weight = self.class_weight.to(logits.dtype) if self.class_weight is not None else None
        loss = F.cross_entropy(
            logits, target, weight=weight, ignore_index=self.ignore_index, reduction="none"
        ).mean()
        if self.dice_weight:
            loss = loss + self.dice_weight * dice_loss(logits, target, self.ignore_index)
        return loss


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255,
              eps: float = 1.0) -> torch.Tensor:
    """Soft Dice over classes, ignoring ``ignore_index`` pixels: ``1 - mean_c 2|P∩T|/(|P|+|T|)``."""
    num_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1).to(logits.dtype)
    probs = logits.softmax(dim=1) * valid
    onehot = F.one_hot(target.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2)
    onehot = onehot.to(logits.dtype) * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return 1 - ((2 * inter + eps) / (denom + eps)).mean()
