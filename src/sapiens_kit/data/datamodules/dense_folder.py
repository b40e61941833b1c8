"""Lightning data module for image + dense-target folders (depth, normals, ...)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from sapiens_kit.data.datamodules.base import BaseDataModule
from sapiens_kit.data.datasets.dense_folder import DenseFolder
from sapiens_kit.data.io import DataFileError, select_split
from sapiens_kit.data.targets import DenseTarget, TargetSpec, Transform, get_target
from sapiens_kit.data.transforms.dense import DenseEvalTransform, DenseTrainTransform

log = logging.getLogger(__name__)


class DenseFolderDataModule(BaseDataModule):
    """Dense-target data from ``images/`` + the target's folder (``depth/``, ``normal/``, ...)
    (+ ``mask/``).

    See :class:`~sapiens_kit.data.datasets.dense_folder.DenseFolder` for the file formats and
    :mod:`sapiens_kit.data.targets` for what each target reads (normal axis convention
    included). Splits, in order of precedence: ``train_list``/``val_list`` files of stems
    (relative to ``root``), else ``root/train`` and ``root/val``, else ``root`` for both (with a
    warning). With ``root=None`` a seeded synthetic set (spheres and capsules with
    analytic depth and normals, :mod:`sapiens_kit.data.synthetic`) is generated once into
    ``cache_dir`` and used: an offline demo.

    Args:
        root: Dataset folder, or ``None`` for the generated demo set.
        target: A registered target key (``depth``, ``normal``), a
            :class:`~sapiens_kit.data.targets.DenseTarget`, or a ``{_target_: ...}`` config.
        img_size: Model input ``(H, W)``.
        batch_size: Training batch size (validation uses ``val_batch_size`` or the same).
        num_workers: DataLoader worker processes.
        train_list: File of training stems, one per line.
        val_list: File of validation stems.
        depth_scale: Depth reading option: multiplier for stored depth (e.g. 0.001 for
            millimetre 16-bit PNGs); ``None`` keeps the target's own.
        flip_y: Normal reading option: negate stored Y (datasets whose Y points down).
        flip_z: Normal reading option: negate stored Z (datasets whose Z points away from the
            camera). Options the target does not have are ignored.
        augment: Official training augmentations (off = eval transform for training too).
        ratio_range: Random resize range of the training augmentation.
        rotate_limit: Max rotation (degrees) for rotatable targets (depth); normals are never
            rotated.
        check: Validate every file up front and report invalid pixels.
        empty: Samples with no foreground pixel: ``skip`` (reported) or ``error``.
        demo_size: ``(n_train, n_val)`` scenes of the generated set when ``root`` is null.
        demo_image_size: ``(H, W)`` of the generated scenes.
        cache_dir: Where the generated set goes (default ``~/.cache/sapiens_kit/synthetic``).
        on_error: Unreadable image/target/mask: ``raise`` (naming the file) or ``skip`` (reported).
    """

    def __init__(
        self,
        root: str | None = None,
        target: TargetSpec = "depth",
        img_size: tuple[int, int] = (1024, 768),
        batch_size: int = 2,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        train_list: str | None = None,
        val_list: str | None = None,
        depth_scale: float | None = None,
        flip_y: bool | None = None,
        flip_z: bool | None = None,
        augment: bool = True,
        ratio_range: tuple[float, float] = (0.2, 2.0),
        rotate_limit: float = 60.0,
        check: bool = True,
        empty: Literal["skip", "error"] = "skip",
        demo_size: tuple[int, int] = (16, 4),
        demo_image_size: tuple[int, int] = (256, 192),
        cache_dir: str | None = None,
        on_error: str = "raise",
    ) -> None:
        super().__init__(batch_size, val_batch_size, num_workers, on_error)
        self.root = Path(root).expanduser() if root else None
        if self.root is not None and not self.root.is_dir():
            raise DataFileError(f"{self.root}: dataset folder does not exist")
        self.target: DenseTarget = get_target(target).with_options(
            depth_scale=depth_scale, flip_y=flip_y, flip_z=flip_z)
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.train_list, self.val_list = train_list, val_list
        self.check, self.empty = check, empty
        self.augment = augment
        self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))
        self.rotate_limit = rotate_limit
        self.demo_size = (int(demo_size[0]), int(demo_size[1]))
        self.demo_image_size = (int(demo_image_size[0]), int(demo_image_size[1]))
        self.cache_dir = cache_dir

    def prepare_data(self) -> None:
        """Generate the synthetic demo set when no ``root`` is given (once, cached)."""
        if self.root is None:
            from sapiens_kit.data.synthetic import ensure_demo

            self.root = ensure_demo(self.cache_dir, *self.demo_size, size=self.demo_image_size,
                                    targets=[self.target])
            log.info("Using the generated synthetic %s demo set in %s", self.target.key,
                     self.root)

    def setup(self, stage: str | None = None) -> None:
        """Build (and validate) the datasets; errors name the offending file."""
        if self.train_dataset is not None:
            self._after_setup()
            return
        self.prepare_data()
        assert self.root is not None
        train_root, train_stems = select_split(self.root, "train", self.train_list)
        val_root, val_stems = select_split(self.root, "val", self.val_list)
        if (train_root, train_stems) == (val_root, val_stems):
            log.warning("%s has no val split: validating on the training images", self.root)
        train_tf: Transform = (
            DenseTrainTransform(self.img_size, self.target, self.ratio_range, self.rotate_limit)
            if self.augment else DenseEvalTransform(self.img_size)
        )
        self.train_dataset = self._dataset(train_root, train_stems, train_tf)
        self.val_dataset = self._dataset(val_root, val_stems, DenseEvalTransform(self.img_size))
        self._after_setup()

    def _dataset(self, root: Path, stems: list[str] | None, transform: Transform) -> DenseFolder:
        return DenseFolder(root, self.target, stems, transform, check=self.check,
                           empty=self.empty, on_error=self.on_error)
