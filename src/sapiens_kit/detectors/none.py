"""``detector=none``: no detector; every image is one person covering the whole image.

What pose prediction did before detectors existed, and the choice when each image shows one
person, or to run offline without detector weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sapiens_kit.detectors.base import Detections, PersonDetector
from sapiens_kit.detectors.postprocess import PostProcess


class WholeImageDetector(PersonDetector):
    """One whole-image box per image (source ``whole_image``), no filtering."""

    name = "none"

    def _detect_batch(self, images: list[np.ndarray], names: list[str]) -> list[Detections]:
        return [Detections.whole_image(*image.shape[:2]) for image in images]

    def _finish(self, raw: Detections, size: tuple[int, int]) -> Detections:
        return raw


def build(cfg: Mapping[str, Any], post: PostProcess) -> WholeImageDetector:
    """The whole-image detector (the config's filters do not apply)."""
    return WholeImageDetector(post, int(cfg.get("batch_size", 1)))


__all__ = ["WholeImageDetector", "build"]
