"""Depth losses: the official scale-invariant log loss and an optional gradient-matching term."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def depth_target(
    depth: torch.Tensor, valid: torch.Tensor, mode: Literal["relative", "metric"] = "relative",
    background: float = -1.0, eps: float = 1e-6,
) -> torch.Tensor:
    """The training target: foreground depth, ``background`` elsewhere.

    ``relative`` (official ``GenerateDepthTarget``): per image, foreground depth min-max
    normalised to [0, 1] (larger = farther). ``metric``: the depth values unchanged.

    Args:
        depth: ``(B, 1, H, W)`` depth.
        valid: ``(B, H, W)`` foreground / valid-depth mask.
        mode: ``relative`` or ``metric``.
        background: Value written outside the foreground (official: -1).
        eps: Guards a foreground of constant depth (its target becomes 0).
    """
    mask = valid.unsqueeze(1) if valid.ndim == depth.ndim - 1 else valid
    out = depth.float()
    if mode == "relative":
        big = torch.finfo(out.dtype).max
        lo = torch.where(mask, out, big).amin(dim=(-2, -1), keepdim=True)
        hi = torch.where(mask, out, -big).amax(dim=(-2, -1), keepdim=True)
        out = (out - lo) / (hi - lo).clamp_min(eps)
    elif mode != "metric":
        raise ValueError(f"depth target mode must be 'relative' or 'metric', got {mode!r}")
    return torch.where(mask, out, torch.full_like(out, background))


def silog_loss(
    pred: torch.Tensor, target: torch.Tensor, lam: float = 0.5, eps: float = 1e-6,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image scale-invariant log loss ``sqrt(mean(d^2) - lam * mean(d)^2)``.

    ``d = log(target) - log(clamp(pred, eps))`` over the pixels with ``target > eps`` and finite
    (the official rule: it drops the background, -1, and the normalised foreground minimum, 0),
    further restricted by ``valid`` when given.

    Returns:
        ``(loss (B,), has_pixels (B,) bool)``; images without valid pixels have loss 0.
    """
    pred, target = pred.float().flatten(1), target.float().flatten(1)
    keep = (target > eps) & torch.isfinite(target)
    if valid is not None:
        keep &= valid.reshape(keep.shape).bool()
    diff = torch.log(torch.where(keep, target, 1.0)) - torch.log(pred.clamp(min=eps))
    diff = torch.where(keep, diff, 0.0)
    n = keep.sum(1)
    count = n.clamp(min=1).to(diff.dtype)
    mean_sq = diff.pow(2).sum(1) / count
    mean = diff.sum(1) / count
    # mean_sq - lam * mean^2 >= 0 for lam <= 1; the floor keeps sqrt's gradient finite at 0.
    loss = torch.sqrt((mean_sq - lam * mean.pow(2)).clamp(min=1e-12))
    return torch.where(n > 0, loss, 0.0), n > 0


def gradient_matching_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, scales: int = 4
) -> torch.Tensor:
    """Multi-scale gradient matching (MiDaS): L1 of the residual's finite differences.

    ``r = pred - target`` (summed over channels), differences taken between horizontally and
    vertically adjacent valid pixels at strides 1, 2, 4, ...; each scale is normalised by its
    number of valid pixels in the batch and the scales are summed.
    """
    residual = pred.float() - target.float()
    mask = valid.reshape(valid.shape[0], 1, *valid.shape[-2:]).float()
    total = residual.new_zeros(())
    for k in range(scales):
        step = 2**k
        r, m = residual[..., ::step, ::step], mask[..., ::step, ::step]
        if r.shape[-1] < 2 and r.shape[-2] < 2:
            break
        mx = m[..., :, 1:] * m[..., :, :-1]
        my = m[..., 1:, :] * m[..., :-1, :]
        gx = ((r[..., :, 1:] - r[..., :, :-1]).abs() * mx).sum()
        gy = ((r[..., 1:, :] - r[..., :-1, :]).abs() * my).sum()
        total = total + (gx + gy) / m.sum().clamp(min=1)
    return total


class DepthLoss(nn.Module):
    """SiLog (official, lambda 0.5) averaged over the images that have valid pixels, plus an
    optional gradient-matching term on the same pixels.

    The prediction is bilinearly upsampled to the target size first. A batch with no valid
    pixel at all gives a zero loss that still back-propagates (the official loss would be NaN).

    Args:
        lam: SiLog variance weight (official 0.5).
        eps: Smallest valid target and prediction clamp (official 1e-6).
        grad_weight: Weight of the gradient-matching term (0 = off, the official setting).
        grad_scales: Number of scales of the gradient-matching term.
    """

    def __init__(self, lam: float = 0.5, eps: float = 1e-6, grad_weight: float = 0.0,
                 grad_scales: int = 4) -> None:
        super().__init__()
        self.lam, self.eps = lam, eps
        self.grad_weight, self.grad_scales = grad_weight, grad_scales

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        """``pred (B, 1, h, w)``, ``target (B, 1, H, W)`` (background <= eps) -> scalar."""
        if pred.shape[-2:] != target.shape[-2:]:
            pred = F.interpolate(pred, size=target.shape[-2:], mode="bilinear",
                                 align_corners=False)
        per_image, has = silog_loss(pred, target, self.lam, self.eps, valid)
        loss = per_image.sum() / has.sum().clamp(min=1) + pred.sum() * 0.0
        if self.grad_weight:
            keep = (target > self.eps) & torch.isfinite(target)
            if valid is not None:
                keep &= valid.reshape(keep.shape).bool()
            loss = loss + self.grad_weight * gradient_matching_loss(
                pred, torch.where(keep, target, 0.0), keep, self.grad_scales)
        return loss
