"""Body-part segmentation task."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import torch
import torch.nn.functional as F
from torch import nn

from sapiens_kit.data.classes import default_palette
from sapiens_kit.data.io import read_rgb
from sapiens_kit.losses.seg import SegmentationLoss
from sapiens_kit.metrics.seg import SegmentationMetrics
from sapiens_kit.models.heads.seg import SegmentationHead
from sapiens_kit.tasks.base import BaseTask
from sapiens_kit.visualize import overlay_mask


class SegmentationTask(BaseTask):
    """Sapiens backbone + :class:`SegmentationHead` + weighted cross-entropy.

    Validation upsamples the logits to each image's original label size before the argmax, so
    mIoU/mAcc/aAcc are computed at the original label resolution.

    Args:
        num_classes: Output classes (from the data module's vocabulary).
        class_names: Names used for per-class metric keys.
        palette: RGB colours per class for overlays.
        class_weight: Cross-entropy class weights.
        ignore_index: Label id ignored by loss and metrics.
        dice_weight: Weight of an optional Dice term.
        head: :class:`SegmentationHead` keyword arguments (channels, dropout).
        **kwargs: :class:`BaseTask` arguments (backbone, weights, optimisation).
    """

    output_layer_name = "conv_seg"

    def __init__(
        self,
        num_classes: int = 28,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        class_weight: Sequence[float] | None = None,
        ignore_index: int = 255,
        dice_weight: float = 0.0,
        head: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.loss_fn = SegmentationLoss(class_weight, ignore_index, dice_weight)
        self.val_metrics = SegmentationMetrics(num_classes, ignore_index)
        self.class_names = list(class_names or [str(i) for i in range(num_classes)])

    def build_head(self, in_channels: int) -> nn.Module:
        """The official seg head with ``num_classes`` outputs."""
        return SegmentationHead(in_channels, self.hparams.num_classes, **(self.hparams.head or {}))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Weighted CE on labels at the training crop size."""
        logits = self(batch["image"])
        loss = self.loss_fn(logits, batch["mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def _per_image_logits(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        logits = self(batch["image"])
        out = []
        for i, mask in enumerate(batch["mask"]):
            out.append(F.interpolate(
                logits[i : i + 1].float(), size=mask.shape[-2:], mode="bilinear",
                align_corners=False,
            ))
        return out

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and confusion matrix at each image's original label resolution."""
        losses = []
        for logit, mask in zip(self._per_image_logits(batch), batch["mask"], strict=True):
            mask = mask.unsqueeze(0)
            losses.append(self.loss_fn(logit, mask))
            self.val_metrics.update(logit.argmax(1), mask)
        self.log("val/loss", torch.stack(losses).mean(), batch_size=len(losses), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/mIoU``, ``val/mAcc``, ``val/aAcc`` and ``val/IoU/<class>``."""
        result = self.val_metrics.compute()
        main = ("val/mIoU", "val/mAcc", "val/aAcc")
        self.log_computed({f"val/{k}": result[k] for k in ("mIoU", "mAcc", "aAcc")}, main)
        self.log_computed({f"val/IoU/{name}": iou for name, iou in
                           zip(self.class_names, result["IoU"], strict=True)
                           if not torch.isnan(iou)})
        self.val_metrics.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Same as validation."""
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        """Same as validation."""
        self.on_validation_epoch_end()

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Label maps at each image's original size, plus the meta passed in."""
        logits = self(batch["image"])
        out = []
        for i, meta in enumerate(batch["meta"]):
            size = meta["orig_size"]
            up = F.interpolate(logits[i : i + 1].float(), size=size, mode="bilinear",
                               align_corners=False)
            probs = up.softmax(1)[0]
            score, label = probs.max(0)
            out.append({"label": label.to(torch.uint8).cpu(), "score": score.cpu(), "meta": meta})
        return out

    def save_predictions(
        self, batches: list[Any] | None, out_dir: Path, limit: int | None = None
    ) -> list[Path]:
        """Write ``<stem>_mask.png`` (class ids) and ``<stem>_overlay.jpg`` per image."""
        out_dir.mkdir(parents=True, exist_ok=True)
        palette = self.hparams.palette or default_palette(self.hparams.num_classes)
        written: list[Path] = []
        for pred in (p for batch in batches or [] for p in batch):
            if limit is not None and len(written) >= 2 * limit:
                break
            src = Path(pred["meta"]["path"])
            label = pred["label"].numpy()
            mask_path = out_dir / f"{src.stem}_mask.png"
            overlay_path = out_dir / f"{src.stem}_overlay.jpg"
            cv2.imwrite(str(mask_path), label)
            overlay = overlay_mask(read_rgb(src), label, palette)
            cv2.imwrite(str(overlay_path), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            written += [mask_path, overlay_path]
        return written
