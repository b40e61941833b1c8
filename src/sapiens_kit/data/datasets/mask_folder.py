"""Image + index-mask folders for semantic (body-part) segmentation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sapiens_kit.data.io import (
    DataFileError,
    image_size,
    list_images,
    read_index_mask,
    read_rgb,
    select_stems,
)

log = logging.getLogger(__name__)

Transform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class MaskFolder(Dataset):
    """Pairs ``images/<stem>.(jpg|png)`` with ``masks/<stem>.png`` index masks.

    Layout::

        <root>/images/*.jpg|png   RGB photos
        <root>/masks/*.png        single-channel class ids, same stem; 255 (ignore_index) = ignore

    Problems that can be found without training (missing folders, unpaired files, size mismatches,
    class ids outside the vocabulary) raise :class:`DataFileError` naming the file, at construction.

    Args:
        root: Folder holding ``images/`` and ``masks/``.
        num_classes: Valid ids are ``0..num_classes-1`` plus ``ignore_index``.
        ignore_index: Label id that is ignored by loss and metrics.
        stems: Restrict to these file stems (a split list), in this order.
        transform: ``(image, mask) -> (image, mask)`` applied to NumPy arrays.
        check_labels: Read every mask up front to validate class ids (recommended; fast for PNGs).
        on_error: ``raise`` on an unreadable image or mask found by the up-front check, or
            ``skip``: drop the sample and list the file in :attr:`unreadable`.
    """

    def __init__(
        self,
        root: str | Path,
        num_classes: int,
        ignore_index: int = 255,
        stems: Sequence[str] | None = None,
        transform: Transform | None = None,
        check_labels: bool = True,
        on_error: str = "raise",
    ) -> None:
        self.root = Path(root)
        self.on_error = on_error
        self.unreadable: list[str] = []
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.transform = transform
        self.samples = self._pair(stems)
        self._check(check_labels)

    def _pair(self, stems: Sequence[str] | None) -> list[tuple[Path, Path]]:
        img_dir, mask_dir = self.root / "images", self.root / "masks"
        for folder in (self.root, img_dir, mask_dir):
            if not folder.is_dir():
                raise DataFileError(
                    f"{folder}: folder does not exist (expected images/ and masks/)")
        images = list_images(img_dir)
        masks = {p.stem: p for p in sorted(mask_dir.glob("*.png"))}
        no_mask = sorted(set(images) - set(masks))
        no_image = sorted(set(masks) - set(images))
        if no_mask:
            raise DataFileError(
                f"{images[no_mask[0]]}: image has no mask {mask_dir / (no_mask[0] + '.png')}"
                + (f" (and {len(no_mask) - 1} more)" if len(no_mask) > 1 else "")
            )
        if no_image:
            raise DataFileError(
                f"{masks[no_image[0]]}: mask has no image in {img_dir}"
                + (f" (and {len(no_image) - 1} more)" if len(no_image) > 1 else "")
            )
        keys = select_stems(images, stems, self.root, img_dir)
        return [(images[k], masks[k]) for k in keys]

    def _check(self, check_labels: bool) -> None:
        kept = []
        for img_path, mask_path in self.samples:
            try:  # unreadable files may be skipped; wrong sizes or ids always raise
                sizes = image_size(img_path), image_size(mask_path)
                ids = np.unique(read_index_mask(mask_path)) if check_labels else None
            except DataFileError as err:
                if self.on_error != "skip":
                    raise
                log.warning("dropping unreadable sample: %s", err)
                self.unreadable.append(str(err).split(": ", 1)[0])
                continue
            kept.append((img_path, mask_path))
            if sizes[0] != sizes[1]:
                raise DataFileError(
                    f"{mask_path}: mask size {sizes[1]} differs from its image "
                    f"{img_path} {sizes[0]} (H, W)"
                )
            if ids is not None:
                bad = [int(i) for i in ids if i >= self.num_classes and i != self.ignore_index]
                if bad:
                    raise DataFileError(
                        f"{mask_path}: class ids {bad} are outside the {self.num_classes} classes "
                        f"(valid: 0..{self.num_classes - 1} and ignore {self.ignore_index})"
                    )
        if not kept:
            raise DataFileError(f"{self.root}: no readable sample")
        self.samples = kept

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        img_path, mask_path = self.samples[index]
        image, mask = read_rgb(img_path), read_index_mask(mask_path)
        orig_size = mask.shape[:2]
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.from_numpy(mask.astype(np.int64)),
            "meta": {"path": str(img_path), "orig_size": tuple(orig_size)},
        }
