"""COCO keypoint AP/AR as the official ``CocoMetric`` / ``CocoWholeBodyMetric`` report them.

Per image the top-down instances are rescored (box score x mean of the keypoint scores above
0.2), de-duplicated by OKS non-maximum suppression (threshold 0.9), and written as a COCO results
list. Scoring is pycocotools' ``COCOeval`` with the keypoint set's sigmas, once for the whole set
and once per part (body, foot, face, left_hand, right_hand, ...) with that part's sigmas, which is
what xtcocotools' ``keypoints_<part>`` evaluation does: a ground truth with no labelled point in the
part is ignored, and a prediction with no positive score in the part is left out.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from sapiens_kit.data.keypoints import KeypointSet, load_keypoint_set

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def rescore(bbox_scores: np.ndarray, keypoint_scores: np.ndarray, thr: float = 0.2) -> np.ndarray:
    """Instance scores: box score x mean of the keypoint scores above ``thr`` (0 if none)."""
    above = keypoint_scores > thr
    mean = np.where(above, keypoint_scores, 0).sum(1) / np.maximum(above.sum(1), 1)
    return np.asarray(bbox_scores * mean, dtype=np.float64)


def oks(ref: np.ndarray, others: np.ndarray, ref_area: float, areas: np.ndarray,
        sigmas: np.ndarray) -> np.ndarray:
    """OKS between one pose ``(K, 2+)`` and ``(N, K, 2+)`` poses, all points counted."""
    var = (2 * sigmas) ** 2
    d2 = ((others[..., :2] - ref[None, :, :2]) ** 2).sum(-1)
    e = d2 / var / ((ref_area + areas)[:, None] / 2 + np.spacing(1)) / 2
    return np.asarray(np.exp(-e).mean(1), dtype=np.float64)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
            thr: float = 0.9) -> list[int]:
    """Indices kept by greedy OKS non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        if rest.size:
            overlap = oks(keypoints[best], keypoints[rest], areas[best], areas[rest], sigmas)
            rest = rest[overlap <= thr]
        order = rest
    return keep


def to_results(
    image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, kset: KeypointSet
) -> list[dict[str, Any]]:
    """COCO results entries, keypoints split into the set's annotation fields."""
    out = []
    for image_id, kps, score in zip(image_ids, keypoints, scores, strict=True):
        entry: dict[str, Any] = {"image_id": int(image_id), "category_id": 1}
        start = 0
        for fld, count in kset.annotation_fields:
            entry[fld] = [round(float(v), 3) for v in kps[start : start + count].reshape(-1)]
            start += count
        entry["score"] = float(score)
        out.append(entry)
    return out


def results_keypoints(entry: dict[str, Any], kset: KeypointSet) -> np.ndarray:
    """``(K, 3)`` keypoints of a results entry written by :func:`to_results`."""
    flat: list[float] = []
    for fld, _ in kset.annotation_fields:
        flat += entry[fld]
    return np.asarray(flat, dtype=np.float64).reshape(kset.num_keypoints, 3)


def _coco(dataset: dict[str, Any]) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def evaluate_part(gt: dict[str, Any], results: list[dict[str, Any]], kset: KeypointSet,
                  indices: Sequence[int]) -> dict[str, float]:
    """COCOeval on keypoints ``indices`` of the flat ground truth ``gt`` and ``results``."""
    idx = np.asarray(indices)
    anns = []
    for ann in gt["annotations"]:
        kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)[idx]
        anns.append({**ann, "keypoints": kps.reshape(-1).tolist(),
                     "num_keypoints": int((kps[:, 2] > 0).sum())})
    dets = []
    for entry in results:
        kps = results_keypoints(entry, kset)[idx]
        if (kps[:, 2] > 0).any():
            dets.append({"image_id": entry["image_id"], "category_id": 1,
                         "keypoints": kps.reshape(-1).tolist(), "score": entry["score"]})
    if not any(a["num_keypoints"] and not a.get("iscrowd") for a in anns):
        return dict.fromkeys(STAT_NAMES, -1.0)  # undefined, as COCOeval reports it
    if not dets:
        return dict.fromkeys(STAT_NAMES, 0.0)
    coco_gt = _coco({**gt, "annotations": anns})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets)
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.useSegm = None
        evaluator.params.kpt_oks_sigmas = np.asarray(kset.sigmas, dtype=np.float64)[idx]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats, strict=True)}


def evaluate_keypoints(gt: dict[str, Any], results: list[dict[str, Any]],
                       kset: KeypointSet) -> dict[str, float]:
    """Whole-set AP/AR plus ``AP/<part>`` and ``AR/<part>`` for every part of ``kset``.

    Args:
        gt: COCO ground truth whose annotations hold flat ``keypoints`` of ``kset``.
        results: COCO results entries as written by :func:`to_results`.
        kset: The keypoint set both are in.
    """
    metrics = evaluate_part(gt, results, kset, range(kset.num_keypoints))
    for part, indices in kset.parts.items():
        if len(indices) == kset.num_keypoints:
            continue
        stats = evaluate_part(gt, results, kset, indices)
        metrics[f"AP/{part}"], metrics[f"AR/{part}"] = stats["AP"], stats["AR"]
    return metrics


class CocoKeypointMetric(Metric):
    """Accumulates top-down predictions and scores them with COCOeval.

    Set :attr:`ground_truth` (a COCO dict with flat ``keypoints`` in this metric's set) before
    :meth:`compute`. :attr:`last_results` holds the COCO results list of the last compute, and
    :meth:`write_results` saves it as JSON.

    Args:
        keypoints: The keypoint set predictions and ground truth are in.
        score_mode: ``bbox_keypoint`` (official) or ``bbox``.
        keypoint_score_thr: Keypoint scores above this count in the instance score (0.2).
        nms_mode: ``oks_nms`` (official) or ``none``.
        nms_thr: OKS above which the lower-scored instance is dropped (0.9).
    """

    full_state_update = False
    higher_is_better = True
    image_ids: list[torch.Tensor]
    keypoints: list[torch.Tensor]
    bbox_scores: list[torch.Tensor]
    areas: list[torch.Tensor]

    def __init__(
        self,
        keypoints: str | dict[str, Any] | KeypointSet,
        score_mode: Literal["bbox_keypoint", "bbox"] = "bbox_keypoint",
        keypoint_score_thr: float = 0.2,
        nms_mode: Literal["oks_nms", "none"] = "oks_nms",
        nms_thr: float = 0.9,
    ) -> None:
        super().__init__()
        self.kset = load_keypoint_set(keypoints)
        self.score_mode, self.keypoint_score_thr = score_mode, keypoint_score_thr
        self.nms_mode, self.nms_thr = nms_mode, nms_thr
        self.ground_truth: dict[str, Any] | None = None
        self.last_results: list[dict[str, Any]] = []
        for name in ("image_ids", "keypoints", "bbox_scores", "areas"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, image_ids: torch.Tensor, keypoints: torch.Tensor, scores: torch.Tensor,
               bbox_scores: torch.Tensor, areas: torch.Tensor) -> None:
        """Add ``B`` instances: ``(B,)`` image ids, ``(B, K, 2)`` image-pixel keypoints,
        ``(B, K)`` keypoint scores, ``(B,)`` box scores and ``(B,)`` box areas (for OKS-NMS)."""
        if keypoints.shape[1] != self.kset.num_keypoints:
            raise ValueError(f"expected {self.kset.num_keypoints} keypoints, "
                             f"got {keypoints.shape[1]}")
        self.image_ids.append(image_ids.long())
        self.keypoints.append(torch.cat([keypoints.float(), scores.float()[..., None]], -1))
        self.bbox_scores.append(bbox_scores.float())
        self.areas.append(areas.float())

    def results(self) -> list[dict[str, Any]]:
        """Rescored, OKS-NMS-filtered COCO results of everything accumulated."""
        if isinstance(self.image_ids, list) and not self.image_ids:
            return []  # (after a distributed sync the states are tensors, not lists)
        ids = dim_zero_cat(self.image_ids).cpu().numpy()
        kps = dim_zero_cat(self.keypoints).cpu().double().numpy()
        bbox_scores = dim_zero_cat(self.bbox_scores).cpu().double().numpy()
        areas = dim_zero_cat(self.areas).cpu().double().numpy()
        scores = (rescore(bbox_scores, kps[..., 2], self.keypoint_score_thr)
                  if self.score_mode == "bbox_keypoint" else bbox_scores)
        sigmas = np.asarray(self.kset.sigmas)
        keep: list[int] = []
        for image_id in np.unique(ids):
            members = np.flatnonzero(ids == image_id)
            if self.nms_mode == "oks_nms":
                kept = oks_nms(kps[members], scores[members], areas[members], sigmas,
                               self.nms_thr)
                keep += members[kept].tolist()
            else:
                keep += members.tolist()
        keep = sorted(keep)
        return to_results(ids[keep], kps[keep], scores[keep], self.kset)

    def compute(self) -> dict[str, float]:
        """``AP``, ``AP50``, ``AP75``, ``APm``, ``APl``, ``AR``... and per-part ``AP/<part>``."""
        if self.ground_truth is None:
            raise RuntimeError("CocoKeypointMetric.ground_truth must be set before compute()")
        self.last_results = self.results()
        return evaluate_keypoints(self.ground_truth, self.last_results, self.kset)

    def write_results(self, path: str | Path) -> Path:
        """Save the last computed COCO results list as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.last_results))
        return path
