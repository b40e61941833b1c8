"""Depth metrics on foreground pixels after per-image alignment of the prediction."""

from __future__ import annotations

from typing import Literal

import torch
from torchmetrics import Metric

Alignment = Literal["scale_shift", "scale", "none"]
#: Metric names, in reporting order.
DEPTH_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")


def align_depth(
    pred: torch.Tensor, target: torch.Tensor, mode: Alignment = "scale_shift"
) -> tuple[torch.Tensor, float, float]:
    """Least-squares fit of ``scale * pred + shift`` to ``target`` (1-D tensors of pixels).

    ``scale_shift`` minimises ``sum((s p + t - g)^2)`` (closed form on centred values);
    ``scale`` fixes ``t = 0`` (``s = sum(p g) / sum(p^2)``); ``none`` returns ``pred``. A constant
    prediction gets ``s = 0`` and ``t = mean(g)``. Computed in float64.

    Returns:
        ``(aligned prediction, scale, shift)``.
    """
    p, g = pred.double(), target.double()
    if mode == "none":
        return p, 1.0, 0.0
    if mode == "scale":
        denom = (p * p).sum()
        scale = (p * g).sum() / denom if denom > 0 else p.new_zeros(())
        return scale * p, float(scale), 0.0
    if mode != "scale_shift":
        raise ValueError(f"alignment must be scale_shift, scale or none, got {mode!r}")
    pc, gc = p - p.mean(), g - g.mean()
    denom = (pc * pc).sum()
    scale = (pc * gc).sum() / denom if denom > 0 else p.new_zeros(())
    shift = g.mean() - scale * p.mean()
    return scale * p + shift, float(scale), float(shift)


def depth_errors(pred: torch.Tensor, target: torch.Tensor, min_depth: float = 1e-6
                 ) -> dict[str, torch.Tensor]:
    """The standard errors of one image's valid pixels (1-D, ``target > 0``).

    The prediction is clamped to ``min_depth`` first so the log and ratio terms exist.
    """
    p, g = pred.double().clamp(min=min_depth), target.double()
    ratio = torch.maximum(p / g, g / p)
    return {
        "abs_rel": ((p - g).abs() / g).mean(),
        "sq_rel": ((p - g) ** 2 / g).mean(),
        "rmse": ((p - g) ** 2).mean().sqrt(),
        "rmse_log": ((p.log() - g.log()) ** 2).mean().sqrt(),
        "delta1": (ratio < 1.25).double().mean(),
        "delta2": (ratio < 1.25**2).double().mean(),
        "delta3": (ratio < 1.25**3).double().mean(),
    }


class DepthMetrics(Metric):
    """AbsRel, SqRel, RMSE, RMSE-log and delta < 1.25^n (n = 1..3, as fractions).

    Each image's foreground prediction is first aligned to its ground truth (``alignment``:
    least-squares scale and shift, scale only, or none for metric depth), clamped to
    ``min_depth``, and the errors are computed over its valid pixels; the reported values are the
    means over images (images without a valid pixel are not counted).

    Args:
        alignment: ``scale_shift`` (default), ``scale`` or ``none``.
        min_depth: Lower clamp of the aligned prediction.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, alignment: Alignment = "scale_shift", min_depth: float = 1e-6) -> None:
        super().__init__()
        if alignment not in ("scale_shift", "scale", "none"):
            raise ValueError(f"alignment must be scale_shift, scale or none, got {alignment!r}")
        self.alignment, self.min_depth = alignment, min_depth
        for name in DEPTH_METRICS:
            self.add_state(name, default=torch.zeros((), dtype=torch.float64),
                           dist_reduce_fx="sum")
        self.add_state("images", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> None:
        """Add images: ``preds``/``target`` ``(B, 1, H, W)`` or ``(B, H, W)``, ``valid (B, H, W)``.

        Pixels count when ``valid`` and the ground truth is finite and > 0.
        """
        preds = preds.reshape(preds.shape[0], -1)
        target = target.reshape(target.shape[0], -1)
        valid = valid.reshape(valid.shape[0], -1).bool()
        if preds.shape != target.shape or valid.shape != target.shape:
            raise ValueError(f"preds {tuple(preds.shape)}, target {tuple(target.shape)} and "
                             f"valid {tuple(valid.shape)} must hold the same pixels")
        keep = valid & torch.isfinite(target) & (target > 0) & torch.isfinite(preds)
        for p, g, k in zip(preds, target, keep, strict=True):
            if not k.any():
                continue
            aligned, _, _ = align_depth(p[k], g[k], self.alignment)
            for name, value in depth_errors(aligned, g[k], self.min_depth).items():
                setattr(self, name, getattr(self, name) + value)
            self.images += 1

    def compute(self) -> dict[str, torch.Tensor]:
        """Means over the images seen (NaN when none had a valid pixel)."""
        n = self.images.double()
        return {name: getattr(self, name) / n if n > 0 else torch.tensor(float("nan"))
                for name in DEPTH_METRICS}
