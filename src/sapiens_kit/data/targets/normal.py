"""Surface normals: three channels, unit vectors in kit axes (X right, Y up, Z to the camera).

The axis convention is the kit's (the synthetic generator, the losses and the saved predictions
use it), so a surface facing the camera is ``(0, 0, 1)`` (light blue-violet as ``(n + 1) / 2``
RGB). The official Sapiens code documents only "camera coordinates, XYZ"; datasets stored with
OpenCV axes (Y down, Z forward) load correctly with ``flip_y=True, flip_z=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from sapiens_kit.data.io import DataFileError, read_array
from sapiens_kit.data.targets.base import DenseTarget, Validity, register_target


def read_normal(path: str | Path, flip_y: bool = False, flip_z: bool = False) -> np.ndarray:
    """Normals ``(H, W, 3)`` float32 in kit axes, not yet re-normalised.

    ``.npy``/``.exr`` hold float XYZ; 8/16-bit PNGs encode ``(n + 1) / 2`` as RGB, and their
    all-zero pixels (black background) decode to zero vectors, i.e. "no normal".
    """
    path = Path(path)
    arr = read_array(path)
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise DataFileError(f"{path}: normals must be (H, W, 3), got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype.kind not in "iuf":
        raise DataFileError(f"{path}: normals have non-numeric dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.integer):
        black = (arr == 0).all(-1)
        normal = arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max) * 2 - 1
        normal[black] = 0
    else:
        normal = arr.astype(np.float32)
    if flip_y:
        normal[..., 1] *= -1
    if flip_z:
        normal[..., 2] *= -1
    return normal


def normalize_normals(
    normal: np.ndarray, eps: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Unit normals (invalid pixels 0), validity, and anomaly masks ``nonfinite``/``zero``."""
    finite = np.isfinite(normal).all(-1)
    safe = np.where(finite[..., None], normal, 0)
    length = np.linalg.norm(safe, axis=-1)
    valid = finite & (length > eps)
    unit = np.where(valid[..., None], safe / np.maximum(length, eps)[..., None], 0)
    return unit.astype(np.float32), valid, {"nonfinite": ~finite, "zero": finite & ~valid}


@register_target
@dataclass(frozen=True)
class NormalTarget(DenseTarget):
    """Per-pixel unit surface normals in kit axes (see the module docstring).

    Stored as ``.npy``/``.exr`` float XYZ or 8/16-bit PNGs encoding ``(n + 1) / 2`` (black =
    none), in ``normal/`` (official spelling ``normals/``). Values are re-normalised; zero length
    means background. Never rotated (the vectors would need rotating too); a mirror negates X.

    Args:
        flip_y: Negate stored Y (datasets whose Y points down).
        flip_z: Negate stored Z (datasets whose Z points away from the camera).
    """

    key: ClassVar[str] = "normal"
    channels: ClassVar[int] = 3
    folders: ClassVar[tuple[str, ...]] = ("normal", "normals")
    rotatable: ClassVar[bool] = False
    flip_signs: ClassVar[tuple[float, ...] | None] = (-1.0, 1.0, 1.0)
    background_anomalies: ClassVar[tuple[str, ...]] = ("zero_length",)
    hf_image_modes: ClassVar[tuple[str, ...]] = ("RGB",)

    flip_y: bool = False
    flip_z: bool = False

    def read(self, path: str | Path) -> np.ndarray:
        """Normals ``(H, W, 3)`` in kit axes (see :func:`read_normal`)."""
        return read_normal(path, self.flip_y, self.flip_z)

    def validity(self, values: np.ndarray) -> Validity:
        """Finite, non-zero vectors are valid and re-normalised; the rest are zeroed."""
        unit, valid, bad = normalize_normals(values)
        return unit, valid, {"nonfinite": bad["nonfinite"], "zero_length": bad["zero"]}

    def colorize(self, values: np.ndarray, foreground: np.ndarray | None = None) -> np.ndarray:
        """``(n + 1) / 2`` as RGB."""
        from sapiens_kit.visualize import colorize_normals

        return colorize_normals(values, foreground)
