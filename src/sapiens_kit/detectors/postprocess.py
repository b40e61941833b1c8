"""The filters every detector's raw boxes go through, and the fallback when none are left.

Order: clip to the image, drop boxes under ``score_thr``, drop boxes whose shorter side is under
``min_size`` pixels, non-maximum suppression at ``nms_iou`` (``torchvision.ops.nms``), keep the
``max_people`` best. When nothing is left, ``fallback`` decides: ``whole_image`` poses the whole
image as one person (what pose did before there were detectors), ``skip`` leaves it empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sapiens_kit.detectors.base import Detections
from sapiens_kit.errors import UserError

FALLBACKS = ("whole_image", "skip")


@dataclass(frozen=True)
class PostProcess:
    """The configured filters and fallback (``detector.*`` keys of the same names).

    Attributes:
        score_thr: Boxes scoring below this are dropped.
        nms_iou: Of two boxes overlapping by more than this IoU the lower-scoring one is
            dropped; ``1`` or more turns NMS off.
        min_size: Boxes whose shorter side is under this many pixels are dropped.
        max_people: Keep at most this many boxes per image (best first); ``None`` keeps all.
        fallback: ``whole_image`` or ``skip`` when no box is left.
    """

    score_thr: float = 0.3
    nms_iou: float = 0.3
    min_size: float = 0.0
    max_people: int | None = 100
    fallback: str = "whole_image"

    def __post_init__(self) -> None:
        if self.fallback not in FALLBACKS:
            raise UserError(f"detector.fallback={self.fallback!r} must be one of "
                            f"{', '.join(FALLBACKS)}")
        if self.max_people is not None and int(self.max_people) < 1:
            raise UserError(f"detector.max_people={self.max_people} must be at least 1 "
                            "(null keeps every box)")
        if not 0.0 <= float(self.nms_iou):
            raise UserError(f"detector.nms_iou={self.nms_iou} must be between 0 and 1")

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> PostProcess:
        """The settings from a ``detector`` config node (missing keys take the defaults)."""
        names = ("score_thr", "nms_iou", "min_size", "max_people", "fallback")
        values = {k: cfg[k] for k in names if k in cfg and cfg[k] is not None}
        if "max_people" in cfg and cfg["max_people"] is None:
            values["max_people"] = None
        for key in ("score_thr", "nms_iou", "min_size"):
            if key in values and not isinstance(values[key], (int, float)):
                raise UserError(f"detector.{key}={values[key]!r} must be a number")
        return cls(**values)

    def filter(self, det: Detections, size: tuple[int, int]) -> Detections:
        """The boxes of ``det`` that pass the filters, best first (``size`` is ``(H, W)``)."""
        import torch
        from torchvision.ops import nms

        height, width = size
        boxes = det.boxes.copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = (det.scores >= self.score_thr) & (sides > 0) & (sides >= self.min_size)
        boxes, scores = boxes[keep], det.scores[keep]
        order = np.argsort(-scores, kind="stable")
        if self.nms_iou < 1.0 and len(order) > 1:
            order = nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                        float(self.nms_iou)).numpy()
        if self.max_people is not None:
            order = order[: int(self.max_people)]
        return Detections(boxes[order], scores[order], det.source)

    def fallback_for(self, det: Detections, size: tuple[int, int]) -> Detections:
        """``det`` itself if it has boxes, else the configured fallback."""
        if len(det) or self.fallback == "skip":
            return det
        return Detections.whole_image(*size)

    def __call__(self, det: Detections, size: tuple[int, int]) -> Detections:
        """:meth:`filter`, then :meth:`fallback_for`."""
        return self.fallback_for(self.filter(det, size), size)


__all__ = ["FALLBACKS", "PostProcess"]
