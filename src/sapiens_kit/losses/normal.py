"""Surface-normal loss: the official cosine + L1 on foreground pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sapiens_kit.losses.depth import gradient_matching_loss


def _finite_or_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


class NormalLoss(nn.Module):
    """``cosine_weight * (1 - cos) + l1_weight * |pred - target|_1`` over foreground pixels.

    As the official ``CosineSimilarityLoss`` + ``L1Loss`` pair: the cosine term compares the
    unit-normalised prediction and target and is summed over valid pixels / #valid; the L1 term
    compares the **raw** (un-normalised) prediction with the unit target, summed over the 3
    channels and valid pixels and divided by #valid (not 3 * #valid); NaN/inf terms become 0.
    Pixels are pooled over the batch. The valid pixels are ``valid`` when given, else the
    official rule ``target[:, 0] > -100`` (background written as -1000). The prediction is
    bilinearly upsampled to the target size first.

    Args:
        cosine_weight: Weight of the cosine term (official 1).
        l1_weight: Weight of the L1 term (official 1).
        grad_weight: Weight of an optional gradient-matching term on the residual (0 = off).
        grad_scales: Number of scales of the gradient-matching term.
    """

    def __init__(self, cosine_weight: float = 1.0, l1_weight: float = 1.0,
                 grad_weight: float = 0.0, grad_scales: int = 4) -> None:
        super().__init__()
        self.cosine_weight, self.l1_weight = cosine_weight, l1_weight
        self.grad_weight, self.grad_scales = grad_weight, grad_scales

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        """``pred (B, 3, h, w)``, ``target (B, 3, H, W)``, ``valid (B, H, W)`` -> scalar."""
        if pred.shape[-2:] != target.shape[-2:]:
            pred = F.interpolate(pred, size=target.shape[-2:], mode="bilinear",
                                 align_corners=False)
        pred, target = pred.float(), target.float()
        keep = target[:, 0] > -100 if valid is None else valid.bool()
        target = torch.where(keep.unsqueeze(1), target, 0.0)
        count = keep.sum().clamp(min=1)
        cos = (F.normalize(pred, dim=1) * F.normalize(target, dim=1)).sum(1)
        cosine = ((1 - cos) * keep).sum() / count
        l1 = ((pred - target).abs().sum(1) * keep).sum() / count
        loss = self.cosine_weight * _finite_or_zero(cosine) + self.l1_weight * _finite_or_zero(l1)
        if self.grad_weight:
            loss = loss + self.grad_weight * gradient_matching_loss(
                pred, target, keep, self.grad_scales)
        return loss
