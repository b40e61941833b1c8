"""COCO keypoint AP/AR equal to the official ``CocoMetric`` / ``CocoWholeBodyMetric`` (mmpose on
xtcocotools), to 1e-6 on every value.

As there: instances are grouped by image and de-duplicated by instance id; each is rescored (box
score x mean of the keypoint scores above 0.2, in float32); OKS non-maximum suppression at 0.9
(float32 OKS, mmpose's tie order) keeps the best; the COCO results list is scored by
:class:`~sapiens_kit.metrics.keypoint_eval.KeypointEval` (xtcocotools' semantics on pycocotools:
-1 as "unmatched", ``use_area``, per-part ignores) once for the whole set and once per part (body,
foot, face, left_hand, right_hand, ...) with that part's float32 sigmas."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from sapiens_kit.data.keypoints import KeypointSet, load_keypoint_set
from sapiens_kit.metrics.keypoint_eval import keypoint_stats

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def rescore(bbox_scores: np.ndarray, keypoint_scores: np.ndarray, thr: float = 0.2) -> np.ndarray:
    """Instance scores: box score x mean of the keypoint scores above ``thr`` (0 if none).

    Computed in float32 in mmpose's order (the threshold as a float32, the mean summed point by
    point), so that scores and therefore ties and their order are the official ones.
    """
    kps = np.asarray(keypoint_scores, dtype=np.float32)
    above = kps > np.float32(thr)
    total = np.cumsum(np.where(above, kps, np.float32(0)), axis=-1, dtype=np.float32)[..., -1]
    count = above.sum(-1)
    mean = np.where(count > 0, total / np.maximum(count, 1).astype(np.float32), np.float32(0))
    return np.asarray(np.asarray(bbox_scores, dtype=np.float32) * mean.astype(np.float32),
                      dtype=np.float32)


def oks(ref: np.ndarray, others: np.ndarray, ref_area: float, areas: np.ndarray,
        sigmas: np.ndarray) -> np.ndarray:
    """OKS between one pose ``(K, 2+)`` and ``(N, K, 2+)`` poses, all points counted.

    float32 points, areas and sigmas, one pose at a time, as mmpose's ``oks_iou`` (whose values
    decide what the 0.9 threshold suppresses).
    """
    var = (np.asarray(sigmas, dtype=np.float32) * 2) ** 2
    ref = np.asarray(ref, dtype=np.float32)
    others = np.asarray(others, dtype=np.float32)
    area = np.float32(ref_area)
    areas = np.asarray(areas, dtype=np.float32)
    out = np.zeros(len(others), dtype=np.float32)
    for n, pose in enumerate(others):
        dx, dy = pose[:, 0] - ref[:, 0], pose[:, 1] - ref[:, 1]
        e = (dx**2 + dy**2) / var / ((area + areas[n]) / 2 + np.spacing(1)) / 2
        out[n] = np.sum(np.exp(-e)) / len(e) if len(e) else 0.0
    return out


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
            thr: float = 0.9) -> list[int]:
    """Indices kept by greedy OKS non-maximum suppression, best score first.

    Ties go as in mmpose: the order is ``argsort`` of the float32 scores, reversed.
    """
    order = np.asarray(scores, dtype=np.float32).argsort()[::-1]
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        if rest.size:
            overlap = oks(keypoints[best], keypoints[rest], areas[best], areas[rest], sigmas)
            rest = rest[overlap <= np.float32(thr)]
        order = rest
    return keep


def unique_instances(instance_ids: np.ndarray) -> np.ndarray:
    """Indices of one image's instances sorted by id, the first of each id only (padding
    duplicates from distributed sampling), as mmpose's ``_sort_and_unique_bboxes``."""
    order = np.argsort(instance_ids, kind="stable")
    ids = instance_ids[order]
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    return np.asarray(order[first])


def to_results(
    image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, kset: KeypointSet
) -> list[dict[str, Any]]:
    """COCO results entries, keypoints split into the set's annotation fields.

    Values are written unrounded (the float32 values the model gave), as mmpose writes them:
    rounding moves OKS values across the thresholds now and then.
    """
    out = []
    for image_id, kps, score in zip(image_ids, keypoints, scores, strict=True):
        entry: dict[str, Any] = {"image_id": int(image_id), "category_id": 1}
        start = 0
        for fld, count in kset.annotation_fields:
            entry[fld] = [float(v) for v in kps[start : start + count].reshape(-1)]
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


def _extent(points: np.ndarray) -> tuple[float, list[float]]:
    """Area and box of the points' extent, as ``COCO.loadRes`` gives a keypoint result."""
    x0, x1 = np.min(points[:, 0]), np.max(points[:, 0])
    y0, y1 = np.min(points[:, 1]), np.max(points[:, 1])
    return float((x1 - x0) * (y1 - y0)), [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def evaluate_part(gt: dict[str, Any], results: list[dict[str, Any]], kset: KeypointSet,
                  indices: Sequence[int]) -> dict[str, float]:
    """xtcocotools' keypoint COCOeval on keypoints ``indices`` of the flat ground truth ``gt``.

    As ``keypoints_<part>`` there: a ground truth with no labelled point in the part is ignored,
    a result with no positive score in the part is left out, and a result's own area (used for
    the area ranges) is the extent of its first annotation field (COCO-WholeBody: the body).
    """
    idx = np.asarray(indices)
    anns = []
    for ann in gt["annotations"]:
        kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)[idx]
        anns.append({**ann, "keypoints": kps.reshape(-1).tolist(),
                     "num_keypoints": int((kps[:, 2] > 0).sum())})
    dets, extents = [], []
    first = kset.annotation_fields[0][1] if kset.annotation_fields else kset.num_keypoints
    for entry in results:
        all_kps = results_keypoints(entry, kset)
        kps = all_kps[idx]
        if (kps[:, 2] > 0).any():
            dets.append({"image_id": entry["image_id"], "category_id": 1,
                         "keypoints": kps.reshape(-1).tolist(), "score": entry["score"]})
            extents.append(_extent(all_kps[:first]))
    if not any(a["num_keypoints"] and not a.get("iscrowd") for a in anns):
        return dict.fromkeys(STAT_NAMES, -1.0)  # undefined, as COCOeval reports it
    if not dets:
        return dict.fromkeys(STAT_NAMES, 0.0)
    sigmas = np.asarray(kset.sigmas, dtype=np.float32)[idx]  # float32 as mmpose hands them on
    stats = keypoint_stats({**gt, "annotations": anns}, dets, sigmas, extents)
    return {name: float(v) for name, v in zip(STAT_NAMES, stats, strict=True)}


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
    instance_ids: list[torch.Tensor]

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
        for name in ("image_ids", "keypoints", "bbox_scores", "areas", "instance_ids"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, image_ids: torch.Tensor, keypoints: torch.Tensor, scores: torch.Tensor,
               bbox_scores: torch.Tensor, areas: torch.Tensor,
               instance_ids: torch.Tensor | None = None) -> None:
        """Add ``B`` instances: ``(B,)`` image ids, ``(B, K, 2)`` image-pixel keypoints,
        ``(B, K)`` keypoint scores, ``(B,)`` box scores and ``(B,)`` box areas (for OKS-NMS).

        ``instance_ids`` (``(B,)``, >= 0: annotation or detection ids) lets :meth:`results`
        drop repeats of an instance (a distributed sampler pads with them) and order an image's
        instances by id before OKS-NMS, as mmpose does; without them every instance counts once,
        in the order added."""
        if keypoints.shape[1] != self.kset.num_keypoints:
            raise ValueError(f"expected {self.kset.num_keypoints} keypoints, "
                             f"got {keypoints.shape[1]}")
        self.image_ids.append(image_ids.long())
        self.keypoints.append(torch.cat([keypoints.float(), scores.float()[..., None]], -1))
        self.bbox_scores.append(bbox_scores.float())
        self.areas.append(areas.float())
        if instance_ids is None:
            instance_ids = torch.full((len(image_ids),), -1)
        self.instance_ids.append(instance_ids.long().reshape(-1))

    def results(self) -> list[dict[str, Any]]:
        """Rescored, OKS-NMS-filtered COCO results of everything accumulated."""
        if isinstance(self.image_ids, list) and not self.image_ids:
            return []  # (after a distributed sync the states are tensors, not lists)
        ids = dim_zero_cat(self.image_ids).cpu().numpy()
        kps = dim_zero_cat(self.keypoints).cpu().numpy().astype(np.float32)
        bbox_scores = dim_zero_cat(self.bbox_scores).cpu().numpy()
        areas = dim_zero_cat(self.areas).cpu().numpy()
        inst = dim_zero_cat(self.instance_ids).cpu().numpy().astype(np.int64)
        missing = inst < 0  # no id given: unique, after the given ones, in the order added
        inst[missing] = max(int(inst.max()), -1) + 1 + np.arange(int(missing.sum()))
        if self.score_mode == "bbox_keypoint":
            scores = rescore(bbox_scores, kps[..., 2], self.keypoint_score_thr)
        else:
            scores = bbox_scores.astype(np.float32)
        keep: list[int] = []
        for image_id in np.unique(ids):
            members = np.flatnonzero(ids == image_id)
            members = members[unique_instances(inst[members])]
            if self.nms_mode == "oks_nms":
                kept = oks_nms(kps[members], scores[members], areas[members],
                               np.asarray(self.kset.sigmas, dtype=np.float32), self.nms_thr)
                keep += members[kept].tolist()  # in NMS order: it decides ties in COCOeval
            else:
                keep += members.tolist()
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
