"""Keypoint ``COCOeval`` with xtcocotools' semantics, on top of pycocotools.

The official Sapiens / mmpose numbers come from xtcocotools. Its keypoint evaluation differs from
pycocotools' in ways that change AP on real files, so the kit cannot use pycocotools' class as it
is (and xtcocotools' wheels do not import under numpy 2, so it cannot be a dependency):

- "Unmatched" is -1, not 0. pycocotools stores the matched annotation id and tests it for
  truth, so a detection matched to an annotation with id 0 counts as a false positive (and that
  annotation can be matched again). Hand-made COCO files often number annotations from 0.
- A ground truth is ignored when none of its points is labelled (``v > 0``), counted from the
  keypoints themselves rather than read from ``num_keypoints``.
- A detection with no positive keypoint score is left out.
- ``use_area``: with it (the mmpose default) the annotation's ``area`` sets the OKS scale and the
  area range; an annotation without ``area`` is ranged by ``0.53 * w * h`` of its box.
- Detections' own area (which only decides whether an unmatched detection is ignored for an area
  range) is the extent of the points the caller names (xtcocotools: the ``keypoints`` field,
  i.e. the body, even when scoring a whole-body part).

The OKS itself and ``accumulate``/``summarize`` are pycocotools' (they are the same there).
"""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO  # type: ignore[import-untyped]
from pycocotools.cocoeval import COCOeval  # type: ignore[import-untyped]

UNMATCHED = -1


class KeypointEval(COCOeval):  # type: ignore[misc]
    """pycocotools ``COCOeval`` for keypoints that scores as xtcocotools' ``COCOeval`` does.

    Args:
        coco_gt: Ground truth; annotations hold flat ``keypoints`` (x, y, v triples).
        coco_dt: Detections (from :meth:`COCO.loadRes`), ``keypoints`` with scores as third value.
        sigmas: Per-keypoint OKS sigmas, in the dtype the reference uses (mmpose: float32).
        use_area: Use the annotations' ``area`` (True, mmpose's default) or ``0.53 * w * h``.
    """

    def __init__(self, coco_gt: COCO, coco_dt: COCO, sigmas: np.ndarray,
                 use_area: bool = True) -> None:
        super().__init__(coco_gt, coco_dt, "keypoints")
        self.params.kpt_oks_sigmas = np.asarray(sigmas)
        self.use_area = use_area

    def _prepare(self) -> None:
        """Split ground truth and detections by image; set ignores as xtcocotools does."""
        p = self.params
        ids = {"imgIds": p.imgIds, "catIds": p.catIds} if p.useCats else {"imgIds": p.imgIds}
        gts = self.cocoGt.loadAnns(self.cocoGt.getAnnIds(**ids))
        dts = self.cocoDt.loadAnns(self.cocoDt.getAnnIds(**ids))
        self._gts, self._dts = defaultdict(list), defaultdict(list)
        for gt in gts:
            labelled = np.count_nonzero(np.asarray(gt["keypoints"])[2::3] > 0)
            gt["ignore"] = bool(gt.get("iscrowd")) or labelled == 0
            self._gts[gt["image_id"], gt["category_id"]].append(gt)
        for dt in dts:
            if np.count_nonzero(np.asarray(dt["keypoints"])[2::3] > 0):
                self._dts[dt["image_id"], dt["category_id"]].append(dt)
        self.evalImgs: Any = defaultdict(list)
        self.eval: dict[str, Any] = {}

    def computeOks(self, imgId: int, catId: int) -> Any:
        """pycocotools' OKS; without ``use_area`` the scale is ``0.53 * w * h`` of the box."""
        if self.use_area:
            return super().computeOks(imgId, catId)
        saved = {}
        for gt in self._gts[imgId, catId]:
            saved[id(gt)] = gt.get("area")
            gt["area"] = gt["bbox"][2] * gt["bbox"][3] * 0.53
        try:
            return super().computeOks(imgId, catId)
        finally:
            for gt in self._gts[imgId, catId]:
                if saved[id(gt)] is None:
                    del gt["area"]
                else:
                    gt["area"] = saved[id(gt)]

    def _range_area(self, gt: dict[str, Any]) -> float:
        if "area" not in gt or not self.use_area:
            return float(gt["bbox"][2] * gt["bbox"][3] * 0.53)
        return float(gt["area"])

    def evaluateImg(self, imgId: int, catId: int, aRng: Sequence[float],
                    maxDet: int) -> dict[str, Any] | None:
        """Greedy matching of one image, with -1 as "unmatched".

        ``dtMatches`` holds 1 for a detection matched to an annotation whose id is >= 0 and 0
        otherwise (what pycocotools' ``accumulate`` reads); ``dtMatchIds`` keeps the ids.
        """
        p = self.params
        if p.useCats:
            gt, dt = self._gts[imgId, catId], self._dts[imgId, catId]
        else:
            gt = [g for c in p.catIds for g in self._gts[imgId, c]]
            dt = [d for c in p.catIds for d in self._dts[imgId, c]]
        if not gt and not dt:
            return None
        for g in gt:
            area = self._range_area(g)
            g["_ignore"] = int(bool(g["ignore"]) or area < aRng[0] or area > aRng[1])
        gtind = np.argsort([g["_ignore"] for g in gt], kind="mergesort")
        gt = [gt[i] for i in gtind]
        dtind = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in dtind[:maxDet]]
        iscrowd = [int(g.get("iscrowd", 0)) for g in gt]
        ious = self.ious[imgId, catId]
        ious = ious[:, gtind] if len(ious) > 0 else ious

        n_thr = len(p.iouThrs)
        gtm = np.full((n_thr, len(gt)), UNMATCHED, dtype=np.int64)
        dtm = np.full((n_thr, len(dt)), UNMATCHED, dtype=np.int64)
        gt_ig = np.array([g["_ignore"] for g in gt])
        dt_ig = np.zeros((n_thr, len(dt)))
        if len(ious):
            for t, thr in enumerate(p.iouThrs):
                for di, d in enumerate(dt):
                    best, m = min(thr, 1 - 1e-10), UNMATCHED
                    for gi in range(len(gt)):
                        if gtm[t, gi] >= 0 and not iscrowd[gi]:
                            continue  # already taken (crowds can take many)
                        if m > UNMATCHED and gt_ig[m] == 0 and gt_ig[gi] == 1:
                            break  # matched a real one; only ignored ones follow
                        if ious[di, gi] < best:
                            continue
                        best, m = ious[di, gi], gi
                    if m == UNMATCHED:
                        continue
                    dt_ig[t, di] = gt_ig[m]
                    dtm[t, di] = gt[m]["id"]
                    gtm[t, m] = d["id"]
        outside = np.array([d["area"] < aRng[0] or d["area"] > aRng[1] for d in dt])
        matched = dtm >= 0
        dt_ig = np.logical_or(dt_ig, np.logical_and(~matched, outside.reshape(1, len(dt))))
        return {
            "image_id": imgId, "category_id": catId, "aRng": aRng, "maxDet": maxDet,
            "dtIds": [d["id"] for d in dt], "gtIds": [g["id"] for g in gt],
            "dtMatches": matched.astype(np.int64), "dtMatchIds": dtm, "gtMatches": gtm,
            "dtScores": [d["score"] for d in dt], "gtIgnore": gt_ig, "dtIgnore": dt_ig,
        }


def quiet_coco(dataset: dict[str, Any]) -> COCO:
    """A pycocotools ``COCO`` built from a dict without printing."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def keypoint_stats(gt: dict[str, Any], dets: list[dict[str, Any]], sigmas: np.ndarray,
                   det_areas: Sequence[tuple[float, list[float]]] | None = None,
                   use_area: bool = True) -> np.ndarray:
    """The 10 COCO keypoint stats (AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl).

    Args:
        gt: COCO ground-truth dict with flat ``keypoints``.
        dets: Results entries (``image_id``, ``category_id``, ``keypoints``, ``score``).
        sigmas: OKS sigmas of the points in ``keypoints``.
        det_areas: Per detection ``(area, bbox)`` to use instead of the extent of its points.
        use_area: See :class:`KeypointEval`.
    """
    coco_gt = quiet_coco(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets)
        if det_areas is not None:
            for ann, (area, bbox) in zip(coco_dt.dataset["annotations"], det_areas, strict=True):
                ann["area"], ann["bbox"] = area, bbox
        evaluator = KeypointEval(coco_gt, coco_dt, sigmas, use_area)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats, dtype=np.float64)
