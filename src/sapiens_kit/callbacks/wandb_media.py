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
``train/<kind>``. Each task draws its own pictures (its ``media_pictures`` hook, with the
primitives of :mod:`sapiens_kit.visualize`).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch

from sapiens_kit.media import Picture

log = logging.getLogger(__name__)


def batch_pictures(task: Any, batch: dict[str, Any], n: int,
                   predict: bool = True) -> tuple[str, list[Picture]]:
    """Draw up to ``n`` samples of a batch (with the task's predictions when ``predict``): the
    task's ``media_pictures`` hook, without gradients.

    Returns:
        ``(kind, pictures)``; ``kind`` names the logged key (``segmentation``, ``keypoints``,
        ``depth``, ``normals``).
    """
    n = min(n, len(batch["image"]))
    with torch.no_grad():
        return task.media_pictures(batch, n, predict)  # type: ignore[no-any-return]


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
