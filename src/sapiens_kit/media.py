"""Training pictures: the :class:`Picture` a task's ``media_pictures`` hook returns, and the
small tensor-to-picture helpers the tasks share.

Kept apart from :mod:`sapiens_kit.callbacks.wandb_media` (which logs the pictures) so that the
tasks, which draw them, never import a callback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Picture:
    """One logged picture: RGB pixels, a caption and (segmentation) W&B mask layers."""

    image: np.ndarray
    caption: str
    masks: dict[str, dict[str, Any]] | None = None
    #: The same picture with the masks drawn in, for loggers without mask layers.
    flat: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def to_rgb(image: torch.Tensor) -> np.ndarray:
    """A batch image ``(3, H, W)`` (uint8 values) as an ``(H, W, 3)`` uint8 RGB array."""
    return image.detach().permute(1, 2, 0).to("cpu", torch.uint8).numpy()


def resize_for_display(x: torch.Tensor, size: tuple[int, ...],
                       mode: str = "nearest") -> torch.Tensor:
    """Resize ``(C, H, W)`` (or ``(H, W)``) to ``size``, so panels of one picture line up."""
    squeeze = x.ndim == 2
    x = x[None, None] if squeeze else x[None]
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x.float(), size=tuple(size), mode=mode)
    return x[0, 0] if squeeze else x[0]


def caption(batch: dict[str, Any], i: int) -> str:
    """The file name of sample ``i`` of a batch (its index when the batch has no paths)."""
    meta = batch.get("meta") or [{}] * (i + 1)
    return Path(str(meta[i].get("path", f"#{i}"))).name


__all__ = ["Picture", "caption", "resize_for_display", "to_rgb"]
