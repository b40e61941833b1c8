"""Image + per-pixel depth or surface-normal folders (the dense regression tasks).

Axis convention for normals (the kit's, used by the synthetic generator, the losses and the
saved predictions): camera coordinates with **X to the right, Y up, Z towards the camera**, so a
surface facing the camera is ``(0, 0, 1)`` (light blue-violet as ``(n + 1) / 2`` RGB). The
official Sapiens code documents only "camera coordinates, XYZ"; datasets stored with OpenCV axes
(Y down, Z forward) load correctly with ``flip_y=True, flip_z=True``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from sapiens_kit.data.datasets.image_folder import ImageListDataset
from sapiens_kit.data.io import (
    DataFileError,
    image_size,
    list_images,
    read_rgb,
    select_stems,
)

log = logging.getLogger(__name__)

Target = Literal["depth", "normal"]
#: ``(image, target, valid) -> (image, target, valid)`` on NumPy arrays.
Transform = Callable[[np.ndarray, np.ndarray, np.ndarray],
                     tuple[np.ndarray, np.ndarray, np.ndarray]]

#: Accepted folder names, ours first, then the official Sapiens spellings.
FOLDERS = {
    "images": ("images", "rgb"),
    "depth": ("depth", "depths"),
    "normal": ("normal", "normals"),
    "mask": ("mask", "masks"),
}
TARGET_SUFFIXES = {"depth": (".npy", ".exr", ".png", ".tif", ".tiff"),
                   "normal": (".npy", ".exr", ".png", ".tif", ".tiff")}
MASK_SUFFIXES = (".png", ".npy", ".jpg", ".bmp", ".tif", ".tiff")


# ------------------------------------------------------------------------------------ readers
def _read_exr(path: Path) -> np.ndarray:
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


def _read_array(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except Exception as err:
            raise DataFileError(f"{path}: unreadable .npy file ({err})") from err
    if suffix == ".exr":
        return _read_exr(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataFileError(f"{path}: unreadable image (missing, truncated or not an image)")
    return img[..., 2::-1] if img.ndim == 3 else img  # BGR(A) -> RGB


def read_depth(path: str | Path, scale: float = 1.0) -> np.ndarray:
    """Depth ``(H, W)`` float32 (times ``scale``): ``.npy``, ``.exr`` or 16-bit PNG/TIFF.

    Values are returned as stored (NaN, inf, zero or negative included); the dataset decides
    which pixels are valid.
    """
    path = Path(path)
    depth = _read_array(path)
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


def read_normal(path: str | Path, flip_y: bool = False, flip_z: bool = False) -> np.ndarray:
    """Normals ``(H, W, 3)`` float32 in kit axes, not yet re-normalised.

    ``.npy``/``.exr`` hold float XYZ; 8/16-bit PNGs encode ``(n + 1) / 2`` as RGB, and their
    all-zero pixels (black background) decode to zero vectors, i.e. "no normal".
    """
    path = Path(path)
    arr = _read_array(path)
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


def read_foreground(path: str | Path) -> np.ndarray:
    """Foreground mask ``(H, W)`` bool from a PNG (channel 0 > 0) or a boolean/int ``.npy``."""
    mask = _read_array(Path(path))
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise DataFileError(f"{path}: mask must be (H, W), got shape {mask.shape}")
    return mask > 0


# ------------------------------------------------------------------------------------ validity
@dataclass
class PixelReport:
    """Invalid pixels found in one target file (they are masked out, never trained on).

    Without a mask, zero depth and zero-length normals mean "background" and are not counted;
    with a mask, only pixels inside the foreground are counted.
    """

    nonfinite: int = 0
    negative: int = 0
    zero_length: int = 0
    foreground_without_depth: int = 0

    def total(self) -> int:
        """Number of anomalous pixels."""
        return sum(vars(self).values())

    def __str__(self) -> str:
        return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in vars(self).items() if v)


def depth_valid(depth: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Valid (finite, > 0) pixels and the anomaly masks ``nonfinite``/``negative``/``zero``."""
    finite = np.isfinite(depth)
    safe = np.where(finite, depth, 0)
    return finite & (safe > 0), {"nonfinite": ~finite, "negative": safe < 0,
                                 "zero": finite & (safe == 0)}


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


# ------------------------------------------------------------------------------------ dataset
@dataclass
class _Sample:
    stem: str
    image: Path
    target: Path
    mask: Path | None
    report: PixelReport = field(default_factory=PixelReport)


def _find_dir(root: Path, kind: str) -> Path | None:
    for name in FOLDERS[kind]:
        if (root / name).is_dir():
            return root / name
    return None


def _index(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in suffixes and p.stem not in out:
            out[p.stem] = p
    return out


class DenseFolder(Dataset[dict[str, Any]]):
    """Pairs ``images/<stem>`` with ``depth/<stem>`` or ``normal/<stem>`` and an optional mask.

    Layout (official spellings ``rgb/``, ``depths/``, ``normals/``, ``masks/`` also accepted)::

        <root>/images/*.png|jpg   RGB photos
        <root>/depth/*.npy|exr|png  (H, W) depth in any unit (16-bit PNG: times depth_scale);
                                   larger = farther; <= 0, NaN or inf = no depth
        <root>/normal/*.npy|exr|png (H, W, 3) normals in kit axes (see module docstring); PNG
                                   encodes (n + 1) / 2; zero length = no normal
        <root>/mask/*.png|npy     optional foreground (> 0 = person)

    The foreground is ``mask & valid target`` when a mask exists, else the valid target pixels.
    Normals are re-normalised to unit length. Files that can never work (unreadable, wrong
    shape, image/target/mask size mismatch, unpaired) raise :class:`DataFileError` naming the
    file. With ``check=True`` every target is read up front: invalid pixels (NaN/inf, negative
    depth, zero-length normals, mask pixels without a target) are counted and reported in one
    warning (they are masked out), and samples with no foreground pixel at all are skipped with
    a warning (``empty="error"`` raises instead). Counts are kept in :attr:`reports` and
    :attr:`skipped`.

    Each sample holds ``image`` uint8 (3, H, W) after the transform, ``depth`` float32 (1, H, W)
    or ``normal`` float32 (3, H, W), ``valid_mask`` bool (H, W) and ``meta`` (``path``,
    ``target_path``, ``orig_size``).

    Args:
        root: Folder holding the sub-folders above.
        target: ``depth`` or ``normal``.
        stems: Restrict to these stems (a split list), in this order.
        transform: Joint transform of ``(image, target, valid)``.
        depth_scale: Multiplier applied to stored depth (e.g. 0.001 for millimetre PNGs).
        flip_y: Negate stored normal Y (datasets with Y pointing down).
        flip_z: Negate stored normal Z (datasets with Z pointing away from the camera).
        check: Read every file up front to validate and count invalid pixels.
        empty: What to do with samples that have no foreground: ``skip`` or ``error``.
        on_error: Unreadable files found by the up-front check: ``raise`` or ``skip`` (the
            sample is dropped and the file listed in :attr:`unreadable`).
    """

    def __init__(
        self,
        root: str | Path,
        target: Target = "depth",
        stems: Sequence[str] | None = None,
        transform: Transform | None = None,
        depth_scale: float = 1.0,
        flip_y: bool = False,
        flip_z: bool = False,
        check: bool = True,
        empty: Literal["skip", "error"] = "skip",
        on_error: str = "raise",
    ) -> None:
        if target not in ("depth", "normal"):
            raise ValueError(f"target must be 'depth' or 'normal', got {target!r}")
        if empty not in ("skip", "error"):
            raise ValueError(f"empty must be 'skip' or 'error', got {empty!r}")
        self.root = Path(root)
        self.target = target
        self.transform = transform
        self.depth_scale, self.flip_y, self.flip_z = depth_scale, flip_y, flip_z
        self.samples = self._pair(stems)
        self.skipped: list[Path] = []
        self.on_error = on_error
        self.unreadable: list[str] = []
        if check:
            self._check(empty)

    @property
    def reports(self) -> dict[str, PixelReport]:
        """Per target file, the invalid pixels found by the up-front check (only non-empty)."""
        return {str(s.target): s.report for s in self.samples if s.report.total()}

    def _pair(self, stems: Sequence[str] | None) -> list[_Sample]:
        if not self.root.is_dir():
            raise DataFileError(f"{self.root}: dataset folder does not exist")
        img_dir, tgt_dir = _find_dir(self.root, "images"), _find_dir(self.root, self.target)
        if img_dir is None or tgt_dir is None:
            raise DataFileError(
                f"{self.root}: expected sub-folders images/ and {self.target}/ (found "
                f"{sorted(p.name for p in self.root.iterdir() if p.is_dir())})"
            )
        mask_dir = _find_dir(self.root, "mask")
        images = list_images(img_dir)
        targets = _index(tgt_dir, TARGET_SUFFIXES[self.target])
        masks = _index(mask_dir, MASK_SUFFIXES) if mask_dir else {}
        for missing, have, what, where in (
            (sorted(set(images) - set(targets)), images, self.target, tgt_dir),
            (sorted(set(targets) - set(images)), targets, "image", img_dir),
        ):
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise DataFileError(f"{have[missing[0]]}: has no {what} file in {where}{more}")
        if mask_dir is not None and set(images) - set(masks):
            stem = sorted(set(images) - set(masks))[0]
            raise DataFileError(f"{images[stem]}: has no mask in {mask_dir} (a mask folder "
                                "exists, so every image needs one)")
        keys = select_stems(images, stems, self.root, img_dir)
        return [_Sample(k, images[k], targets[k], masks.get(k)) for k in keys]

    def _load(self, s: _Sample, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray,
                                                                   PixelReport]:
        """Target in kit form (depth (H, W) / unit normals (H, W, 3)), foreground, report.

        ``size`` is the image's ``(H, W)``; the target and mask must match it.
        """
        if self.target == "depth":
            target = read_depth(s.target, self.depth_scale)
            valid, bad = depth_valid(target)
            target = np.where(valid, target, 0).astype(np.float32)
        else:
            target, valid, bad = normalize_normals(
                read_normal(s.target, self.flip_y, self.flip_z))
        if valid.shape != tuple(size):
            raise DataFileError(f"{s.target}: {self.target} size {valid.shape} differs from its "
                                f"image {s.image} {tuple(size)} (H, W)")
        region = np.ones(valid.shape, dtype=bool)
        if s.mask is not None:
            region = read_foreground(s.mask)
            if region.shape != valid.shape:
                raise DataFileError(f"{s.mask}: mask size {region.shape} differs from its "
                                    f"image {s.image} {tuple(size)} (H, W)")
            valid = valid & region
        report = PixelReport(
            nonfinite=int((bad["nonfinite"] & region).sum()),
            negative=int((bad["negative"] & region).sum()) if "negative" in bad else 0,
        )
        if s.mask is not None and self.target == "normal":
            report.zero_length = int((bad["zero"] & region).sum())
        elif s.mask is not None:
            report.foreground_without_depth = int((bad["zero"] & region).sum())
        return target, valid, report

    def _check(self, empty: str) -> None:
        kept = []
        for s in self.samples:
            try:
                _, valid, s.report = self._load(s, image_size(s.image))
            except DataFileError as err:
                if self.on_error != "skip" or "differs from its" in str(err):
                    raise  # size mismatches are dataset errors, not damaged files
                log.warning("dropping unreadable sample: %s", err)
                self.unreadable.append(str(err).split(": ", 1)[0])
                continue
            if valid.any():
                kept.append(s)
            elif empty == "error":
                raise DataFileError(f"{s.target}: no valid foreground pixel (all background or "
                                    "invalid); fix or remove the sample")
            else:
                self.skipped.append(s.target)
        if self.reports:
            shown = "; ".join(f"{Path(k).name}: {v}" for k, v in list(self.reports.items())[:5])
            log.warning("%s: %d %s files have invalid pixels, masked out of training and "
                        "metrics: %s%s", self.root, len(self.reports), self.target, shown,
                        " ..." if len(self.reports) > 5 else "")
        if self.skipped:
            log.warning("%s: skipping %d samples with no foreground pixel: %s%s", self.root,
                        len(self.skipped), ", ".join(p.name for p in self.skipped[:5]),
                        " ..." if len(self.skipped) > 5 else "")
        if not kept:
            raise DataFileError(f"{self.root}: no sample has a valid foreground pixel")
        self.samples = kept

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        image = read_rgb(s.image)
        target, valid, _ = self._load(s, image.shape[:2])
        orig_size = image.shape[:2]
        if self.transform is not None:
            image, target, valid = self.transform(image, target, valid)
        target_t = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))
        target_t = target_t.unsqueeze(0) if target_t.ndim == 2 else target_t.permute(2, 0, 1)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            self.target: target_t.contiguous(),
            "valid_mask": torch.from_numpy(np.ascontiguousarray(valid, dtype=bool)),
            "meta": {"path": str(s.image), "target_path": str(s.target),
                     "orig_size": tuple(orig_size)},
        }


class ForegroundImageList(ImageListDataset):
    """Prediction inputs with an optional foreground mask per image (as the official demos use).

    For ``images/<stem>.jpg`` the mask is looked up in ``mask_dir`` as ``<stem>.png``,
    ``<stem>_mask.png`` (this kit's segmentation output), ``<stem>.npy`` or ``<stem>_seg.npy``;
    images without one get the whole frame as foreground.
    """

    def __init__(self, paths: Sequence[Path], img_size: tuple[int, int],
                 mask_dir: str | Path | None = None) -> None:
        super().__init__(paths, img_size)
        self.mask_dir = Path(mask_dir) if mask_dir else None
        if self.mask_dir is not None and not self.mask_dir.is_dir():
            raise DataFileError(f"{self.mask_dir}: mask folder does not exist")

    def _mask_path(self, image: Path) -> Path | None:
        if self.mask_dir is None:
            return None
        for name in (f"{image.stem}.png", f"{image.stem}_mask.png", f"{image.stem}.npy",
                     f"{image.stem}_seg.npy"):
            if (self.mask_dir / name).is_file():
                return self.mask_dir / name
        return None

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = super().__getitem__(index)
        size = sample["meta"]["orig_size"]
        path = self._mask_path(Path(self.paths[index]))
        mask = read_foreground(path) if path else np.ones(size, dtype=bool)
        if mask.shape != tuple(size):
            raise DataFileError(f"{path}: mask size {mask.shape} differs from its image "
                                f"{self.paths[index]} {tuple(size)} (H, W)")
        sample["valid_mask"] = torch.from_numpy(mask)
        return sample


__all__ = ["DenseFolder", "ForegroundImageList", "PixelReport",
           "read_depth", "read_foreground", "read_normal"]
