"""Heatmap losses of the Sapiens pose recipes."""

from __future__ import annotations

import torch
from torch import nn


def _check(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"heatmaps {tuple(pred.shape)} and targets {tuple(target.shape)} differ")
    if weights is not None and weights.shape != pred.shape[:2]:
        raise ValueError(f"keypoint weights must be (B, K) = {tuple(pred.shape[:2])}, "
                         f"got {tuple(weights.shape)}")


class KeypointMSELoss(nn.Module):
    """``mean((pred - target)^2 * w_k)`` over all of ``B, K, H, W`` (official, no 0.5 factor).

    Args:
        use_target_weight: Multiply each keypoint's error by its weight (official: on).
        loss_weight: Scale of the loss.
    """

    def __init__(self, use_target_weight: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        """``pred``/``target`` ``(B, K, H, W)``, ``weights`` ``(B, K)`` -> scalar."""
        _check(pred, target, weights)
        err = (pred.float() - target.float()) ** 2
        if self.use_target_weight and weights is not None:
            err = err * weights.float()[:, :, None, None]
        return err.mean() * self.loss_weight


class KeypointOHKMMSELoss(nn.Module):
    """Online hard keypoint mining: per sample, the mean of the ``topk`` largest keypoint MSEs.

    Each keypoint's MSE is averaged over its heatmap (weighted by its target weight); the
    ``topk`` worst keypoints of every sample are averaged, then the batch. ``topk`` larger than
    ``K`` uses all keypoints.

    Args:
        topk: Keypoints kept per sample (official Goliath 0.3B/1B: 128).
        use_target_weight: Multiply each keypoint's error by its weight.
        loss_weight: Scale of the loss.
    """

    def __init__(self, topk: int = 8, use_target_weight: bool = True,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if topk <= 0:
            raise ValueError(f"topk must be positive, got {topk}")
        self.topk = topk
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        """``pred``/``target`` ``(B, K, H, W)``, ``weights`` ``(B, K)`` -> scalar."""
        _check(pred, target, weights)
        per_kp = ((pred.float() - target.float()) ** 2).mean((2, 3))
        if self.use_target_weight and weights is not None:
            per_kp = per_kp * weights.float()
        top = per_kp.topk(min(self.topk, per_kp.shape[1]), dim=1).values
        return top.mean() * self.loss_weight
