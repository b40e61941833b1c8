"""Prediction pictures in W&B (or TensorBoard) while training.

Every ``every_n_validations``-th validation run, the batches whose index is a multiple of
``every_n_val_steps`` are predicted again and drawn, up to ``max_images`` pictures per run:

- segmentation: the image with W&B mask overlays (``prediction`` and ``ground_truth`` layers,
  toggled in the UI, with the class names);
- pose: the person crop with the predicted skeleton, beside the labelled one;
- depth: image | predicted depth | ground truth, turbo colour-mapped over the valid pixels;
- normals: image | predicted normals | ground truth, as ``(n + 1) / 2`` RGB.

Keys are ``val/<kind>`` (``val/segmentation``, ``val/keypoints``, ``val/depth``, ``val/normals``);
the first training batch (augmented inputs with their labels) is logged once as
``train/<kind>``. All drawing comes from :mod:`sapiens_kit.visualize`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from sapiens_kit.visualize import (
    colorize_depth,
    colorize_normals,
    draw_pose,
    hstack,
    overlay_mask,
    task_palette,
)

log = logging.getLogger(__name__)


@dataclass
class Picture:
    """One logged picture: RGB pixels, a caption and (segmentation) W&B mask layers."""

    image: np.ndarray
    caption: str
    masks: dict[str, dict[str, Any]] | None = None
    #: The same picture with the masks drawn in, for loggers without mask layers.
    flat: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _hwc(image: torch.Tensor) -> np.ndarray:
    return image.detach().permute(1, 2, 0).to("cpu", torch.uint8).numpy()


def _fit(x: torch.Tensor, size: tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """Resize ``(C, H, W)`` (or ``(H, W)``) to ``size`` for display."""
    squeeze = x.ndim == 2
    x = x[None, None] if squeeze else x[None]
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x.float(), size=size, mode=mode)
    return x[0, 0] if squeeze else x[0]


def _items(batch: dict[str, Any], key: str, n: int) -> list[torch.Tensor]:
    value = batch[key]
    return [value[i] for i in range(n)]


def _caption(batch: dict[str, Any], i: int) -> str:
    meta = batch.get("meta") or [{}] * (i + 1)
    return Path(str(meta[i].get("path", f"#{i}"))).name


def _seg(task: Any, batch: dict[str, Any], n: int, predict: bool) -> list[Picture]:
    images = batch["image"][:n]
    size = tuple(images.shape[-2:])
    labels = None
    if predict:
        logits = F.interpolate(task(images).float(), size=size, mode="bilinear",
                               align_corners=False)
        labels = logits.argmax(1).cpu()
    names = dict(enumerate(task.class_names))
    ignore = int(task.hparams.get("ignore_index", 255))
    palette = task_palette(task)
    out = []
    for i, gt in enumerate(_items(batch, "mask", n)):
        image = _hwc(images[i])
        truth = _fit(gt.cpu(), size).to(torch.uint8).numpy()
        layers = {"ground_truth": {"mask_data": truth, "class_labels": {**names, ignore: "ignore"}}}
        flat = [overlay_mask(image, np.where(truth == ignore, 0, truth), palette)]
        if labels is not None:
            pred = labels[i].to(torch.uint8).numpy()
            layers = {"prediction": {"mask_data": pred, "class_labels": names}, **layers}
            flat.insert(0, overlay_mask(image, pred, palette))
        out.append(Picture(image, _caption(batch, i), layers, hstack(flat)))
    return out


def _pose(task: Any, batch: dict[str, Any], n: int, predict: bool) -> list[Picture]:
    images = batch["image"][:n]
    panels: list[list[np.ndarray]] = [[] for _ in range(len(images))]
    if predict:
        heatmaps = task.predict_heatmaps(images)
        codec = task.codec(tuple(heatmaps.shape[-2:]))
        points, scores = codec.decode(heatmaps)
        points = codec.heatmap_to_input(points).cpu().numpy()
        scores = scores.cpu().numpy()
        for i in range(len(images)):
            panels[i].append(draw_pose(_hwc(images[i]).copy(), points[i], scores[i], task.kset,
                                       task.hparams.get("keypoint_score_thr", 0.3)))
    for i in range(len(images)):
        gt = batch["keypoints"][i].detach().cpu().numpy()
        visible = (batch["keypoint_weights"][i].detach().cpu().numpy().reshape(-1) > 0)
        panels[i].append(draw_pose(_hwc(images[i]).copy(), gt[:, :2], visible.astype(float),
                                   task.kset, threshold=0.5))
    return [Picture(hstack(p), _caption(batch, i) + (" (prediction | labels)" if predict else ""))
            for i, p in enumerate(panels)]


def _dense(task: Any, batch: dict[str, Any], n: int, predict: bool, kind: str) -> list[Picture]:
    images = batch["image"][:n]
    size = tuple(images.shape[-2:])
    preds = task(images).float() if predict else None
    out = []
    for i, target in enumerate(_items(batch, kind, n)):
        valid = _fit(batch["valid_mask"][i].cpu().float(), size).numpy() > 0.5
        truth = _fit(target.cpu().float(), size)
        row = [_hwc(images[i])]
        if kind == "depth":
            panels = [] if preds is None else [_fit(preds[i].cpu(), size, "bilinear")[0]]
            panels.append(truth.reshape(size))
            row += [colorize_depth(p.numpy(), valid) for p in panels]
        else:
            panels = [] if preds is None else [F.normalize(
                _fit(preds[i].cpu(), size, "bilinear"), dim=0)]
            panels.append(truth)
            row += [colorize_normals(p.permute(1, 2, 0).numpy(), valid) for p in panels]
        label = " (image | prediction | labels)" if predict else " (image | labels)"
        out.append(Picture(hstack(row), _caption(batch, i) + label))
    return out


def batch_pictures(task: Any, batch: dict[str, Any], n: int,
                   predict: bool = True) -> tuple[str, list[Picture]]:
    """Draw up to ``n`` samples of a batch (with the task's predictions when ``predict``).

    Returns:
        ``(kind, pictures)``; ``kind`` names the logged key (``segmentation``, ``keypoints``,
        ``depth``, ``normals``).
    """
    n = min(n, len(batch["image"]))
    with torch.no_grad():
        if "mask" in batch:
            return "segmentation", _seg(task, batch, n, predict)
        if "keypoints" in batch:
            return "keypoints", _pose(task, batch, n, predict)
        if "depth" in batch:
            return "depth", _dense(task, batch, n, predict, "depth")
        if "normal" in batch:
            return "normals", _dense(task, batch, n, predict, "normal")
    raise ValueError(f"no pictures for a batch with keys {sorted(batch)}")


class WandbMediaCallback(L.Callback):
    """Log prediction pictures during validation (see the module docstring).

    Works with a W&B logger (images with mask layers); a TensorBoard logger gets the same
    pictures with the masks drawn in. With neither, it does nothing (one warning).

    Args:
        every_n_val_steps: Draw validation batches whose index is a multiple of this.
        max_images: Pictures per validation run (and for the training batch).
        every_n_validations: Draw on every N-th validation run only.
        log_train_batch: Log the first training batch (augmented inputs and their labels) once.
    """

    def __init__(self, every_n_val_steps: int = 1, max_images: int = 4,
                 every_n_validations: int = 1, log_train_batch: bool = True) -> None:
        super().__init__()
        if every_n_val_steps < 1 or every_n_validations < 1 or max_images < 0:
            raise ValueError("every_n_val_steps and every_n_validations must be >= 1, "
                             "max_images >= 0")
        self.every_n_val_steps = every_n_val_steps
        self.max_images = max_images
        self.every_n_validations = every_n_validations
        self.log_train_batch = log_train_batch
        self._validations = 0
        self._pending: dict[str, list[Picture]] = {}
        self._warned = False
        self._train_logged = False

    # ------------------------------------------------------------------------- loggers
    def _loggers(self, trainer: L.Trainer) -> list[Any]:
        from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

        found = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger | TensorBoardLogger)]
        if not found and not self._warned:
            self._warned = True
            log.warning("WandbMediaCallback: no W&B or TensorBoard logger, nothing is logged "
                        "(add logger=wandb)")
        return found

    def _log(self, trainer: L.Trainer, key: str, pictures: list[Picture]) -> None:
        from lightning.pytorch.loggers import WandbLogger

        if not pictures:
            return
        step = trainer.global_step
        for logger in self._loggers(trainer):
            if isinstance(logger, WandbLogger):
                kwargs: dict[str, list[Any]] = {"caption": [p.caption for p in pictures]}
                if all(p.masks for p in pictures):
                    kwargs["masks"] = [p.masks for p in pictures]
                logger.log_image(key, [p.image for p in pictures], step=step, **kwargs)
            else:
                for i, p in enumerate(pictures):
                    logger.experiment.add_image(f"{key}/{i}", p.flat if p.flat is not None
                                                else p.image, step, dataformats="HWC")

    # ------------------------------------------------------------------------- hooks
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        """Log the first training batch once: what the model is trained on."""
        if (self._train_logged or not self.log_train_batch or not trainer.is_global_zero
                or not self.max_images or not self._loggers(trainer)):
            return
        self._train_logged = True
        kind, pictures = batch_pictures(pl_module, batch, self.max_images, predict=False)
        self._log(trainer, f"train/{kind}", pictures)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Count validation runs (sanity checks excluded)."""
        self._pending = {}
        if not trainer.sanity_checking:
            self._validations += 1

    def _active(self, trainer: L.Trainer) -> bool:
        return (not trainer.sanity_checking and trainer.is_global_zero and self.max_images > 0
                and (self._validations - 1) % self.every_n_validations == 0)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        """Draw this batch when it is one of the chosen ones."""
        if not self._active(trainer) or batch_idx % self.every_n_val_steps:
            return
        done = sum(len(v) for v in self._pending.values())
        if done >= self.max_images or not self._loggers(trainer):
            return
        was_training = pl_module.training
        pl_module.eval()
        try:
            kind, pictures = batch_pictures(pl_module, batch, self.max_images - done)
        finally:
            pl_module.train(was_training)
        self._pending.setdefault(f"val/{kind}", []).extend(pictures)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log the pictures of this validation run together (one W&B step)."""
        for key, pictures in self._pending.items():
            self._log(trainer, key, pictures)
        self._pending = {}


__all__ = ["Picture", "WandbMediaCallback", "batch_pictures"]
