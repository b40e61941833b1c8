"""Depth: one channel, larger = farther; ``<= 0``, NaN or inf mean "no depth"."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from sapiens_kit.data.io import DataFileError, read_array
from sapiens_kit.data.targets.base import DenseTarget, Validity, register_target


def read_depth(path: str | Path, scale: float = 1.0) -> np.ndarray:
    """Depth ``(H, W)`` float32 (times ``scale``): ``.npy``, ``.exr`` or 16-bit PNG/TIFF.

    Values are returned as stored (NaN, inf, zero or negative included); the dataset decides
    which pixels are valid.
    """
    path = Path(path)
    depth = read_array(path)
    if depth.ndim == 3 and 1 in (depth.shape[0], depth.shape[-1]):
        depth = depth.reshape(depth.shape[1:] if depth.shape[0] == 1 else depth.shape[:2])
    elif depth.ndim == 3 and path.suffix.lower() != ".npy" and depth.shape[-1] in (3, 4):
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise DataFileError(f"{path}: depth must be a single-channel (H, W) map, got "
                            f"shape {depth.shape}")
    if depth.dtype.kind not in "iuf":  # complex, bool, strings: not a depth map
        raise DataFileError(f"{path}: depth has non-numeric dtype {depth.dtype}")
    return depth.astype(np.float32) * np.float32(scale)


def depth_valid(depth: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Valid (finite, > 0) pixels and the anomaly masks ``nonfinite``/``negative``/``zero``."""
    finite = np.isfinite(depth)
    safe = np.where(finite, depth, 0)
    return finite & (safe > 0), {"nonfinite": ~finite, "negative": safe < 0,
                                 "zero": finite & (safe == 0)}


@register_target
@dataclass(frozen=True)
class DepthTarget(DenseTarget):
    """Per-pixel depth in any unit (the official recipe normalises it per image).

    Stored as ``.npy``/``.exr`` floats or 16-bit PNG/TIFF (times ``depth_scale``), in
    ``depth/`` (official spelling ``depths/``). Zero means background; negative and
    non-finite pixels are anomalies. Rotation is allowed (rotated-in pixels are invalid); a
    mirror keeps the values.

    Args:
        depth_scale: Multiplier applied to stored values (e.g. 0.001 for millimetre PNGs).
    """

    key: ClassVar[str] = "depth"
    channels: ClassVar[int] = 1
    folders: ClassVar[tuple[str, ...]] = ("depth", "depths")
    rotatable: ClassVar[bool] = True
    background_anomalies: ClassVar[tuple[str, ...]] = ("foreground_without_depth",)

    depth_scale: float = 1.0

    def read(self, path: str | Path) -> np.ndarray:
        """Depth ``(H, W)`` float32 times ``depth_scale`` (see :func:`read_depth`)."""
        return read_depth(path, self.depth_scale)

    def validity(self, values: np.ndarray) -> Validity:
        """Finite and positive pixels are valid; invalid ones are zeroed."""
        valid, bad = depth_valid(values)
        return (np.where(valid, values, 0).astype(np.float32), valid,
                {"nonfinite": bad["nonfinite"], "negative": bad["negative"],
                 "foreground_without_depth": bad["zero"]})

    def colorize(self, values: np.ndarray, foreground: np.ndarray | None = None) -> np.ndarray:
        """Turbo colour map, near = bright (the official ``vis_depth``)."""
        from sapiens_kit.visualize import colorize_depth

        return colorize_depth(values, foreground)
