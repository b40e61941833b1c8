"""Lightning data module for COCO-style keypoint data (COCO-17, COCO-WholeBody, Goliath)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from sapiens_kit.codecs.udp_heatmap import UDPHeatmap
from sapiens_kit.data.datamodules.base import BaseDataModule
from sapiens_kit.data.datasets.coco_keypoints import CocoKeypoints
from sapiens_kit.data.io import DataFileError
from sapiens_kit.data.keypoints import eval_set, load_keypoint_set
from sapiens_kit.data.transforms.pose import TopdownEvalTransform, TopdownTrainTransform

log = logging.getLogger(__name__)


class CocoKeypointDataModule(BaseDataModule):
    """Top-down person crops with UDP heatmap targets from COCO-style keypoint JSON.

    Paths are relative to ``root`` unless absolute. Real COCO, for example::

        root=/data/coco train_ann=annotations/coco_wholebody_train_v1.0.json
        val_ann=annotations/coco_wholebody_val_v1.0.json img_dir=train2017 val_img_dir=val2017

    Args:
        root: Dataset folder.
        train_ann: Training annotation JSON.
        val_ann: Validation annotation JSON (default: the training file, with a warning).
        img_dir: Image folder of the training annotations.
        val_img_dir: Image folder of the validation annotations (default: ``img_dir``).
        keypoints: Keypoint set the model predicts (preset name or set file).
        ann_keypoints: Keypoint set the annotations use, when it differs (points are matched by
            name, e.g. ``coco_wholebody133`` labels for a ``goliath308`` model).
        img_size: Model input ``(H, W)``.
        heatmap_stride: Input / heatmap size (4 for the official head).
        sigma: Heatmap Gaussian sigma; default 6 at a 256-high heatmap, scaled with its size.
        encode_heatmaps: Build heatmaps in the workers (off: the task builds them on its device).
        val_bboxes: COCO detection results JSON giving the validation boxes (default: GT boxes).
        bbox_score_thr: Drop detections below this score.
        batch_size: Training batch size.
        val_batch_size: Validation batch size (default: ``batch_size``).
        num_workers: DataLoader worker processes.
        augment: Official training augmentations (off: plain crops).
        on_bad_instance: ``skip`` (count and warn) or ``error`` for bad boxes.
        on_error: Unreadable image: ``raise`` (naming the file) or ``skip`` (reported).
    """

    def __init__(
        self,
        root: str,
        train_ann: str,
        val_ann: str | None = None,
        img_dir: str = "images",
        val_img_dir: str | None = None,
        keypoints: str = "coco_wholebody133",
        ann_keypoints: str | None = None,
        img_size: tuple[int, int] = (1024, 768),
        heatmap_stride: int = 4,
        sigma: float | None = None,
        encode_heatmaps: bool = True,
        val_bboxes: str | None = None,
        bbox_score_thr: float = 0.0,
        batch_size: int = 2,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        augment: bool = True,
        on_bad_instance: Literal["skip", "error"] = "skip",
        on_error: str = "raise",
    ) -> None:
        super().__init__(batch_size, val_batch_size, num_workers, on_error)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataFileError(f"{self.root}: dataset folder does not exist")
        self.train_ann = self._path(train_ann)
        if val_ann is None:
            log.warning("no data.val_ann given: validating on the training annotations")
        self.val_ann = self._path(val_ann) if val_ann else self.train_ann
        self.img_dir = self._path(img_dir)
        self.val_img_dir = self._path(val_img_dir) if val_img_dir else self.img_dir
        self.val_bboxes = self._path(val_bboxes) if val_bboxes else None
        self.kset = load_keypoint_set(keypoints)
        self.ann_kset = load_keypoint_set(ann_keypoints) if ann_keypoints else self.kset
        self.eval_kset = eval_set(self.ann_kset, self.kset)
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.heatmap_size = (self.img_size[0] // heatmap_stride,
                             self.img_size[1] // heatmap_stride)
        self.sigma = sigma
        self.encode_heatmaps = encode_heatmaps
        self.bbox_score_thr = bbox_score_thr
        self.augment = augment
        self.on_bad_instance = on_bad_instance

    def _path(self, name: str) -> Path:
        path = Path(name).expanduser()
        return path if path.is_absolute() else self.root / path

    def task_kwargs(self) -> dict[str, Any]:
        """The keypoint set to predict, the set to score on and the heatmap sigma."""
        same = self.eval_kset.names == self.kset.names
        return {
            "keypoints": self.kset.spec(),
            "eval_keypoints": None if same else self.eval_kset.spec(),
            "heatmap_sigma": self.sigma,
        }

    def setup(self, stage: str | None = None) -> None:
        """Parse and validate the annotation files (errors name the offending file)."""
        codec = (UDPHeatmap(self.img_size, self.heatmap_size, self.sigma)
                 if self.encode_heatmaps else None)
        k = self.kset
        train_tf = (
            TopdownTrainTransform(self.img_size, k.flip_indices, k.upper_body, k.lower_body)
            if self.augment else TopdownEvalTransform(self.img_size)
        )
        if stage in (None, "fit") and self.train_dataset is None:
            self.train_dataset = CocoKeypoints(
                self.train_ann, self.img_dir, k, self.ann_kset, train_tf, codec, train=True,
                on_bad_instance=self.on_bad_instance,
            )
        if self.val_dataset is None:
            self.val_dataset = CocoKeypoints(
                self.val_ann, self.val_img_dir, k, self.ann_kset,
                TopdownEvalTransform(self.img_size), codec, bboxes=self.val_bboxes,
                bbox_score_thr=self.bbox_score_thr, on_bad_instance=self.on_bad_instance,
            )
        self._after_setup()

    def coco_ground_truth(self) -> dict[str, Any]:
        """COCO ground truth of the validation annotations, in the evaluation keypoint set."""
        if self.val_dataset is None:
            self.setup("validate")
        assert isinstance(self.val_dataset, CocoKeypoints)
        return self.val_dataset.coco_ground_truth()
