"""Surface-normal estimation task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sapiens_kit.losses.normal import NormalLoss
from sapiens_kit.metrics.normal import NormalMetrics
from sapiens_kit.models.heads.normal import NormalHead, normalize_normals
from sapiens_kit.tasks.dense import DenseTask, dense_demo_data
from sapiens_kit.tasks.hooks import CardInfo


class NormalTask(DenseTask):
    """Sapiens backbone + :class:`NormalHead` + cosine + L1 loss on the foreground.

    Normals use the kit's camera axes (X right, Y up, Z towards the camera; see
    :mod:`sapiens_kit.data.datasets.dense_folder`). Validation upsamples the prediction to each
    image's original size and reports ``val/mean_angular_error``, ``val/median_angular_error``
    (degrees) and ``val/within_11_25``, ``val/within_22_5``, ``val/within_30`` (% of pixels).
    The official normal models use patch padding 2, the default here.

    Args:
        cosine_weight: Weight of the cosine term (official 1).
        l1_weight: Weight of the L1 term (official 1).
        grad_weight: Weight of an optional gradient-matching term (0 = off).
        head: :class:`NormalHead` keyword arguments (``deconv_channels``, ``conv_channels``,
            ``dropout``).
        **kwargs: :class:`BaseTask` arguments (backbone, weights, optimisation).
    """

    key = "normal"
    card_info = CardInfo("surface-normal estimation", "image-to-image",
                         "surface-normal-estimation")
    target_key = "normal"
    media_kind = "normals"

    def __init__(
        self,
        cosine_weight: float = 1.0,
        l1_weight: float = 1.0,
        grad_weight: float = 0.0,
        head: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("patch_padding", 2)
        super().__init__(**kwargs)
        self.loss_fn = NormalLoss(cosine_weight, l1_weight, grad_weight)
        self.val_metrics = NormalMetrics()

    def build_head(self, in_channels: int) -> nn.Module:
        """The official normal head (3 outputs)."""
        return NormalHead(in_channels, 3, **(self.hparams.head or {}))

    def to_output(self, pred: torch.Tensor) -> torch.Tensor:
        """Unit normals ``(H, W, 3)``."""
        return normalize_normals(pred)[0].permute(1, 2, 0)

    def display(self, pred: torch.Tensor) -> np.ndarray:
        """Unit normals ``(H, W, 3)``."""
        return F.normalize(pred.float(), dim=0).permute(1, 2, 0).numpy()

    @classmethod
    def demo_data(cls, root: Path) -> dict[str, Any]:
        """A few generated figures with analytic normals (written under ``root``)."""
        return dense_demo_data("normal", root)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/mean_angular_error`` and the other angular metrics."""
        result = self.val_metrics.compute()
        self.log_computed({f"val/{name}": value.float() for name, value in result.items()},
                          prog_bar=("val/mean_angular_error",))
        self.val_metrics.reset()
