"""Lightning data module for Hugging Face ``datasets`` (a Hub name or a local folder)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sapiens_kit.data.datamodules.base import BaseDataModule
from sapiens_kit.data.datamodules.coco_keypoints import CocoKeypointDataModule
from sapiens_kit.data.datamodules.dense_folder import DenseFolderDataModule
from sapiens_kit.data.datamodules.mask_folder import MaskFolderDataModule
from sapiens_kit.data.export.hf import (
    LAYOUTS,
    VAL_SPLITS,
    CocoLayout,
    DenseLayout,
    HFTask,
    Layout,
    export_dataset,
    get_layout,
    load_splits,
)
from sapiens_kit.data.io import DataFileError
from sapiens_kit.data.targets import list_targets

log = logging.getLogger(__name__)


# -------------------------------------------------------- which folder data module reads an export
def _mask_folder(dm: HFDatasetDataModule, root: Path, val: str,
                 common: dict[str, Any]) -> BaseDataModule:
    classes = dm.classes if isinstance(dm.classes, str) else str(dm.root_dir / "classes.json")
    return MaskFolderDataModule(str(root), classes, **common)


def _coco(dm: HFDatasetDataModule, root: Path, val: str,
          common: dict[str, Any]) -> BaseDataModule:
    return CocoKeypointDataModule(
        str(dm.root_dir), "train/annotations.json", f"{val}/annotations.json", "train/images",
        f"{val}/images", keypoints=dm.keypoints, **common)


def _dense_folder(dm: HFDatasetDataModule, root: Path, val: str,
                  common: dict[str, Any]) -> BaseDataModule:
    assert isinstance(dm.layout, DenseLayout)
    return DenseFolderDataModule(str(root), dm.layout.target, **common)


#: ``Layout.reader`` -> builder of the folder data module that reads the export.
FOLDER_READERS = {"mask_folder": _mask_folder, "coco": _coco, "dense_folder": _dense_folder}


class HFDatasetDataModule(BaseDataModule):
    """Seg, pose or dense-target data from a ``datasets`` dataset, fed to the folder pipelines.

    The chosen splits are exported once (cached by fingerprint) to the layout of
    :class:`MaskFolderDataModule`, :class:`CocoKeypointDataModule` or
    :class:`DenseFolderDataModule` (see :mod:`sapiens_kit.data.export.hf`), which then does the
    checks, augmentation and evaluation exactly as for folders.

    Columns: ``image`` (an ``Image`` feature or arrays) and the label column of the task's
    *role*: ``mask`` for seg (class-id image), ``keypoints`` for pose (per person ``K x 3``
    values ``x, y, visibility``) with an optional ``bbox`` column (per person ``[x, y, w, h]``;
    default: the keypoints' extent + 10%), or the dense target's key (``depth``: ``(H, W)`` array
    or 16-bit/float image; ``normal``: ``(H, W, 3)`` array in kit axes, or an RGB image encoding
    ``(n + 1) / 2``) with an optional ``foreground`` column. A role's column is named by
    ``<role>_column=`` (``mask_column``, ``keypoints_column``, ``depth_column``,
    ``normal_column``, ...) and defaults to the role itself.

    Args:
        path: Hub dataset name, a ``save_to_disk`` folder, or a local folder ``load_dataset``
            reads (e.g. an imagefolder with ``metadata.jsonl`` naming ``mask_file_name``).
        task: ``seg``, ``pose``, a dense target key (``depth``, ``normal``), a
            :class:`~sapiens_kit.data.targets.DenseTarget`, or an export
            :class:`~sapiens_kit.data.export.hf.Layout`.
        name: Dataset configuration name.
        image_column: Column of the photos.
        foreground_column: Optional dense-target foreground masks (> 0 = person).
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
        **role_columns: ``<role>_column=<column>`` for the label column (see above).
    """

    def __init__(
        self,
        path: str,
        task: HFTask = "seg",
        name: str | None = None,
        image_column: str = "image",
        foreground_column: str | None = None,
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
        **role_columns: str,
    ) -> None:
        super().__init__(batch_size, val_batch_size, num_workers, on_error)
        self.layout: Layout = get_layout(task)
        # Any known role's column may be given (configs name several); anything else is a typo.
        roles = {self.layout.role, *list_targets(), *(get_layout(k).role for k in LAYOUTS)}
        wrong = sorted(set(role_columns) - {f"{r}_column" for r in roles})
        if wrong:
            raise TypeError(f"HFDatasetDataModule got unexpected arguments {wrong}")
        self.path, self.name = path, name
        self.task = self.layout.name
        role = self.layout.role
        self.columns = {"image": image_column, role: role_columns.get(f"{role}_column", role)}
        optional = {"foreground": foreground_column, "bbox": bbox_column}
        self.columns.update({r: c for r in self.layout.optional_roles
                             if (c := optional.get(r) or role_columns.get(f"{r}_column"))})
        self.train_split, self.val_split = train_split, val_split
        self.val_fraction, self.seed = val_fraction, seed
        self.classes, self.keypoints = classes, keypoints
        self.cache_dir = Path(cache_dir or Path.home() / ".cache/sapiens_kit/hf_datasets")
        self.load_kwargs, self.folder_kwargs = load_kwargs or {}, folder_kwargs or {}
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.augment = augment
        self.root: Path | None = None
        self._folder: Any = None

    @property
    def root_dir(self) -> Path:
        """The export folder (after :meth:`folder`)."""
        if self.root is None:
            raise RuntimeError("the dataset is not exported yet: call prepare_data() first")
        return self.root

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
        if isinstance(self.layout, CocoLayout):
            from sapiens_kit.data.keypoints import load_keypoint_set

            self.layout.keypoints = load_keypoint_set(self.keypoints)
        self.root = export_dataset(self._splits(), self.cache_dir, self.layout, self.columns,
                                   self.classes, getattr(self.layout, "keypoints", None))
        common = dict(img_size=self.img_size, batch_size=self.batch_size,
                      val_batch_size=self.val_batch_size, num_workers=self.num_workers,
                      augment=self.augment, on_error=self.on_error, **self.folder_kwargs)
        # Without a val split the folder modules validate on the training images (and say so).
        val = "val" if (self.root / "val").is_dir() else "train"
        data_root = self.root if val == "val" else self.root / "train"
        self._folder = FOLDER_READERS[self.layout.reader](self, data_root, val, common)
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
