"""Dense-target transforms after the official Sapiens depth and normal recipes.

Training: random resize 0.2-2.0 (aspect kept) and crop to the model size, stretch to the model
size (image bilinear, targets and mask nearest), rotation +-60 deg with p 0.5 for targets that
allow it (depth; the official normal recipe has no rotation: rotating the image would need the
normals rotated too), horizontal flip with p 0.5 by the target's own rule (normals negate X),
photometric distortion. The rules come from the :class:`~sapiens_kit.data.targets.DenseTarget`.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from sapiens_kit.data.targets import TargetSpec, get_target
from sapiens_kit.data.transforms.common import (
    AugmentationRng,
    photometric,
    random_crop,
    random_rescale,
    resize_to,
)

_INTERPS = (cv2.INTER_LINEAR, cv2.INTER_NEAREST, cv2.INTER_NEAREST)


def hflip_dense(
    image: np.ndarray, target: np.ndarray, valid: np.ndarray, kind: TargetSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror left-right; the target mirrors by its own rule (a normal's X is negated)."""
    image, valid = (np.ascontiguousarray(a[:, ::-1]) for a in (image, valid))
    return image, get_target(kind).hflip(target), valid


class DenseTrainTransform:
    """The official depth/normal training augmentation on ``(image, target, valid)``.

    Args:
        size: Output ``(H, W)``.
        kind: The target (a :class:`~sapiens_kit.data.targets.DenseTarget` or its key): it
            says whether rotation is allowed and how a mirror changes the values.
        ratio_range: Random resize range relative to ``size``.
        rotate_limit: Max rotation in degrees for rotatable targets (official 60 for depth;
            padded area is invalid). Ignored for targets that cannot rotate (normals).
        rotate_prob: Probability of rotating (official 0.5).
        flip_prob: Probability of a horizontal flip.
        photometric_distortion: Apply mmseg's PhotoMetricDistortion.
    """

    def __init__(
        self,
        size: tuple[int, int],
        kind: TargetSpec = "depth",
        ratio_range: tuple[float, float] = (0.2, 2.0),
        rotate_limit: float = 60.0,
        rotate_prob: float = 0.5,
        flip_prob: float = 0.5,
        photometric_distortion: bool = True,
    ) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.target = get_target(kind)
        self.kind = self.target.key
        self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))
        self.flip_prob = flip_prob
        self.rotate = None
        if self.target.rotatable and rotate_limit > 0 and rotate_prob > 0:
            self.rotate = A.Rotate(limit=rotate_limit, border_mode=cv2.BORDER_CONSTANT, fill=0,
                                   fill_mask=0, p=rotate_prob)
        self.photometric = photometric() if photometric_distortion else None
        self.rng = AugmentationRng(reseed=[self.rotate, self.photometric])

    def __call__(
        self, image: np.ndarray, target: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Transform an RGB uint8 image, its target and its valid-pixel mask together."""
        rng = self.rng.get()
        arrays = random_rescale((image, target, valid.astype(np.uint8)), _INTERPS, self.size,
                                self.ratio_range, rng)
        arrays = random_crop(arrays, self.size, rng)
        image, target, valid_u8 = resize_to(arrays, _INTERPS, self.size)
        if self.rotate is not None:
            # One 2-D mask per target channel: albumentations stacks the masks it is given.
            planes = [target] if target.ndim == 2 else list(np.moveaxis(target, -1, 0))
            out = self.rotate(image=image, masks=[*planes, valid_u8])
            image, *planes, valid_u8 = out["image"], *out["masks"]
            target = planes[0] if target.ndim == 2 else np.stack(planes, -1)
        valid = np.asarray(valid_u8) > 0
        target = np.asarray(target, dtype=np.float32)
        if rng.random() < self.flip_prob:
            image, target, valid = hflip_dense(image, target, valid, self.target)
        if self.photometric is not None:
            image = self.photometric(image=image)["image"]
        return image, target, valid


class DenseEvalTransform:
    """Stretch the image to the model size; targets stay at their original size for scoring."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(
        self, image: np.ndarray, target: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Resize the image only (bilinear), as the official test pipeline does."""
        (image,) = resize_to((image,), (cv2.INTER_LINEAR,), self.size)
        return image, target, valid
