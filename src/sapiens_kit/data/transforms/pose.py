"""Top-down pose transforms after the official Sapiens recipe (mmpose conventions, UDP warp).

A person box ``(x, y, w, h)`` becomes a centre and a scale ``(w, h) * 1.25``; the scale is widened
on its short side to the model's aspect ratio (3:4 for 1024x768), and the crop is warped with an
unbiased (UDP) affine that maps the box edges onto pixel centres ``0`` and ``W - 1``.

Training adds, in the official order and with the official defaults: random half-body boxes,
random box shift/scale/rotation, a horizontal flip with left/right keypoint swap, photometric
distortion, blur, median blur and one coarse cut-out. The geometric steps change the box, not the
image, so the image is resampled once; the flip is applied to the warped crop, which gives the same
distribution as flipping the photo first (the random shift and rotation are symmetric).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from sapiens_kit.data.transforms.common import AugmentationRng, photometric


def bbox_to_center_scale(bbox: Sequence[float], padding: float = 1.25) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """COCO ``(x, y, w, h)`` -> ``center (2,)`` and ``scale = (w, h) * padding``."""
    x, y, w, h = (float(v) for v in bbox)
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    return center, np.array([w, h], dtype=np.float32) * padding


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Enlarge the short side of ``scale (w, h)`` so that ``w / h == aspect_ratio``."""
    w, h = float(scale[0]), float(scale[1])
    if w > h * aspect_ratio:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return np.array([w, h], dtype=np.float32)


def udp_warp_matrix(
    center: np.ndarray, scale: np.ndarray, rotation: float, output_size: Sequence[int]
) -> np.ndarray:
    """The 2x3 affine taking image pixels into an ``output_size (H, W)`` crop, UDP style.

    The box of size ``scale`` around ``center``, rotated by ``rotation`` degrees, lands on
    ``[0, W - 1] x [0, H - 1]``: ``p_out = S (R (p - c) + scale / 2)`` with
    ``S = diag((W - 1) / scale_w, (H - 1) / scale_h)``.
    """
    out_h, out_w = output_size
    sx, sy = (out_w - 1) / float(scale[0]), (out_h - 1) / float(scale[1])
    rad = np.deg2rad(rotation)
    cos, sin = np.cos(rad), np.sin(rad)
    rot = np.array([[cos, -sin], [sin, cos]])
    shift = -rot @ np.asarray(center, dtype=np.float64) + np.asarray(scale, np.float64) / 2
    matrix = np.diag([sx, sy]) @ np.concatenate([rot, shift[:, None]], 1)
    return np.asarray(matrix, dtype=np.float32)


def warp_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to ``(K, 2)`` points."""
    return np.asarray(points @ matrix[:, :2].T + matrix[:, 2], dtype=np.float32)


def warp_crop(image: np.ndarray, matrix: np.ndarray, output_size: Sequence[int]) -> np.ndarray:
    """Bilinear ``cv2.warpAffine`` into ``output_size (H, W)`` with black borders."""
    return cv2.warpAffine(image, matrix, (int(output_size[1]), int(output_size[0])),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@dataclass
class Crop:
    """A top-down crop and what is needed to map predictions back to the photo.

    Attributes:
        image: ``(H, W, 3)`` uint8 crop.
        keypoints: ``(K, 2)`` keypoints in crop pixels (zeros when unknown).
        visible: ``(K,)`` 0/1 labels after augmentation.
        center: Box centre in the photo.
        scale: Box size ``(w, h)`` after aspect fixing (what the crop spans, before rotation).
        rotation: Degrees (0 at evaluation).
        flipped: Whether the crop was mirrored.
    """

    image: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    rotation: float = 0.0
    flipped: bool = False


class TopdownEvalTransform:
    """Box -> aspect-fixed centre/scale -> UDP crop (the official test pipeline).

    Args:
        input_size: Model input ``(H, W)``.
        padding: Box enlargement (official 1.25).
    """

    def __init__(self, input_size: Sequence[int], padding: float = 1.25) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.padding = padding

    @property
    def aspect_ratio(self) -> float:
        """Crop width / height."""
        return self.input_size[1] / self.input_size[0]

    def __call__(self, image: np.ndarray, bbox: Sequence[float],
                 keypoints: np.ndarray | None = None,
                 visible: np.ndarray | None = None) -> Crop:
        """Crop the person in ``bbox (x, y, w, h)``; keypoints are carried into crop pixels."""
        center, scale = bbox_to_center_scale(bbox, self.padding)
        scale = fix_aspect_ratio(scale, self.aspect_ratio)
        matrix = udp_warp_matrix(center, scale, 0.0, self.input_size)
        kp = np.zeros((0, 2), np.float32) if keypoints is None else warp_points(keypoints, matrix)
        vis = (np.zeros(len(kp), np.float32) if visible is None
               else (visible > 0).astype(np.float32))
        return Crop(warp_crop(image, matrix, self.input_size), kp, vis, center, scale)


class TopdownTrainTransform(TopdownEvalTransform):
    """The official training augmentation around the UDP crop.

    Args:
        input_size: Model input ``(H, W)``.
        flip_indices: Channel each keypoint becomes after a horizontal flip.
        upper_body: Keypoint indices of the upper half (half-body augmentation).
        lower_body: Keypoint indices of the lower half.
        padding: Box enlargement (official 1.25).
        flip_prob: Horizontal flip probability (0.5).
        half_body_prob: Half-body probability (0.3); needs >= 9 labelled points, >= 2 upper or
            >= 3 lower; the upper half is preferred with probability 0.7; box padding 1.5.
        shift_factor: Max box shift as a fraction of its size (0.16, applied with p=0.3).
        scale_range: Box rescale range (0.5-1.5, truncated normal, always).
        rotate_limit: Max rotation in degrees (80, truncated normal, applied with p=0.6).
        photometric_aug: Brightness/contrast/saturation/hue distortion.
        blur_prob: Probability of a Blur and (independently) of a MedianBlur (0.1 each).
        dropout: One coarse cut-out of 20-40 % of the crop's height and width (always).
    """

    def __init__(
        self,
        input_size: Sequence[int],
        flip_indices: Sequence[int],
        upper_body: Sequence[int] = (),
        lower_body: Sequence[int] = (),
        padding: float = 1.25,
        flip_prob: float = 0.5,
        half_body_prob: float = 0.3,
        shift_factor: float = 0.16,
        shift_prob: float = 0.3,
        scale_range: tuple[float, float] = (0.5, 1.5),
        rotate_limit: float = 80.0,
        rotate_prob: float = 0.6,
        photometric_aug: bool = True,
        blur_prob: float = 0.1,
        dropout: bool = True,
    ) -> None:
        super().__init__(input_size, padding)
        self.flip_indices = np.asarray(flip_indices, dtype=np.int64)
        self.upper_body = np.asarray(upper_body, dtype=np.int64)
        self.lower_body = np.asarray(lower_body, dtype=np.int64)
        self.flip_prob, self.half_body_prob = flip_prob, half_body_prob
        self.shift_factor, self.shift_prob = shift_factor, shift_prob
        self.scale_range = scale_range
        self.rotate_limit, self.rotate_prob = rotate_limit, rotate_prob
        steps: list[A.BasicTransform | A.BaseCompose] = []
        if photometric_aug:
            steps.append(photometric())
        if blur_prob:
            steps += [A.Blur(p=blur_prob), A.MedianBlur(p=blur_prob)]
        if dropout:
            steps.append(A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(0.2, 0.4),
                                         hole_width_range=(0.2, 0.4), fill=0, p=1.0))
        self.pixel_aug = A.Compose(steps) if steps else None
        self.rng = AugmentationRng(reseed=[self.pixel_aug])

    def __call__(self, image: np.ndarray, bbox: Sequence[float],
                 keypoints: np.ndarray | None = None,
                 visible: np.ndarray | None = None) -> Crop:
        """Augment and crop one person; ``keypoints (K, 2)`` and ``visible (K,)`` in the photo."""
        rng = self.rng.get()
        k = self.flip_indices.shape[0]
        kp = np.zeros((k, 2), np.float32) if keypoints is None else keypoints.astype(np.float32)
        vis = np.zeros(k, np.float32) if visible is None else (visible > 0).astype(np.float32)
        center, scale = bbox_to_center_scale(bbox, self.padding)
        if rng.random() < self.half_body_prob:
            half = self._half_body(kp, vis, rng)
            if half is not None:
                center, scale = half
        center, scale, rotation = self._jitter(center, scale, rng)
        scale = fix_aspect_ratio(scale, self.aspect_ratio)
        matrix = udp_warp_matrix(center, scale, rotation, self.input_size)
        crop = warp_crop(image, matrix, self.input_size)
        kp = warp_points(kp, matrix)
        flipped = bool(rng.random() < self.flip_prob)
        if flipped:
            crop = np.ascontiguousarray(crop[:, ::-1])
            kp[:, 0] = self.input_size[1] - 1 - kp[:, 0]
            kp, vis = kp[self.flip_indices], vis[self.flip_indices]
        if self.pixel_aug is not None:
            crop = self.pixel_aug(image=crop)["image"]
        return Crop(crop, kp, vis, center, scale, rotation, flipped)

    def _half_body(self, kp: np.ndarray, vis: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
        if vis.sum() < 9 or not (len(self.upper_body) or len(self.lower_body)):
            return None
        upper = self.upper_body[vis[self.upper_body] > 0]
        lower = self.lower_body[vis[self.lower_body] > 0]
        prefer_upper = rng.random() < 0.7
        if len(upper) < 2 and len(lower) < 3:
            return None
        if len(lower) < 3:
            chosen = upper
        elif len(upper) < 2:
            chosen = lower
        else:
            chosen = upper if prefer_upper else lower
        pts = kp[chosen]
        lo, hi = pts.min(0), pts.max(0)
        if (hi - lo).max() < 2:
            return None
        return pts.mean(0).astype(np.float32), ((hi - lo) * 1.5).astype(np.float32)

    def _jitter(self, center: np.ndarray, scale: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
        if rng.random() < self.shift_prob:
            center = center + _truncnorm(rng, 2) * self.shift_factor * scale
        lo, hi = self.scale_range
        scale = scale * (_truncnorm(rng, 1)[0] * (hi - lo) / 2 + (hi + lo) / 2)
        rotation = 0.0
        if rng.random() < self.rotate_prob:
            rotation = float(_truncnorm(rng, 1)[0] * self.rotate_limit)
        return center.astype(np.float32), scale.astype(np.float32), rotation


def _truncnorm(rng: np.random.Generator, n: int) -> np.ndarray:
    """Standard normal samples truncated to [-1, 1] (redrawn, not clipped)."""
    out = rng.standard_normal(n)
    bad = np.abs(out) > 1
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 1
    return out.astype(np.float32)
