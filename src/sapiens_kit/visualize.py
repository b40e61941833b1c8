"""Visualisations shared by training callbacks, ``predict`` and the notebooks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def colorize_mask(mask: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Index mask ``(H, W)`` -> RGB ``(H, W, 3)``; ids outside the palette are black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return lut[mask.astype(np.uint8)]


def overlay_mask(
    image: np.ndarray, mask: np.ndarray, palette: Sequence[Sequence[int]], alpha: float = 0.5,
    skip_background: bool = True,
) -> np.ndarray:
    """Blend a coloured index mask over an RGB image (background left untouched by default)."""
    colour = colorize_mask(mask, palette).astype(np.float32)
    out = image.astype(np.float32)
    blend = (1 - alpha) * out + alpha * colour
    keep = mask > 0 if skip_background else np.ones(mask.shape, bool)
    out[keep] = blend[keep]
    return out.round().clip(0, 255).astype(np.uint8)
