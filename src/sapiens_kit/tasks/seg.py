"""Body-part segmentation task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sapiens_kit.data.classes import default_palette
from sapiens_kit.data.io import read_rgb
from sapiens_kit.losses.seg import SegmentationLoss
from sapiens_kit.media import Picture, caption, resize_for_display, to_rgb
from sapiens_kit.metrics.seg import SegmentationMetrics
from sapiens_kit.models.heads.seg import SegmentationHead
from sapiens_kit.tasks.base import BaseTask
from sapiens_kit.tasks.hooks import CardInfo
from sapiens_kit.utils.config import asset_path
from sapiens_kit.visualize import hstack, overlay_mask

if TYPE_CHECKING:
    from sapiens_kit.models import PretrainedCfg


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

    key = "seg"
    card_info = CardInfo("body-part segmentation", "image-segmentation", "semantic-segmentation")
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
        written: list[Path] = []
        for pred in (p for batch in batches or [] for p in batch):
            if limit is not None and len(written) >= 2 * limit:
                break
            src = Path(pred["meta"]["path"])
            label = pred["label"].numpy()
            mask_path = out_dir / f"{src.stem}_mask.png"
            overlay_path = out_dir / f"{src.stem}_overlay.jpg"
            cv2.imwrite(str(mask_path), label)
            overlay = self.draw(read_rgb(src), [pred])
            cv2.imwrite(str(overlay_path), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            written += [mask_path, overlay_path]
        return written

    # ------------------------------------------------------------------ pictures
    @property
    def palette(self) -> list[list[int]]:
        """RGB colour per class: the data's palette, else the default one."""
        given = self.hparams.get("palette")
        return [list(c) for c in (given or default_palette(int(self.hparams["num_classes"])))]

    def draw(self, image: np.ndarray, predictions: Sequence[Mapping[str, Any]],
             **options: Any) -> np.ndarray:
        """The predicted parts over the photo (the first, and only, prediction), blended with
        opacity ``alpha`` (default 0.5)."""
        label = predictions[0]["label"]
        label = label.numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
        return overlay_mask(image, label, self.palette,
                            alpha=float(self.draw_option(options, "alpha", 0.5)))

    def media_pictures(self, batch: dict[str, Any], n: int,
                       predict: bool = True) -> tuple[str, list[Picture]]:
        """The image with W&B mask layers (``prediction``, ``ground_truth``) and class names."""
        images = batch["image"][:n]
        size = tuple(images.shape[-2:])
        labels = None
        if predict:
            logits = F.interpolate(self(images).float(), size=size, mode="bilinear",
                                   align_corners=False)
            labels = logits.argmax(1).cpu()
        names = dict(enumerate(self.class_names))
        ignore = int(self.hparams.get("ignore_index", 255))
        out = []
        for i in range(len(images)):
            image = to_rgb(images[i])
            truth = resize_for_display(batch["mask"][i].cpu(), size).to(torch.uint8).numpy()
            layers = {"ground_truth": {"mask_data": truth,
                                       "class_labels": {**names, ignore: "ignore"}}}
            flat = [overlay_mask(image, np.where(truth == ignore, 0, truth), self.palette)]
            if labels is not None:
                pred = labels[i].to(torch.uint8).numpy()
                layers = {"prediction": {"mask_data": pred, "class_labels": names}, **layers}
                flat.insert(0, overlay_mask(image, pred, self.palette))
            out.append(Picture(image, caption(batch, i), layers, hstack(flat)))
        return "segmentation", out

    # ------------------------------------------------------------------ Hub card, weights, data
    def card_config(self) -> dict[str, Any]:
        """The class names."""
        return {"classes": list(self.class_names)}

    @classmethod
    def card_lines(cls, config: Mapping[str, Any]) -> list[str]:
        """The class count, and a table of the class ids and names."""
        classes = config.get("classes") or []
        lines = [f"| classes | {len(classes)} |", "", "## Classes", "", "| id | name |",
                 "|---|---|"]
        return lines + [f"| {i} | {n} |" for i, n in enumerate(classes)]

    @classmethod
    def arguments_for_weights(cls, pretrained: PretrainedCfg | None,
                              data: Mapping[str, Any]) -> dict[str, Any]:
        """The vocabulary: ``data.classes=`` when given, else the official 28 Goliath classes
        (only the class count when the weights have another number of classes)."""
        from sapiens_kit.data.classes import load_classes

        given = data.get("classes")
        count = (pretrained.num_classes if pretrained is not None else None) or 28
        vocab = load_classes(given or "sapiens28")
        if given is None and vocab.num_classes != count:
            return {"num_classes": count}
        return {"num_classes": vocab.num_classes, "class_names": list(vocab.names),
                "palette": [list(p) for p in vocab.palette]}

    @classmethod
    def demo_data(cls, root: Path) -> dict[str, Any]:
        """The bundled demo: 4 COCO photos with person masks (nothing to generate)."""
        return {"_target_": "sapiens_kit.data.MaskFolderDataModule",
                "root": asset_path("demo_seg"), "classes": None, "img_size": "${img_size}",
                "batch_size": 2,
                "num_workers": 0}
