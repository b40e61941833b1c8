"""What the per-pixel regression tasks (depth, normals) share: per-image evaluation at the
label's own size, foreground-aware prediction, and ``.npy`` + colour ``.png`` outputs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sapiens_kit.data.targets import DenseTarget, get_target
from sapiens_kit.media import Picture, caption, resize_for_display, to_rgb
from sapiens_kit.tasks.base import BaseTask
from sapiens_kit.visualize import blend, hstack

log = logging.getLogger(__name__)


def resize_output(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear (``align_corners=False``) resize of ``(B, C, h, w)`` to ``size``, as the official
    code brings predictions to the label or image size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x.float()
    return F.interpolate(x.float(), size=tuple(size), mode="bilinear", align_corners=False)


def per_image(batch: dict[str, Any], key: str) -> list[torch.Tensor]:
    """``batch[key]`` as one tensor per image (stacked when sizes agree, a list when not)."""
    value = batch[key]
    return list(value) if isinstance(value, torch.Tensor) else value


def foregrounds(batch: dict[str, Any], n: int) -> list[torch.Tensor | None]:
    """Per-image foreground masks of a prediction batch, or ``None`` for each image."""
    if "valid_mask" not in batch:
        return [None] * n
    return list(per_image(batch, "valid_mask"))


def dense_demo_data(target: str, root: Path) -> dict[str, Any]:
    """The generated demo set of a dense ``target`` (a few small synthetic figures)."""
    return {"_target_": "sapiens_kit.data.DenseFolderDataModule", "root": None,
            "target": target, "img_size": "${img_size}", "batch_size": 2, "num_workers": 0,
            "demo_size": [2, 2], "demo_image_size": [40, 30], "cache_dir": str(root)}


class DenseTask(BaseTask):
    """Base of :class:`DepthTask` and :class:`NormalTask`.

    Subclasses name their target (``target_key``), build the head, define :meth:`loss` and
    :meth:`to_output` (raw head output at the image size -> what is saved) and :meth:`display`
    (a raw head output as what the target's colour map takes); the colour map, file formats and
    flip rules come from the registered target object of ``target_key``.
    """

    #: Batch key of the target, and the suffix of the saved files.
    target_key: ClassVar[str]
    #: Name of the logged training pictures (``val/<media_kind>``).
    media_kind: ClassVar[str]
    output_layer_name = "conv_seg"

    def loss(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Training loss of ``(B, C, H, W)`` predictions against targets of the same size."""
        return self.loss_fn(pred, target, valid)

    def to_output(self, pred: torch.Tensor) -> torch.Tensor:
        """One image's ``(1, C, H, W)`` head output at its size -> the saved prediction."""
        raise NotImplementedError

    @property
    def dense_target(self) -> DenseTarget:
        """The target object of ``target_key`` (file formats, flips, colour map; see
        :mod:`sapiens_kit.data.targets`)."""
        return get_target(self.target_key)

    def colorize(self, values: np.ndarray, foreground: np.ndarray | None) -> np.ndarray:
        """An RGB uint8 picture of one prediction: the target's colour map."""
        return self.dense_target.colorize(values, foreground)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """The loss at the training crop size."""
        pred = self(batch["image"])
        target, valid = batch[self.target_key], batch["valid_mask"]
        if isinstance(target, torch.Tensor):
            loss = self.loss(pred, target, valid)
        else:  # targets of different sizes (augment=False): one image at a time
            loss = torch.stack([
                self.loss(pred[i : i + 1], t.unsqueeze(0), v.unsqueeze(0))
                for i, (t, v) in enumerate(zip(target, valid, strict=True))
            ]).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and metrics at each image's original label resolution."""
        preds = self(batch["image"])
        losses = []
        for i, (target, valid) in enumerate(zip(per_image(batch, self.target_key),
                                                per_image(batch, "valid_mask"), strict=True)):
            pred = resize_output(preds[i : i + 1], target.shape[-2:])
            target = target.reshape(1, -1, *target.shape[-2:])
            valid = valid.reshape(1, *valid.shape[-2:])
            losses.append(self.loss(pred, target, valid))
            self.val_metrics.update(pred, target, valid)
        self.log("val/loss", torch.stack(losses).mean(), batch_size=len(losses), sync_dist=True)

    def predict_dataset(self, images: list[Path], mask_dir: str | None = None,
                        **options: Any) -> Any:
        """Images stretched to the model size, with optional foreground masks from ``mask_dir``
        (``<stem>.png``, ``<stem>_mask.png`` from a seg run, or ``<stem>.npy``)."""
        from sapiens_kit.data.datasets.predict_inputs import ForegroundImageList

        if options:
            log.warning("%s prediction ignores options %s", self.target_key, sorted(options))
        return ForegroundImageList(images, self.img_size, mask_dir)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Predictions at each image's original size, with its foreground mask if given."""
        preds = self(batch["image"])
        out = []
        fgs = foregrounds(batch, len(batch["meta"]))
        for i, (meta, fg) in enumerate(zip(batch["meta"], fgs, strict=True)):
            value = self.to_output(resize_output(preds[i : i + 1], meta["orig_size"]))
            out.append({self.target_key: value.cpu(),
                        "foreground": None if fg is None else fg.cpu(), "meta": meta})
        return out

    def save_predictions(
        self, batches: list[Any] | None, out_dir: Path, limit: int | None = None
    ) -> list[Path]:
        """Write ``<stem>_<target>.npy`` (float32, original size) and ``<stem>_<target>.png``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        key = self.target_key
        for n, pred in enumerate(p for batch in batches or [] for p in batch):
            if limit is not None and n >= limit:
                break
            stem = Path(pred["meta"]["path"]).stem
            values = pred[key].numpy().astype(np.float32)
            fg = None if pred["foreground"] is None else pred["foreground"].numpy()
            npy, png = out_dir / f"{stem}_{key}.npy", out_dir / f"{stem}_{key}.png"
            np.save(npy, values)
            cv2.imwrite(str(png), cv2.cvtColor(self.colorize(values, fg), cv2.COLOR_RGB2BGR))
            written += [npy, png]
        return written

    # ------------------------------------------------------------------ pictures
    def display(self, pred: torch.Tensor) -> np.ndarray:
        """One ``(C, H, W)`` head output or target at display size -> :meth:`colorize` input."""
        raise NotImplementedError

    def draw(self, image: np.ndarray, predictions: Sequence[Mapping[str, Any]],
             **options: Any) -> np.ndarray:
        """The photo and the colour map side by side (``side_by_side=False``: the map alone;
        ``alpha`` < 1 blends the map over the photo)."""
        pred = predictions[0]
        fg = pred.get("foreground")
        fg = None if fg is None else np.asarray(fg.cpu() if isinstance(fg, torch.Tensor) else fg)
        values = pred[self.target_key]
        values = values.cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        colour = self.colorize(values.astype(np.float32), fg)
        alpha = float(self.draw_option(options, "alpha", 1.0))
        if alpha < 1 and colour.shape == image.shape:
            colour = blend(image, colour, alpha)
        return hstack([image, colour]) if options.get("side_by_side", True) else colour

    def media_pictures(self, batch: dict[str, Any], n: int,
                       predict: bool = True) -> tuple[str, list[Picture]]:
        """Image | prediction | ground truth, colour-mapped over the valid pixels."""
        images = batch["image"][:n]
        size = tuple(images.shape[-2:])
        preds = self(images).float() if predict else None
        out = []
        for i in range(len(images)):
            valid = resize_for_display(batch["valid_mask"][i].cpu().float(), size).numpy() > 0.5
            truth = resize_for_display(batch[self.target_key][i].cpu().float(), size)
            panels = [] if preds is None else [
                resize_for_display(preds[i].cpu(), size, "bilinear")]
            panels.append(truth.reshape(-1, *size))
            row = [to_rgb(images[i])] + [self.colorize(self.display(p), valid) for p in panels]
            label = " (image | prediction | labels)" if predict else " (image | labels)"
            out.append(Picture(hstack(row), caption(batch, i) + label))
        return self.media_kind, out
