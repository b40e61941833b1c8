"""Image and label file reading with errors that name the file.

This is the one module the kit reads data files through, so it is also where OpenCV's EXR codec
is switched on: OpenCV only honours ``OPENCV_IO_ENABLE_OPENEXR`` if it is set before the codec is
first used, and every data module imports this one before decoding anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import cv2  # after the EXR switch above
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Foreground-mask files accepted next to dense targets.
MASK_SUFFIXES = (".png", ".npy", ".jpg", ".bmp", ".tif", ".tiff")


class DataFileError(ValueError):
    """A data file is missing, unreadable or inconsistent with its partner files."""


_JPEG_START, _JPEG_SCAN, _JPEG_END = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"
_PNG_START, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
_TAIL = 4096


def incomplete_image(path: str | Path) -> str | None:
    """Why the JPEG or PNG file at ``path`` is cut short, else ``None`` (other formats too).

    Decoders don't say: OpenCV returns a truncated JPEG with its missing part grey. A complete
    JPEG ends its last scan with an end-of-image marker, a PNG with its ``IEND`` chunk. Only the
    file's tail is read, unless data follows the end marker (then the whole file is scanned:
    inside a JPEG scan ``FF D9`` can only be that marker).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _TAIL))
            tail = f.read()
            if head.startswith(_JPEG_START):
                if tail.rstrip(b"\x00\r\n ").endswith(_JPEG_END):
                    return None
                f.seek(0)
                data = f.read()
                scan = data.rfind(_JPEG_SCAN)
                if scan < 0 or data.find(_JPEG_END, scan + 2) < 0:
                    return "truncated JPEG (no end-of-image marker after its last scan)"
            elif head.startswith(_PNG_START) and _PNG_END not in tail:
                f.seek(0)
                if f.read().rfind(_PNG_END) < 0:
                    return "truncated PNG (no IEND chunk)"
    except OSError as err:
        return f"{type(err).__name__}: {err}"
    return None


def image_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be used as an image (bad header, cut short), else ``None``; no full
    decode, so a folder of inputs can be checked up front."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return incomplete_image(path)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB; a truncated JPEG/PNG is refused, not returned
    half grey."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataFileError(f"{path}: unreadable image (missing, truncated or not an image)")
    if (reason := incomplete_image(path)) is not None:
        raise DataFileError(f"{path}: unreadable image ({reason})")
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


def select_stems(images: dict[str, Path], stems: Sequence[str] | None, root: Path,
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



def select_split(root: Path, name: str, listing: str | None) -> tuple[Path, list[str] | None]:
    """Where a split's samples are: ``(root, stems of the listing file)`` when a split list is
    given, else ``(root / name, None)`` when that sub-folder exists, else ``(root, None)``."""
    if listing:
        path = root / listing
        if not path.is_file():
            raise DataFileError(f"{path}: split list does not exist")
        return root, [s.strip() for s in path.read_text().splitlines() if s.strip()]
    if (root / name).is_dir():
        return root / name, None
    return root, None


def load_json(path: Path, what: str) -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`DataFileError` naming it."""
    if not path.is_file():
        raise DataFileError(f"{path}: {what} does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path}: {what} is not valid JSON ({err})") from err


def find_dir(root: Path, names: Sequence[str]) -> Path | None:
    """The first of ``root/<name>`` that is a folder (ours first, then other spellings)."""
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def index_files(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """Map stem -> path for files with one of ``suffixes`` (the first suffix found wins)."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in suffixes and p.stem not in out:
            out[p.stem] = p
    return out


# ------------------------------------------------------------------------- numeric label maps
def read_exr(path: Path) -> np.ndarray:
    """EXR through OpenCV when built with OpenEXR, else the ``openexr`` package."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is not None:
        return img[..., ::-1] if img.ndim == 3 else img  # BGR -> RGB channel order
    try:
        import OpenEXR
    except ImportError:
        raise DataFileError(
            f"{path}: cannot read .exr: this OpenCV build has no OpenEXR codec and the "
            "'openexr' package is not installed (pip install openexr), or convert to .npy"
        ) from None
    try:
        with OpenEXR.File(str(path)) as exr:
            channels = {k: np.asarray(v.pixels) for k, v in exr.channels().items()}
    except Exception as err:
        raise DataFileError(f"{path}: unreadable EXR file ({err})") from err
    if len(channels) == 1:
        return next(iter(channels.values()))
    for names in (("RGB",), ("XYZ",), ("R", "G", "B"), ("X", "Y", "Z"), ("Z",), ("depth",),
                  ("Y",), ("R",)):
        if all(n in channels for n in names):
            arrays = [channels[n] for n in names]
            return arrays[0] if len(arrays) == 1 else np.stack(arrays, -1)
    raise DataFileError(f"{path}: EXR channels {sorted(channels)} not understood")


def read_array(path: Path) -> np.ndarray:
    """The numbers stored in a ``.npy``, ``.exr`` or (8/16-bit) image file, as stored; image
    channels in RGB(A) order."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except Exception as err:
            raise DataFileError(f"{path}: unreadable .npy file ({err})") from err
    if suffix == ".exr":
        return read_exr(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataFileError(f"{path}: unreadable image (missing, truncated or not an image)")
    return img[..., 2::-1] if img.ndim == 3 else img  # BGR(A) -> RGB


def read_foreground(path: str | Path) -> np.ndarray:
    """Foreground mask ``(H, W)`` bool from a PNG (channel 0 > 0) or a boolean/int ``.npy``."""
    mask = read_array(Path(path))
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise DataFileError(f"{path}: mask must be (H, W), got shape {mask.shape}")
    return mask > 0


# ------------------------------------------------------------------ Hugging Face datasets cells
def as_pil(value: Any) -> Any:
    """A ``datasets`` image cell (PIL image, or ``{"bytes"|"path": ...}``) as a PIL image;
    ``None`` for anything else (arrays, lists)."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return value
    if isinstance(value, Mapping) and (value.get("bytes") or value.get("path")):
        import io as _io

        return Image.open(_io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"])
    return None


def as_array(value: Any, what: str, where: str) -> np.ndarray:
    """A ``datasets`` cell (image or nested lists/array) as a NumPy array; ``where`` names the
    row in the error."""
    image = as_pil(value)
    arr = np.asarray(image) if image is not None else np.asarray(value)
    if arr.dtype == object or arr.ndim < 2:
        raise DataFileError(f"{where}: column '{what}' holds {type(value).__name__}, not an "
                            "image or an array")
    return arr
