"""Lightning data module for Hugging Face ``datasets`` (a Hub name or a local folder)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sapiens_kit.data.datamodules.base import BaseDataModule
from sapiens_kit.data.datasets.hf_datasets import VAL_SPLITS, HFTask, export_dataset, load_splits
from sapiens_kit.data.io import DataFileError

log = logging.getLogger(__name__)


class HFDatasetDataModule(BaseDataModule):
    """Seg, depth, normal or pose data from a ``datasets`` dataset, fed to the folder pipelines.

    The chosen splits are exported once (cached by fingerprint) to the layout of
    :class:`MaskFolderDataModule`, :class:`DenseFolderDataModule` or
    :class:`CocoKeypointDataModule` (see :mod:`sapiens_kit.data.datasets.hf_datasets`), which then
    does the checks, augmentation and evaluation exactly as for folders.

    Columns: ``image`` (an ``Image`` feature or arrays) and, per task, ``mask`` (class-id image),
    ``depth`` (``(H, W)`` array or 16-bit/float image), ``normal`` (``(H, W, 3)`` array in kit
    axes, or an RGB image encoding ``(n + 1) / 2``) with an optional ``foreground`` column, or for
    pose ``keypoints`` (per person ``K x 3`` values ``x, y, visibility``) and an optional
    ``bbox`` column (per person ``[x, y, w, h]``; default: the keypoints' extent + 10%).

    Args:
        path: Hub dataset name, a ``save_to_disk`` folder, or a local folder ``load_dataset``
            reads (e.g. an imagefolder with ``metadata.jsonl`` naming ``mask_file_name``).
        task: ``seg``, ``depth``, ``normal`` or ``pose``.
        name: Dataset configuration name.
        image_column: Column of the photos.
        mask_column: Seg class-id masks.
        depth_column: Depth maps.
        normal_column: Normal maps.
        foreground_column: Optional depth/normal foreground masks (> 0 = person).
        keypoints_column: Pose keypoints.
        bbox_column: Optional pose boxes.
        train_split: Split to train on.
        val_split: Split to validate on (default: the first of validation/val/valid/test).
        val_fraction: Without a validation split, hold out this fraction of ``train_split``.
        seed: Seed of the ``val_fraction`` split.
        classes: Seg vocabulary: a preset (``sapiens28``), a classes file, or a list of names
            (default: ``class_0..N`` from the largest id in the masks).
        keypoints: Pose keypoint set (preset name or file).
        cache_dir: Where the export goes (default ``~/.cache/sapiens_kit/hf_datasets``).
        load_kwargs: Extra ``load_dataset`` arguments (``revision``, ``data_dir``, ...).
        folder_kwargs: Extra arguments of the folder data module (``depth_scale``, ``flip_y``,
            ``check_labels``, ...).
        img_size: Model input ``(H, W)``.
        batch_size: Training batch size.
        val_batch_size: Validation batch size (default: ``batch_size``).
        num_workers: DataLoader worker processes.
        augment: The official training augmentations.
        on_error: Unreadable exported file: ``raise`` or ``skip`` (reported each epoch).
    """

    def __init__(
        self,
        path: str,
        task: HFTask = "seg",
        name: str | None = None,
        image_column: str = "image",
        mask_column: str = "mask",
        depth_column: str = "depth",
        normal_column: str = "normal",
        foreground_column: str | None = None,
        keypoints_column: str = "keypoints",
        bbox_column: str | None = None,
        train_split: str = "train",
        val_split: str | None = None,
        val_fraction: float | None = None,
        seed: int = 0,
        classes: str | list[str] | None = None,
        keypoints: str = "coco17",
        cache_dir: str | None = None,
        load_kwargs: dict[str, Any] | None = None,
        folder_kwargs: dict[str, Any] | None = None,
        img_size: tuple[int, int] = (1024, 768),
        batch_size: int = 2,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        augment: bool = True,
        on_error: str = "raise",
    ) -> None:
        super().__init__(batch_size, val_batch_size, num_workers, on_error)
        if task not in ("seg", "depth", "normal", "pose"):
            raise ValueError(f"task must be seg, depth, normal or pose, got {task!r}")
        self.path, self.task, self.name = path, task, name
        target = {"seg": mask_column, "depth": depth_column, "normal": normal_column,
                  "pose": keypoints_column}[task]
        role = {"seg": "mask", "pose": "keypoints"}.get(task, task)
        self.columns = {"image": image_column, role: target}
        if task in ("depth", "normal") and foreground_column:
            self.columns["foreground"] = foreground_column
        if task == "pose" and bbox_column:
            self.columns["bbox"] = bbox_column
        self.train_split, self.val_split = train_split, val_split
        self.val_fraction, self.seed = val_fraction, seed
        self.classes, self.keypoints = classes, keypoints
        self.cache_dir = Path(cache_dir or Path.home() / ".cache/sapiens_kit/hf_datasets")
        self.load_kwargs, self.folder_kwargs = load_kwargs or {}, folder_kwargs or {}
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.augment = augment
        self.root: Path | None = None
        self._folder: Any = None

    def _splits(self) -> dict[str, Any]:
        splits = load_splits(self.path, self.name, **self.load_kwargs)
        if self.train_split not in splits:
            raise DataFileError(f"{self.path}: no split '{self.train_split}' "
                                f"(has {sorted(splits)})")
        val = self.val_split or next((s for s in VAL_SPLITS if s in splits), None)
        if val is not None and val not in splits:
            raise DataFileError(f"{self.path}: no split '{val}' (has {sorted(splits)})")
        train = splits[self.train_split]
        if val is None and self.val_fraction:
            parts = train.train_test_split(test_size=self.val_fraction, seed=self.seed)
            return {"train": parts["train"], "val": parts["test"]}
        return {"train": train, **({"val": splits[val]} if val else {})}

    def folder(self) -> Any:
        """The folder data module reading the export (exporting on first use)."""
        if self._folder is not None:
            return self._folder
        from sapiens_kit.data.datamodules import (
            CocoKeypointDataModule,
            DenseFolderDataModule,
            MaskFolderDataModule,
        )
        from sapiens_kit.data.keypoints import load_keypoint_set

        kset = load_keypoint_set(self.keypoints) if self.task == "pose" else None
        self.root = export_dataset(self._splits(), self.cache_dir, self.task, self.columns,
                                   self.classes, kset)
        common = dict(img_size=self.img_size, batch_size=self.batch_size,
                      val_batch_size=self.val_batch_size, num_workers=self.num_workers,
                      augment=self.augment, on_error=self.on_error, **self.folder_kwargs)
        # Without a val split the folder modules validate on the training images (and say so).
        val = "val" if (self.root / "val").is_dir() else "train"
        data_root = self.root if val == "val" else self.root / "train"
        match self.task:
            case "seg":
                classes = (self.classes if isinstance(self.classes, str)
                           else str(self.root / "classes.json"))
                self._folder = MaskFolderDataModule(str(data_root), classes, **common)
            case "pose":
                self._folder = CocoKeypointDataModule(
                    str(self.root), "train/annotations.json", f"{val}/annotations.json",
                    "train/images", f"{val}/images", keypoints=self.keypoints, **common)
            case _:
                self._folder = DenseFolderDataModule(str(data_root), self.task, **common)
        return self._folder

    def task_kwargs(self) -> dict[str, Any]:
        """What the folder data module tells the task (classes, keypoint set)."""
        return dict(self.folder().task_kwargs())

    def prepare_data(self) -> None:
        """Load (download) and export the dataset."""
        self.folder()

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets through the folder data module."""
        inner = self.folder()
        inner.setup(stage)
        self.train_dataset, self.val_dataset = inner.train_dataset, inner.val_dataset
        self._after_setup()

    def coco_ground_truth(self) -> dict[str, Any]:
        """Pose: the validation ground truth for keypoint AP."""
        return dict(self.folder().coco_ground_truth())
