"""Geometric and photometric steps shared by the dense tasks (seg, depth, normal).

The official dense recipes resize by a random ratio of the target size (0.2-2.0, aspect kept),
crop the target size (or the whole image when smaller), then stretch to the target size. These are
written here because albumentations has no "fit into a random multiple of a fixed scale" step;
photometric distortion and rotation come from albumentations.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch


class AugmentationRng:
    """The random numbers of one sample's augmentation, a function of (epoch seed, sample index).

    The kit's data loaders call :meth:`seed` before every sample
    (:class:`~sapiens_kit.data.resumable.SeededSamples`), so a sample's augmentation depends on
    neither the number of workers nor where a resumed run restarted. The albumentations
    pipelines in ``reseed`` keep generators of their own, which are re-seeded from it too.

    Used outside those loaders, it falls back to one stream per process seeded from
    ``torch.initial_seed()`` (distinct per DataLoader worker, reproducible under
    ``seed_everything(workers=True)``).
    """

    def __init__(self, reseed: Sequence[A.BasicTransform | A.BaseCompose | None] = ()) -> None:
        self._pid = -1
        self._rng = np.random.default_rng(0)
        self._reseed = [p for p in reseed if p is not None]

    def seed(self, key: Sequence[int]) -> None:
        """Start the stream for the sample identified by ``key`` (epoch seed, index)."""
        self._pid = os.getpid()
        self._rng = np.random.default_rng([int(k) for k in key])
        for pipeline in self._reseed:
            pipeline.set_random_seed(int(self._rng.integers(2**31)))

    def get(self) -> np.random.Generator:
        """The generator to draw this sample's augmentation from."""
        if os.getpid() != self._pid:
            self.seed([torch.initial_seed() % 2**63])
        return self._rng


def random_rescale(
    arrays: Sequence[np.ndarray],
    interps: Sequence[int],
    size: tuple[int, int],
    ratio_range: tuple[float, float],
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Resize so the image fits in ``size * r`` (aspect kept), ``r ~ U(ratio_range)``."""
    height, width = arrays[0].shape[:2]
    ratio = rng.uniform(*ratio_range)
    scale = min(size[0] * ratio / height, size[1] * ratio / width)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    return [cv2.resize(a, new, interpolation=i) for a, i in zip(arrays, interps, strict=True)]


def random_crop(
    arrays: Sequence[np.ndarray], size: tuple[int, int], rng: np.random.Generator
) -> list[np.ndarray]:
    """Crop ``size`` at a random place, or keep the whole extent along a shorter side."""
    height, width = arrays[0].shape[:2]
    top = int(rng.integers(0, max(height - size[0], 0) + 1))
    left = int(rng.integers(0, max(width - size[1], 0) + 1))
    return [a[top : top + size[0], left : left + size[1]] for a in arrays]


def resize_to(
    arrays: Sequence[np.ndarray], interps: Sequence[int], size: tuple[int, int]
) -> list[np.ndarray]:
    """Stretch every array to exactly ``size`` (H, W)."""
    return [
        cv2.resize(a, (size[1], size[0]), interpolation=i)
        for a, i in zip(arrays, interps, strict=True)
    ]


def photometric() -> A.Compose:
    """mmseg's PhotoMetricDistortion in albumentations terms.

    Brightness +-32/255, contrast and saturation x0.5-1.5, hue +-18 (of OpenCV's 180), each p=0.5.
    """
    return A.Compose(
        [
            A.RandomBrightnessContrast(
                brightness_limit=32 / 255, contrast_limit=0.0, brightness_by_max=True, p=0.5
            ),
            A.ColorJitter(brightness=0, contrast=(0.5, 1.5), saturation=0, hue=0, p=0.5),
            A.ColorJitter(brightness=0, contrast=0, saturation=(0.5, 1.5), hue=0, p=0.5),
            A.ColorJitter(brightness=0, contrast=0, saturation=0, hue=0.1, p=0.5),
        ]
    )
