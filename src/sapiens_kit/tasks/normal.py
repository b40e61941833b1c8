"""Surface-normal estimation task."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from sapiens_kit.losses.normal import NormalLoss
from sapiens_kit.metrics.normal import NormalMetrics
from sapiens_kit.models.heads.normal import NormalHead, normalize_normals
from sapiens_kit.tasks.base import BaseTask
from sapiens_kit.tasks.depth import _foregrounds, _per_image, resize_output
from sapiens_kit.visualize import colorize_normals

log = logging.getLogger(__name__)


class NormalTask(BaseTask):
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

    output_layer_name = "conv_seg"

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

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Cosine + L1 at the training crop size."""
        pred = self(batch["image"])
        if isinstance(batch["normal"], torch.Tensor):
            loss = self.loss_fn(pred, batch["normal"], batch["valid_mask"])
        else:  # targets of different sizes (augment=False): one image at a time
            loss = torch.stack([
                self.loss_fn(pred[i : i + 1], n.unsqueeze(0), v.unsqueeze(0))
                for i, (n, v) in enumerate(zip(batch["normal"], batch["valid_mask"], strict=True))
            ]).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and angular errors at each image's original resolution."""
        preds = self(batch["image"])
        losses = []
        for i, (normal, valid) in enumerate(zip(_per_image(batch, "normal"),
                                                _per_image(batch, "valid_mask"), strict=True)):
            pred = resize_output(preds[i : i + 1], normal.shape[-2:])
            normal, valid = normal.unsqueeze(0), valid.unsqueeze(0)
            losses.append(self.loss_fn(pred, normal, valid))
            self.val_metrics.update(pred, normal, valid)
        self.log("val/loss", torch.stack(losses).mean(), batch_size=len(losses), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/mean_angular_error`` and the other angular metrics."""
        result = self.val_metrics.compute()
        self.log_computed({f"val/{name}": value.float() for name, value in result.items()},
                          prog_bar=("val/mean_angular_error",))
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
            log.warning("normal prediction ignores options %s", sorted(options))
        return ForegroundImageList(images, self.img_size, mask_dir)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Unit normals ``(H, W, 3)`` at each image's original size."""
        preds = self(batch["image"])
        out = []
        fgs = _foregrounds(batch, len(batch["meta"]))
        for i, (meta, fg) in enumerate(zip(batch["meta"], fgs, strict=True)):
            normal = normalize_normals(resize_output(preds[i : i + 1], meta["orig_size"]))[0]
            out.append({"normal": normal.permute(1, 2, 0).cpu(),
                        "foreground": None if fg is None else fg.cpu(), "meta": meta})
        return out

    def save_predictions(
        self, batches: list[Any] | None, out_dir: Path, limit: int | None = None
    ) -> list[Path]:
        """Write ``<stem>_normal.npy`` (float32 (H, W, 3)) and ``<stem>_normal.png`` (RGB)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for n, pred in enumerate(p for batch in batches or [] for p in batch):
            if limit is not None and n >= limit:
                break
            stem = Path(pred["meta"]["path"]).stem
            normal = pred["normal"].numpy().astype(np.float32)
            fg = None if pred["foreground"] is None else pred["foreground"].numpy()
            npy, png = out_dir / f"{stem}_normal.npy", out_dir / f"{stem}_normal.png"
            np.save(npy, normal)
            cv2.imwrite(str(png), cv2.cvtColor(colorize_normals(normal, fg), cv2.COLOR_RGB2BGR))
            written += [npy, png]
        return written
