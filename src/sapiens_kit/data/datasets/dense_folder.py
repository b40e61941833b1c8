"""Image + per-pixel target folders (the dense regression tasks: depth, normals, ...).

What a target is (its folder names, file formats, valid pixels, report fields) lives in its
:class:`~sapiens_kit.data.targets.DenseTarget` object; this module only pairs files and applies
those rules. The normal axis convention is described in :mod:`sapiens_kit.data.targets.normal`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from sapiens_kit.data.io import (
    MASK_SUFFIXES,
    DataFileError,
    find_dir,
    image_size,
    index_files,
    list_images,
    read_foreground,
    read_rgb,
    select_stems,
)
from sapiens_kit.data.targets import DenseTarget, PixelReport, TargetSpec, Transform, get_target
from sapiens_kit.data.targets.depth import depth_valid, read_depth
from sapiens_kit.data.targets.normal import normalize_normals, read_normal

log = logging.getLogger(__name__)

#: Folder names of the photos and of the optional foreground masks, ours first.
IMAGE_FOLDERS = ("images", "rgb")
MASK_FOLDERS = ("mask", "masks")


# ------------------------------------------------------------------------------------ dataset
@dataclass
class _Sample:
    stem: str
    image: Path
    target: Path
    mask: Path | None
    report: PixelReport = field(default_factory=PixelReport)


class DenseFolder(Dataset[dict[str, Any]]):
    """Pairs ``images/<stem>`` with ``<target folder>/<stem>`` and an optional mask.

    The target (a :class:`~sapiens_kit.data.targets.DenseTarget` or its registered key) says
    which folder, file formats and validity rules apply. For the built-in targets the layout is
    (official spellings ``rgb/``, ``depths/``, ``normals/``, ``masks/`` also accepted)::

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

    Each sample holds ``image`` uint8 (3, H, W) after the transform, the target under its key
    (``depth`` float32 (1, H, W), ``normal`` float32 (3, H, W), ...), ``valid_mask`` bool (H, W)
    and ``meta`` (``path``, ``target_path``, ``orig_size``).

    Args:
        root: Folder holding the sub-folders above.
        target: A :class:`~sapiens_kit.data.targets.DenseTarget`, or a registered key
            (``depth``, ``normal``).
        stems: Restrict to these stems (a split list), in this order.
        transform: Joint transform of ``(image, target, valid)``.
        depth_scale: Reading option of the depth target: multiplier applied to stored depth
            (e.g. 0.001 for millimetre PNGs). ``None`` keeps the target's own.
        flip_y: Reading option of the normal target: negate stored Y (datasets with Y pointing
            down). ``None`` keeps the target's own.
        flip_z: Reading option of the normal target: negate stored Z. Options a target does
            not have are ignored.
        check: Read every file up front to validate and count invalid pixels.
        empty: What to do with samples that have no foreground: ``skip`` or ``error``.
        on_error: Unreadable files found by the up-front check: ``raise`` or ``skip`` (the
            sample is dropped and the file listed in :attr:`unreadable`).
    """

    def __init__(
        self,
        root: str | Path,
        target: TargetSpec = "depth",
        stems: Sequence[str] | None = None,
        transform: Transform | None = None,
        depth_scale: float | None = None,
        flip_y: bool | None = None,
        flip_z: bool | None = None,
        check: bool = True,
        empty: Literal["skip", "error"] = "skip",
        on_error: str = "raise",
    ) -> None:
        if empty not in ("skip", "error"):
            raise ValueError(f"empty must be 'skip' or 'error', got {empty!r}")
        self.root = Path(root)
        self.target: DenseTarget = get_target(target).with_options(
            depth_scale=depth_scale, flip_y=flip_y, flip_z=flip_z)
        self.transform = transform
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
        key = self.target.key
        img_dir = find_dir(self.root, IMAGE_FOLDERS)
        tgt_dir = find_dir(self.root, self.target.folder_names)
        if img_dir is None or tgt_dir is None:
            raise DataFileError(
                f"{self.root}: expected sub-folders images/ and {key}/ (found "
                f"{sorted(p.name for p in self.root.iterdir() if p.is_dir())})"
            )
        mask_dir = find_dir(self.root, MASK_FOLDERS)
        images = list_images(img_dir)
        targets = index_files(tgt_dir, self.target.suffixes)
        masks = index_files(mask_dir, MASK_SUFFIXES) if mask_dir else {}
        for missing, have, what, where in (
            (sorted(set(images) - set(targets)), images, key, tgt_dir),
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
        """Target in kit form (``(H, W)`` or ``(H, W, C)``), foreground, report.

        ``size`` is the image's ``(H, W)``; the target and mask must match it.
        """
        target, valid, bad = self.target.load(s.target)
        if valid.shape != tuple(size):
            raise DataFileError(f"{s.target}: {self.target.key} size {valid.shape} differs from "
                                f"its image {s.image} {tuple(size)} (H, W)")
        region = np.ones(valid.shape, dtype=bool)
        if s.mask is not None:
            region = read_foreground(s.mask)
            if region.shape != valid.shape:
                raise DataFileError(f"{s.mask}: mask size {region.shape} differs from its "
                                    f"image {s.image} {tuple(size)} (H, W)")
            valid = valid & region
        # Background-meaning anomalies (zero depth, ...) only count where a mask says "person".
        counted = {name: int((mask & region).sum()) if s.mask is not None or
                   name not in self.target.background_anomalies else 0
                   for name, mask in bad.items()}
        return target, valid, PixelReport(**counted)

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
                        "metrics: %s%s", self.root, len(self.reports), self.target.key, shown,
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
            self.target.key: target_t.contiguous(),
            "valid_mask": torch.from_numpy(np.ascontiguousarray(valid, dtype=bool)),
            "meta": {"path": str(s.image), "target_path": str(s.target),
                     "orig_size": tuple(orig_size)},
        }


from sapiens_kit.data.datasets.predict_inputs import ForegroundImageList  # noqa: E402

__all__ = ["DenseFolder", "ForegroundImageList", "PixelReport", "depth_valid",
           "normalize_normals", "read_depth", "read_foreground", "read_normal"]
