"""Surface-normal metrics: angular error statistics over foreground pixels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric


def angular_error(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Angle in degrees between vectors along dim 1 (float64; zero vectors give 90)."""
    p = pred.double() / pred.double().norm(dim=1, keepdim=True).clamp(min=eps)
    g = target.double() / target.double().norm(dim=1, keepdim=True).clamp(min=eps)
    return torch.rad2deg(torch.acos((p * g).sum(1).clamp(-1.0, 1.0)))


def threshold_name(t: float) -> str:
    """``11.25`` -> ``within_11_25`` (metric keys avoid dots)."""
    return "within_" + f"{t:g}".replace(".", "_")


class NormalMetrics(Metric):
    """Mean and median angular error (degrees) and % of pixels within 11.25/22.5/30 degrees.

    Statistics pool every valid pixel of every image (the usual surface-normal protocol). The
    mean and the percentages are exact; the median comes from a histogram of ``bin_width``
    degrees and is within ``bin_width / 2`` of the exact median (so memory does not grow with the
    data set).

    Args:
        thresholds: Angles (degrees) for the "% within" metrics (``within_11_25``, ...).
        bin_width: Histogram resolution for the median, in degrees.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, thresholds: Sequence[float] = (11.25, 22.5, 30.0),
                 bin_width: float = 0.01) -> None:
        super().__init__()
        self.thresholds = tuple(float(t) for t in thresholds)
        self.bin_width = float(bin_width)
        self.num_bins = round(180.0 / self.bin_width) + 1
        self.add_state("error_sum", default=torch.zeros((), dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("pixels", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("within", default=torch.zeros(len(self.thresholds), dtype=torch.long),
                       dist_reduce_fx="sum")
        self.add_state("histogram", default=torch.zeros(self.num_bins, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> None:
        """Add ``preds``/``target`` ``(B, 3, H, W)`` (any length) and ``valid (B, H, W)``."""
        if preds.shape != target.shape or valid.shape != target[:, 0].shape:
            raise ValueError(f"preds {tuple(preds.shape)}, target {tuple(target.shape)} and "
                             f"valid {tuple(valid.shape)} must hold the same pixels")
        keep = valid.bool() & torch.isfinite(target).all(1) & (target.norm(dim=1) > 0)
        err = angular_error(preds, target)[keep]
        err = torch.where(torch.isfinite(err), err, torch.full_like(err, 180.0))
        self.error_sum += err.sum()
        self.pixels += err.numel()
        self.within += torch.stack([(err < t).sum() for t in self.thresholds])
        bins = (err / self.bin_width).round().long().clamp(0, self.num_bins - 1)
        self.histogram += torch.bincount(bins, minlength=self.num_bins)

    def _median(self) -> torch.Tensor:
        n = int(self.pixels)
        cum = self.histogram.cumsum(0)
        ranks = torch.tensor([(n - 1) // 2 + 1, n // 2 + 1], device=cum.device)
        bins = torch.searchsorted(cum, ranks)
        return bins.double().mean() * self.bin_width

    def compute(self) -> dict[str, torch.Tensor]:
        """``mean_angular_error``, ``median_angular_error`` (degrees), ``within_*`` (%)."""
        if int(self.pixels) == 0:
            nan = torch.tensor(float("nan"), dtype=torch.float64)
            return {"mean_angular_error": nan, "median_angular_error": nan,
                    **{threshold_name(t): nan for t in self.thresholds}}
        n = self.pixels.double()
        out = {"mean_angular_error": self.error_sum / n, "median_angular_error": self._median()}
        for t, count in zip(self.thresholds, self.within, strict=True):
            out[threshold_name(t)] = 100.0 * count.double() / n
        return out
