"""Lightning data module for image/mask folders."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sapiens_kit.data.classes import ClassSet, load_classes
from sapiens_kit.data.datamodules.base import BaseDataModule
from sapiens_kit.data.datasets.mask_folder import MaskFolder
from sapiens_kit.data.io import DataFileError, select_split
from sapiens_kit.data.transforms.seg import SegEvalTransform, SegTrainTransform

log = logging.getLogger(__name__)


class MaskFolderDataModule(BaseDataModule):
    """Segmentation data from ``images/`` + ``masks/`` folders.

    Splits, in order of precedence: ``train_list``/``val_list`` text files of stems (relative to
    ``root``), else ``root/train`` and ``root/val`` sub-folders, else ``root`` itself for both
    (with a warning that validation then reuses the training images).

    Args:
        root: Dataset folder.
        classes: Preset name (``sapiens28``) or classes file; default ``<root>/classes.json``.
        img_size: Model input ``(H, W)``.
        batch_size: Training batch size (validation uses ``val_batch_size`` or the same).
        num_workers: DataLoader worker processes.
        train_list: File of training stems, one per line.
        val_list: File of validation stems.
        check_labels: Validate every mask's class ids before training starts.
        augment: Apply the official training augmentations (off = eval transform for training).
        on_error: Unreadable image or mask: ``raise`` (naming the file) or ``skip`` (reported).
    """

    def __init__(
        self,
        root: str,
        classes: str | None = None,
        img_size: tuple[int, int] = (1024, 768),
        batch_size: int = 2,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        train_list: str | None = None,
        val_list: str | None = None,
        check_labels: bool = True,
        augment: bool = True,
        on_error: str = "raise",
    ) -> None:
        super().__init__(batch_size, val_batch_size, num_workers, on_error)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataFileError(f"{self.root}: dataset folder does not exist")
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.classes: ClassSet = load_classes(classes or self.root / "classes.json")
        self.train_list, self.val_list = train_list, val_list
        self.check_labels, self.augment = check_labels, augment

    def task_kwargs(self) -> dict[str, Any]:
        """Vocabulary facts the segmentation task is built with."""
        c = self.classes
        return {
            "num_classes": c.num_classes,
            "class_names": list(c.names),
            "palette": [list(p) for p in c.palette],
            "class_weight": list(c.class_weight) if c.class_weight else None,
            "ignore_index": c.ignore_index,
        }

    def setup(self, stage: str | None = None) -> None:
        """Build (and validate) the datasets; errors name the offending file."""
        if self.train_dataset is not None:
            self._after_setup()
            return
        c = self.classes
        train_root, train_stems = select_split(self.root, "train", self.train_list)
        val_root, val_stems = select_split(self.root, "val", self.val_list)
        if (train_root, train_stems) == (val_root, val_stems):
            log.warning("%s has no val split: validating on the training images", self.root)
        train_tf = (
            SegTrainTransform(self.img_size, c.flip_lut()) if self.augment
            else SegEvalTransform(self.img_size, resize_mask=True)
        )
        common = dict(num_classes=c.num_classes, ignore_index=c.ignore_index,
                      check_labels=self.check_labels, on_error=self.on_error)
        self.train_dataset = MaskFolder(train_root, stems=train_stems, transform=train_tf,
                                        **common)
        self.val_dataset = MaskFolder(val_root, stems=val_stems,
                                      transform=SegEvalTransform(self.img_size), **common)
        self._after_setup()
