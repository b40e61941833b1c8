"""COCO-style keypoint annotations as top-down person crops (COCO-17, COCO-WholeBody, Goliath).

Format: a COCO JSON with ``images`` (``id``, ``file_name``, optionally ``width``/``height``) and
``annotations`` (``image_id``, ``bbox`` ``[x, y, w, h]``, ``iscrowd``, ``area`` and the keypoint
fields of the keypoint set: ``keypoints`` for COCO-17; ``keypoints``, ``foot_kpts``, ``face_kpts``,
``lefthand_kpts``, ``righthand_kpts`` (with ``*_valid`` flags) for COCO-WholeBody;
``goliath_wholebody_kpts`` for Goliath). Each field is a flat ``[x, y, v] * n`` list.

Citations: Lin et al., "Microsoft COCO", ECCV 2014; Jin et al., "Whole-Body Human Pose Estimation
in the Wild", ECCV 2020; Khirodkar et al., "Sapiens", ECCV 2024.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from sapiens_kit.codecs.udp_heatmap import UDPHeatmap
from sapiens_kit.data.io import DataFileError, load_json, malformed, read_rgb
from sapiens_kit.data.keypoints import (
    KeypointSet,
    convert_keypoints,
    eval_set,
    load_keypoint_set,
)
from sapiens_kit.data.transforms.pose import TopdownEvalTransform

log = logging.getLogger(__name__)


def read_annotation_keypoints(ann: dict[str, Any], kset: KeypointSet, source: str) -> np.ndarray:
    """The ``(K, 3)`` keypoints of one annotation, concatenated over the set's fields."""
    parts = []
    for fld, count in kset.annotation_fields:
        values = ann.get(fld)
        if values is None:
            raise DataFileError(
                f"{source}: annotation {ann.get('id')} has no '{fld}' field, required by "
                f"keypoint set '{kset.name}' (fields {[f for f, _ in kset.annotation_fields]})"
            )
        if len(values) != 3 * count:
            raise DataFileError(
                f"{source}: annotation {ann.get('id')} '{fld}' holds {len(values)} values; "
                f"keypoint set '{kset.name}' expects {count} points x 3 = {3 * count}. "
                "Is data.keypoints (or data.ann_keypoints) the set these labels use?"
            )
        arr = np.asarray(values, dtype=np.float32).reshape(count, 3)
        valid_flag = fld.removesuffix("_kpts") + "_valid"
        if fld.endswith("_kpts") and ann.get(valid_flag) is False:
            arr = arr.copy()
            arr[:, 2] = 0
        parts.append(arr)
    return np.concatenate(parts, 0)


class CocoKeypoints(Dataset[dict[str, Any]]):
    """One sample per person box: a UDP crop, its heatmaps and keypoints.

    Training (``train=True``) skips crowd instances and those with no labelled keypoint, like the
    official loader; so does evaluation with ground-truth boxes. With ``bboxes`` (a COCO detection
    results JSON) the boxes come from the detector instead, as in COCO evaluation.

    A box with zero or negative size, or lying outside its image, is a bad instance: it is skipped
    and counted in :attr:`skipped` (with a warning naming the file), or raises when
    ``on_bad_instance="error"``. A missing field, keypoint arrays of the wrong length or a missing
    image always raise :class:`DataFileError` naming the file.

    Args:
        ann_file: COCO-style annotation JSON.
        img_dir: Folder the ``file_name`` entries are relative to.
        keypoints: The set the model predicts (preset name, file or :class:`KeypointSet`).
        ann_keypoints: The set the annotations use (default: ``keypoints``); points are carried
            over by name (e.g. COCO-WholeBody labels for a Goliath-308 model).
        transform: Top-down transform (default: evaluation crop at 1024x768).
        codec: Heatmap encoder; ``None`` returns no ``heatmap``.
        train: Training filter (crowd and unlabelled instances skipped).
        bboxes: Detection results JSON for the boxes (evaluation only).
        bbox_score_thr: Detections below this score are dropped.
        on_bad_instance: ``"skip"`` (count and warn) or ``"error"``.
    """

    def __init__(
        self,
        ann_file: str | Path,
        img_dir: str | Path,
        keypoints: str | Path | KeypointSet = "coco_wholebody133",
        ann_keypoints: str | Path | KeypointSet | None = None,
        transform: Any = None,
        codec: UDPHeatmap | None = None,
        train: bool = False,
        bboxes: str | Path | None = None,
        bbox_score_thr: float = 0.0,
        on_bad_instance: Literal["skip", "error"] = "skip",
    ) -> None:
        self.ann_file = Path(ann_file)
        self.img_dir = Path(img_dir)
        self.kset = load_keypoint_set(keypoints)
        self.ann_kset = load_keypoint_set(ann_keypoints) if ann_keypoints else self.kset
        self.eval_kset = eval_set(self.ann_kset, self.kset)
        self.transform = transform or TopdownEvalTransform((1024, 768))
        self.codec = codec
        self.train = train
        self.on_bad_instance = on_bad_instance
        self.skipped: dict[str, list[Any]] = {}
        with malformed(self.ann_file if bboxes is None else f"{self.ann_file} or {bboxes}",
                       "annotations"):
            self._load(bboxes, bbox_score_thr)

    # ------------------------------------------------------------------ parsing
    def _load(self, bboxes: str | Path | None, bbox_score_thr: float) -> None:
        data = load_json(self.ann_file, "annotation file")
        src = str(self.ann_file)
        if not isinstance(data, dict):
            raise DataFileError(f"{src}: expected a COCO JSON object with 'images' and "
                                "'annotations'")
        for key in ("images", "annotations"):
            if not isinstance(data.get(key), list):
                raise DataFileError(f"{src}: missing required field '{key}' (a list)")
        self.images: dict[int, dict[str, Any]] = {}
        for img in data["images"]:
            for key in ("id", "file_name"):
                if key not in img:
                    raise DataFileError(f"{src}: an image entry has no '{key}' field: "
                                        f"{str(img)[:120]}")
            self.images[int(img["id"])] = {k: img[k] for k in ("id", "file_name", "width",
                                                              "height") if k in img}
        self.gt_annotations = [self._parse_annotation(a, i, src)
                               for i, a in enumerate(data["annotations"])]
        del data
        rows = (self._detection_rows(Path(bboxes), bbox_score_thr) if bboxes
                else self._gt_rows())
        self._finish(rows)
        if self.train:
            # Per-annotation Python objects would be copied into every forked worker as their
            # reference counts change; training only needs the arrays built by _finish.
            self.gt_annotations = []
            self.images = {i: self.images[i] for i in self.paths}

    def _parse_annotation(self, ann: dict[str, Any], index: int, src: str) -> dict[str, Any]:
        for key in ("image_id", "bbox"):
            if key not in ann:
                raise DataFileError(f"{src}: annotation {ann.get('id', f'#{index}')} has no "
                                    f"'{key}' field")
        if int(ann["image_id"]) not in self.images:
            raise DataFileError(f"{src}: annotation {ann.get('id')} refers to image_id "
                                f"{ann['image_id']}, which is not in 'images'")
        bbox = ann["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise DataFileError(f"{src}: annotation {ann.get('id')} 'bbox' must be [x, y, w, h]")
        kps = read_annotation_keypoints(ann, self.ann_kset, src)
        return {
            "id": int(ann.get("id", index + 1)),
            "image_id": int(ann["image_id"]),
            "category_id": int(ann.get("category_id", 1)),
            "bbox": [float(v) for v in bbox],
            "area": float(ann.get("area", float(bbox[2]) * float(bbox[3]))),
            "iscrowd": int(ann.get("iscrowd", 0)),
            "keypoints": kps,
        }

    def _gt_rows(self) -> list[dict[str, Any]]:
        rows = []
        for ann in self.gt_annotations:
            if ann["iscrowd"]:
                continue
            kps = convert_keypoints(ann["keypoints"], self.ann_kset, self.kset)
            if not (kps[:, 2] > 0).any():
                continue
            rows.append({"ann_id": ann["id"], "image_id": ann["image_id"], "bbox": ann["bbox"],
                         "score": 1.0, "keypoints": kps})
        return rows

    def _detection_rows(self, path: Path, thr: float) -> list[dict[str, Any]]:
        if self.train:
            raise ValueError("detection boxes are for evaluation; training uses labelled boxes")
        dets = load_json(path, "detection results file")
        if not isinstance(dets, list):
            raise DataFileError(f"{path}: expected a COCO detection results list")
        rows = []
        for i, det in enumerate(dets):
            for key in ("image_id", "bbox"):
                if key not in det:
                    raise DataFileError(f"{path}: detection #{i} has no '{key}' field")
            if int(det.get("category_id", 1)) != 1 or float(det.get("score", 1.0)) < thr:
                continue
            if int(det["image_id"]) not in self.images:
                raise DataFileError(f"{path}: detection #{i} refers to image_id "
                                    f"{det['image_id']}, which {self.ann_file} does not list")
            rows.append({"ann_id": -1, "image_id": int(det["image_id"]),
                         "bbox": [float(v) for v in det["bbox"]],
                         "score": float(det.get("score", 1.0)), "keypoints": None})
        return rows

    def _finish(self, rows: list[dict[str, Any]]) -> None:
        k = self.kset.num_keypoints
        good, bad = [], []
        for row in rows:
            bbox = self._clip(row["bbox"], self.images[row["image_id"]])
            if bbox is None:
                bad.append(row["ann_id"] if row["ann_id"] >= 0 else row["bbox"])
                continue
            row["bbox"] = bbox
            good.append(row)
        if bad:
            msg = (f"{self.ann_file}: {len(bad)} instance(s) with a zero/negative-size box or a "
                   f"box outside its image (annotation ids / boxes {bad[:5]})")
            if self.on_bad_instance == "error":
                raise DataFileError(msg)
            log.warning("%s were skipped", msg)
            self.skipped["bad_box"] = bad
        if not good:
            raise DataFileError(f"{self.ann_file}: no usable person instances "
                                f"({len(rows)} candidates, {len(bad)} with bad boxes)")
        self.ann_ids = np.array([r["ann_id"] for r in good], dtype=np.int64)
        self.image_ids = np.array([r["image_id"] for r in good], dtype=np.int64)
        self.bboxes = np.array([r["bbox"] for r in good], dtype=np.float32)
        self.bbox_scores = np.array([r["score"] for r in good], dtype=np.float64)
        self.keypoints = np.stack([r["keypoints"] if r["keypoints"] is not None
                                   else np.zeros((k, 3), np.float32) for r in good])
        self.paths = {i: self.img_dir / self.images[i]["file_name"]
                      for i in np.unique(self.image_ids).tolist()}
        missing = [p for p in self.paths.values() if not p.is_file()]
        if missing:
            raise DataFileError(
                f"{missing[0]}: image referenced by {self.ann_file} does not exist"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )

    @staticmethod
    def _clip(bbox: Sequence[float], image: dict[str, Any]) -> list[float] | None:
        x, y, w, h = bbox
        if not (w > 0 and h > 0):
            return None
        if "width" in image and "height" in image:
            iw, ih = float(image["width"]), float(image["height"])
            x1, y1 = min(max(x, 0.0), iw - 1), min(max(y, 0.0), ih - 1)
            x2, y2 = min(max(x + w, 0.0), iw - 1), min(max(y + h, 0.0), ih - 1)
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                return None
            return [x1, y1, x2 - x1, y2 - y1]
        return [x, y, w, h]

    # ------------------------------------------------------------------ evaluation
    def coco_ground_truth(self) -> dict[str, Any]:
        """The annotations as a COCO dict in the evaluation keypoint set (flat ``keypoints``)."""
        if self.train:
            raise RuntimeError("a training dataset keeps no ground truth for evaluation")
        anns = []
        for ann in self.gt_annotations:
            kps = convert_keypoints(ann["keypoints"], self.ann_kset, self.eval_kset)
            anns.append({**{k: v for k, v in ann.items() if k != "keypoints"},
                         "keypoints": kps.reshape(-1).tolist(),
                         "num_keypoints": int((kps[:, 2] > 0).sum())})
        return {"images": list(self.images.values()), "annotations": anns,
                "categories": [{"id": 1, "name": "person"}]}

    # ------------------------------------------------------------------ samples
    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_id = int(self.image_ids[index])
        path = self.paths[image_id]
        image = read_rgb(path)
        kps = self.keypoints[index]
        crop = self.transform(image, self.bboxes[index], kps[:, :2], kps[:, 2])
        sample: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(crop.image.transpose(2, 0, 1))),
            "keypoints": torch.from_numpy(crop.keypoints),
            "keypoint_weights": torch.from_numpy(crop.visible),
        }
        if self.codec is not None:
            heatmap, weights = self.codec.encode(sample["keypoints"], sample["keypoint_weights"])
            sample["heatmap"], sample["keypoint_weights"] = heatmap, weights
        sample["meta"] = {
            "path": str(path), "image_id": image_id, "ann_id": int(self.ann_ids[index]),
            "bbox": self.bboxes[index].tolist(), "bbox_score": float(self.bbox_scores[index]),
            "center": crop.center.tolist(), "scale": crop.scale.tolist(),
            "orig_size": tuple(image.shape[:2]), "boxes": "detections" if
            self.ann_ids[index] < 0 else "ground_truth",
        }
        return sample


# Moved to predict_inputs.py with the other prediction inputs; kept importable from here.
from sapiens_kit.data.datasets.predict_inputs import PersonCrops  # noqa: E402, F401
