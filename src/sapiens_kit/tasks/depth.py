"""Relative (or metric) depth estimation task."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from sapiens_kit.losses.depth import DepthLoss, depth_target
from sapiens_kit.metrics.depth import DEPTH_METRICS, Alignment, DepthMetrics
from sapiens_kit.models.heads.depth import DepthHead
from sapiens_kit.tasks.dense import DenseTask, dense_demo_data
from sapiens_kit.tasks.hooks import CardInfo


class DepthTask(DenseTask):
    """Sapiens backbone + :class:`DepthHead` + scale-invariant log loss.

    Training follows the official recipe: per image, the foreground depth is min-max normalised
    to [0, 1] (background -1) and SiLog (lambda 0.5) is taken on pixels with target > 1e-6.
    ``depth_target="metric"`` trains on the depth values themselves instead. Validation upsamples
    the prediction to each image's original depth size, aligns it to the ground truth per image
    (``alignment``) and reports ``val/abs_rel``, ``val/sq_rel``, ``val/rmse``, ``val/rmse_log``,
    ``val/delta1..3`` in the ground truth's units.

    Args:
        depth_target: ``relative`` (official normalised target) or ``metric``.
        alignment: Per-image alignment before the metrics: ``scale_shift``, ``scale``, ``none``.
        silog_lambda: SiLog variance weight (official 0.5).
        grad_weight: Weight of the optional gradient-matching loss term (0 = off).
        head: :class:`DepthHead` keyword arguments (``deconv_channels``, ``conv_channels``,
            ``dropout``).
        **kwargs: :class:`BaseTask` arguments (backbone, weights, optimisation).
    """

    key = "depth"
    card_info = CardInfo("relative depth estimation", "depth-estimation", "depth-estimation")
    target_key = "depth"
    media_kind = "depth"

    def __init__(
        self,
        depth_target: Literal["relative", "metric"] = "relative",
        alignment: Alignment = "scale_shift",
        silog_lambda: float = 0.5,
        grad_weight: float = 0.0,
        head: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if depth_target not in ("relative", "metric"):
            raise ValueError(f"depth_target must be 'relative' or 'metric', got {depth_target!r}")
        super().__init__(**kwargs)
        self.loss_fn = DepthLoss(lam=silog_lambda, grad_weight=grad_weight)
        self.val_metrics = DepthMetrics(alignment)

    def build_head(self, in_channels: int) -> nn.Module:
        """The official depth head (1 output)."""
        return DepthHead(in_channels, 1, **(self.hparams.head or {}))

    def loss(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """SiLog against the official normalised target (or the raw depth when ``metric``)."""
        return self.loss_fn(pred, depth_target(target, valid, self.hparams.depth_target), valid)

    def to_output(self, pred: torch.Tensor) -> torch.Tensor:
        """Depth ``(H, W)`` in model units (normalised relative depth, larger = farther)."""
        return pred[0, 0]

    def display(self, pred: torch.Tensor) -> np.ndarray:
        """The single channel as an ``(H, W)`` array."""
        return pred.reshape(pred.shape[-2:]).numpy()

    @classmethod
    def demo_data(cls, root: Path) -> dict[str, Any]:
        """A few generated figures with analytic depth (written under ``root``)."""
        return dense_demo_data("depth", root)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/<metric>`` for every depth metric."""
        result = self.val_metrics.compute()
        self.log_computed({f"val/{name}": result[name].float() for name in DEPTH_METRICS},
                          prog_bar=("val/rmse", "val/abs_rel"))
        self.val_metrics.reset()
