"""Segmentation metrics accumulated over a whole dataset, as mmseg's IoUMetric reports them."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class SegmentationMetrics(Metric):
    """aAcc, mIoU, mAcc and per-class IoU/Acc from a confusion matrix summed over all images.

    Classes that never occur in either prediction or ground truth have an undefined IoU and are
    left out of the means (NaN-mean, as mmseg does). Pixels labelled ``ignore_index`` are skipped.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.add_state(
            "confmat", default=torch.zeros(num_classes, num_classes, dtype=torch.long),
            dist_reduce_fx="sum",
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add label maps ``preds`` and ``target`` of equal shape (any number of pixels)."""
        if preds.shape != target.shape:
            raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ")
        keep = target != self.ignore_index
        t, p = target[keep].long(), preds[keep].long()
        if t.numel() and (t.max() >= self.num_classes or t.min() < 0):
            raise ValueError(f"target holds ids outside 0..{self.num_classes - 1}")
        idx = t * self.num_classes + p
        self.confmat += torch.bincount(idx, minlength=self.num_classes**2).view(
            self.num_classes, self.num_classes
        )

    def compute(self) -> dict[str, torch.Tensor]:
        """``{"aAcc", "mIoU", "mAcc", "IoU" (per class), "Acc" (per class)}`` as fractions."""
        cm = self.confmat.double()
        tp = cm.diag()
        gt = cm.sum(1)
        pred = cm.sum(0)
        union = gt + pred - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.nan)
        acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.nan)
        return {
            "aAcc": tp.sum() / cm.sum().clamp(min=1),
            "mIoU": iou.nanmean(),
            "mAcc": acc.nanmean(),
            "IoU": iou,
            "Acc": acc,
        }
