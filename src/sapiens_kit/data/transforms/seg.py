"""Segmentation transforms after the official Sapiens Goliath recipe."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from sapiens_kit.data.transforms.common import (
    AugmentationRng,
    photometric,
    random_crop,
    random_rescale,
    resize_to,
)


class SegTrainTransform:
    """Random resize 0.2-2.0, crop, stretch to size, rotate +-45 (p 0.5), flip with label swap,
    photometric distortion.

    Args:
        size: Output ``(H, W)``.
        flip_lut: 256-entry label lookup applied on horizontal flip (left/right swap).
        ratio_range: Random resize range relative to ``size``.
        rotate_limit: Max rotation in degrees; the mask is padded with 0 (background).
    """

    def __init__(
        self,
        size: tuple[int, int],
        flip_lut: np.ndarray | None = None,
        ratio_range: tuple[float, float] = (0.2, 2.0),
        rotate_limit: float = 45.0,
        flip_prob: float = 0.5,
    ) -> None:
        self.size = tuple(size)
        self.flip_lut = flip_lut if flip_lut is not None else np.arange(256, dtype=np.uint8)
        self.ratio_range = ratio_range
        self.flip_prob = flip_prob
        self.rotate = A.Compose([A.Rotate(
            limit=rotate_limit, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.5
        )])
        self.photometric = photometric()
        self.rng = AugmentationRng(reseed=[self.rotate, self.photometric])

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Transform an RGB uint8 image and its index mask together."""
        rng = self.rng.get()
        interps = (cv2.INTER_LINEAR, cv2.INTER_NEAREST)
        image, mask = random_rescale((image, mask), interps, self.size, self.ratio_range, rng)
        image, mask = random_crop((image, mask), self.size, rng)
        image, mask = resize_to((image, mask), interps, self.size)
        out = self.rotate(image=image, mask=mask)
        image, mask = out["image"], out["mask"]
        if rng.random() < self.flip_prob:
            image = np.ascontiguousarray(image[:, ::-1])
            mask = self.flip_lut[np.ascontiguousarray(mask[:, ::-1])]
        image = self.photometric(image=image)["image"]
        return image, mask


class SegEvalTransform:
    """Stretch the image to the model size; the mask stays at its original size for scoring
    (or is resized with nearest neighbour when ``resize_mask``, for un-augmented training)."""

    def __init__(self, size: tuple[int, int], resize_mask: bool = False) -> None:
        self.size = tuple(size)
        self.resize_mask = resize_mask

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resize the image (bilinear), as the official test pipeline does."""
        (image,) = resize_to((image,), (cv2.INTER_LINEAR,), self.size)
        if self.resize_mask:
            (mask,) = resize_to((mask,), (cv2.INTER_NEAREST,), self.size)
        return image, mask
