"""Image and label file reading with errors that name the file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class DataFileError(ValueError):
    """A data file is missing, unreadable or inconsistent with its partner files."""


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataFileError(f"{path}: unreadable image (missing, truncated or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_index_mask(path: str | Path) -> np.ndarray:
    """Read a single-channel index mask as ``(H, W)`` uint8."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataFileError(f"{path}: unreadable mask (missing, truncated or not an image)")
    if mask.ndim == 3:
        channels = mask.reshape(-1, mask.shape[2])
        if not (channels == channels[:, :1]).all():
            raise DataFileError(
                f"{path}: mask has {mask.shape[2]} different channels; index masks must be "
                "single-channel PNGs holding class ids (not colour-coded)"
            )
        mask = mask[..., 0]
    if mask.dtype != np.uint8:
        if mask.max() > 255:
            raise DataFileError(f"{path}: mask values above 255 are not supported")
        mask = mask.astype(np.uint8)
    return mask


def image_size(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of an image from its header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception as err:
        raise DataFileError(f"{path}: unreadable image header ({err})") from err
    return height, width


def list_images(folder: Path) -> dict[str, Path]:
    """Map stem -> path for the image files directly inside ``folder``."""
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


@contextmanager
def malformed(source: str | Path, what: str,
              error: type[ValueError] = DataFileError) -> Iterator[None]:
    """Turn the Python errors a malformed file causes in a parser into ``error`` naming it.

    Parsers check the layouts they expect and raise their own clear errors; this catches what a
    hostile or damaged file reaches beyond those checks (``None`` where a number belongs, a list
    where a mapping belongs, ...). The kit's own errors pass through unchanged.
    """
    try:
        yield
    except (DataFileError, error):
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as err:
        raise error(f"{source}: malformed {what} ({type(err).__name__}: {err})") from err


def read_yaml_or_json(path: Path, what: str, error: type[ValueError] = DataFileError) -> Any:
    """The content of a ``.yaml``/``.yml`` or JSON file; ``error`` naming it if it won't parse."""
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(path.read_text())
        return json.loads(path.read_text())
    except Exception as err:
        raise error(f"{path}: cannot parse {what} ({err})") from err


def select_stems(images: dict[str, Path], stems: list[str] | None, root: Path,
                 img_dir: Path) -> list[str]:
    """The sample stems to use: those of a split list (each must have an image), else all
    images in name order; raises naming the folder when there are none."""
    if stems is not None:
        unknown = [s for s in stems if s not in images]
        if unknown:
            raise DataFileError(f"{root}: split lists unknown samples {unknown[:5]}")
        keys = list(stems)
    else:
        keys = sorted(images)
    if not keys:
        raise DataFileError(f"{img_dir}: no images found")
    return keys
