"""Relative (or metric) depth estimation task."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sapiens_kit.losses.depth import DepthLoss, depth_target
from sapiens_kit.metrics.depth import DEPTH_METRICS, Alignment, DepthMetrics
from sapiens_kit.models.heads.depth import DepthHead
from sapiens_kit.tasks.base import BaseTask
from sapiens_kit.visualize import colorize_depth

log = logging.getLogger(__name__)


def resize_output(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear (``align_corners=False``) resize of ``(B, C, h, w)`` to ``size``, as the official
    code brings predictions to the label or image size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x.float()
    return F.interpolate(x.float(), size=tuple(size), mode="bilinear", align_corners=False)


def _per_image(batch: dict[str, Any], key: str) -> list[torch.Tensor]:
    value = batch[key]
    return list(value) if isinstance(value, torch.Tensor) else value


def _foregrounds(batch: dict[str, Any], n: int) -> list[torch.Tensor | None]:
    if "valid_mask" not in batch:
        return [None] * n
    return list(_per_image(batch, "valid_mask"))


class DepthTask(BaseTask):
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

    output_layer_name = "conv_seg"

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

    def _loss(self, pred: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        target = depth_target(depth, valid, self.hparams.depth_target)
        return self.loss_fn(pred, target, valid)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """SiLog on the (normalised) target at the training crop size."""
        pred = self(batch["image"])
        if isinstance(batch["depth"], torch.Tensor):
            loss = self._loss(pred, batch["depth"], batch["valid_mask"])
        else:  # targets of different sizes (augment=False): one image at a time
            loss = torch.stack([
                self._loss(pred[i : i + 1], d.unsqueeze(0), v.unsqueeze(0))
                for i, (d, v) in enumerate(zip(batch["depth"], batch["valid_mask"], strict=True))
            ]).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and metrics at each image's original depth resolution."""
        preds = self(batch["image"])
        losses = []
        for i, (depth, valid) in enumerate(zip(_per_image(batch, "depth"),
                                               _per_image(batch, "valid_mask"), strict=True)):
            pred = resize_output(preds[i : i + 1], depth.shape[-2:])
            depth, valid = depth.reshape(1, 1, *depth.shape[-2:]), valid.reshape(1, *valid.shape)
            losses.append(self._loss(pred, depth, valid))
            self.val_metrics.update(pred, depth, valid)
        self.log("val/loss", torch.stack(losses).mean(), batch_size=len(losses), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/<metric>`` for every depth metric."""
        result = self.val_metrics.compute()
        self.log_computed({f"val/{name}": result[name].float() for name in DEPTH_METRICS},
                          prog_bar=("val/rmse", "val/abs_rel"))
        self.val_metrics.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Same as validation."""
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        """Same as validation."""
        self.on_validation_epoch_end()

    def predict_dataset(self, images: list[Path], mask_dir: str | None = None,
                        **options: Any) -> Any:
        """Images stretched to the model size, with optional foreground masks from ``mask_dir``
        (``<stem>.png``, ``<stem>_mask.png`` from a seg run, or ``<stem>.npy``)."""
        from sapiens_kit.data.datasets.dense_folder import ForegroundImageList

        if options:
            log.warning("depth prediction ignores options %s", sorted(options))
        return ForegroundImageList(images, self.img_size, mask_dir)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Depth (model units: normalised relative depth, larger = farther) at original size."""
        preds = self(batch["image"])
        out = []
        fgs = _foregrounds(batch, len(batch["meta"]))
        for i, (meta, fg) in enumerate(zip(batch["meta"], fgs, strict=True)):
            depth = resize_output(preds[i : i + 1], meta["orig_size"])[0, 0]
            out.append({"depth": depth.cpu(), "foreground": None if fg is None else fg.cpu(),
                        "meta": meta})
        return out

    def save_predictions(
        self, batches: list[Any] | None, out_dir: Path, limit: int | None = None
    ) -> list[Path]:
        """Write ``<stem>_depth.npy`` (float32, original size) and ``<stem>_depth.png``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for n, pred in enumerate(p for batch in batches or [] for p in batch):
            if limit is not None and n >= limit:
                break
            stem = Path(pred["meta"]["path"]).stem
            depth = pred["depth"].numpy().astype(np.float32)
            fg = None if pred["foreground"] is None else pred["foreground"].numpy()
            npy, png = out_dir / f"{stem}_depth.npy", out_dir / f"{stem}_depth.png"
            np.save(npy, depth)
            cv2.imwrite(str(png), cv2.cvtColor(colorize_depth(depth, fg), cv2.COLOR_RGB2BGR))
            written += [npy, png]
        return written
