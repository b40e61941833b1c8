"""The datasets prediction reads: image files prepared for a task's model input.

- :class:`ImageListDataset`: whole images stretched to the model size (seg, dense tasks);
- :class:`ForegroundImageList`: the same with an optional foreground mask per image (dense);
- :class:`PersonCrops`: top-down person crops from detections, box files or the whole image
  (pose).

Each sample holds ``image`` uint8 ``(3, H, W)`` and ``meta`` with the source ``path`` and
``orig_size``, which is what ``save_predictions`` maps outputs back with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from sapiens_kit.data.io import (
    DataFileError,
    image_size,
    load_json,
    read_foreground,
    read_rgb,
)
from sapiens_kit.data.transforms.pose import TopdownEvalTransform


class ImageListDataset(Dataset):
    """Images stretched to the model size, with their path and original size in ``meta``.

    This is the official whole-image inference of the dense tasks (no aspect kept).
    """

    def __init__(self, paths: Sequence[Path], img_size: tuple[int, int]) -> None:
        self.paths = list(paths)
        self.img_size = tuple(img_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        image = read_rgb(path)
        resized = cv2.resize(image, (self.img_size[1], self.img_size[0]),
                             interpolation=cv2.INTER_LINEAR)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))),
            "meta": {"path": str(path), "orig_size": tuple(image.shape[:2])},
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


class PersonCrops(Dataset[dict[str, Any]]):
    """Top-down crops for prediction on image files: one per person box.

    The boxes come from ``detections`` (what ``predict``'s person detector found: a mapping
    from the image path, as ``str``, to an object with ``boxes`` ``(N, 4)`` x1 y1 x2 y2 pixels,
    ``scores`` ``(N,)`` and ``source``), else from a box file ``bboxes``: a COCO detection
    results list (``image_id`` matched to numeric file stems such as COCO's
    ``000000000785.jpg``), a COCO annotation JSON (boxes of its ``annotations``, matched by
    ``file_name``), or a ``{file name or stem: [[x, y, w, h(, score)], ...]}`` map. Without
    boxes, or for an image no box refers to, the whole image is one box and the sample's
    ``meta["boxes"]`` says ``"whole_image"``. An image in which the detector found nobody (its
    fallback is ``skip``) still gets one whole-image sample, marked ``meta["empty"]``, whose
    prediction the task leaves out, so that every image is written.

    Each sample's ``meta["n_samples"]`` is the number of samples of its image.

    Args:
        images: Image files.
        img_size: Model input ``(H, W)``.
        bboxes: Box file (see above), or ``None``.
        bbox_score_thr: Boxes of ``bboxes`` below this score are dropped.
        detections: Boxes per image path (see above); they take precedence over ``bboxes``.
        padding: Box enlargement around each person (official 1.25).
        decoded: RGB arrays of (some of) the images, by path, already decoded (for the
            detector): the crops are cut from them instead of decoding the file again.
    """

    def __init__(self, images: Sequence[str | Path], img_size: Sequence[int],
                 bboxes: str | Path | None = None, bbox_score_thr: float = 0.0,
                 detections: Mapping[str, Any] | None = None, padding: float = 1.25,
                 decoded: Mapping[str, np.ndarray] | None = None) -> None:
        self.transform = TopdownEvalTransform(img_size, padding)
        self.decoded = dict(decoded or {})
        boxes = self._read_boxes(Path(bboxes), bbox_score_thr) if bboxes else {}
        # (path, [x, y, w, h], score, source, samples of the image, empty)
        self.items: list[tuple[Path, list[float], float, str, int, bool]] = []
        self._last: tuple[Path, np.ndarray] | None = None
        for path in map(Path, images):
            items = self._detected(path, detections) if detections else None
            if items is None:
                items = self._from_file(path, boxes)
            self.items += [(*item[:4], len(items), item[4]) for item in items]

    @staticmethod
    def _detected(path: Path, detections: Mapping[str, Any]) -> list[tuple[Any, ...]] | None:
        found = detections.get(str(path))
        if found is None:
            return None
        out = [(path, [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], float(score),
                str(found.source), False)
               for (x1, y1, x2, y2), score in zip(np.asarray(found.boxes, np.float64).reshape(
                   -1, 4), np.asarray(found.scores, np.float64).reshape(-1), strict=True)]
        if not out:
            height, width = image_size(path)
            out = [(path, [0.0, 0.0, float(width), float(height)], 0.0, str(found.source), True)]
        return out

    @staticmethod
    def _from_file(path: Path, boxes: Mapping[Any, list[list[float]]]) -> list[tuple[Any, ...]]:
        found = boxes.get(path.name, boxes.get(path.stem))
        if found is None and path.stem.isdigit():
            found = boxes.get(int(path.stem))
        if found:
            return [(path, box[:4], box[4], "detections", False) for box in found]
        height, width = image_size(path)
        return [(path, [0.0, 0.0, float(width), float(height)], 1.0, "whole_image", False)]

    @staticmethod
    def _read_boxes(path: Path, thr: float) -> dict[Any, list[list[float]]]:
        data = load_json(path, "box file")
        out: dict[Any, list[list[float]]] = {}

        def add(key: Any, box: Sequence[float], score: float) -> None:
            if len(box) < 4:
                raise DataFileError(f"{path}: box {box} must be [x, y, w, h]")
            if score >= thr and box[2] > 0 and box[3] > 0:
                out.setdefault(key, []).append([float(v) for v in box[:4]] + [float(score)])

        if isinstance(data, list):
            for i, det in enumerate(data):
                if "image_id" not in det or "bbox" not in det:
                    raise DataFileError(f"{path}: detection #{i} needs 'image_id' and 'bbox'")
                if int(det.get("category_id", 1)) == 1:
                    add(int(det["image_id"]), det["bbox"], float(det.get("score", 1.0)))
        elif isinstance(data, dict) and "annotations" in data and "images" in data:
            names = {img["id"]: img["file_name"] for img in data["images"]}
            for ann in data["annotations"]:
                if not ann.get("iscrowd") and ann.get("image_id") in names:
                    add(Path(names[ann["image_id"]]).name, ann["bbox"], 1.0)
        elif isinstance(data, dict):
            for key, boxes in data.items():
                for box in boxes:
                    add(key, box, box[4] if len(box) > 4 else 1.0)
        else:
            raise DataFileError(f"{path}: not a detection list, COCO JSON or name->boxes map")
        return out

    def __len__(self) -> int:
        return len(self.items)

    def _image(self, path: Path) -> np.ndarray:
        """The decoded image (the last one is kept: an image's people are consecutive)."""
        if str(path) in self.decoded:
            return self.decoded[str(path)]
        if self._last is None or self._last[0] != path:
            self._last = (path, read_rgb(path))
        return self._last[1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, bbox, score, source, count, empty = self.items[index]
        image = self._image(path)
        crop = self.transform(image, bbox)
        meta = {
            "path": str(path), "image_id": int(path.stem) if path.stem.isdigit() else -1,
            "ann_id": -1, "bbox": list(bbox), "bbox_score": score,
            "center": crop.center.tolist(), "scale": crop.scale.tolist(),
            "orig_size": tuple(image.shape[:2]), "boxes": source, "n_samples": count,
        }
        if empty:
            meta["empty"] = True
        return {"image": torch.from_numpy(np.ascontiguousarray(crop.image.transpose(2, 0, 1))),
                "meta": meta}


__all__ = ["ForegroundImageList", "ImageListDataset", "PersonCrops"]
