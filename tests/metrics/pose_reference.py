"""Prediction cases on real COCO files, and the official scoring procedure to compare against.

The reference is what mmpose's ``CocoMetric`` / ``CocoWholeBodyMetric`` do, written out step by
step (group by image, keep the first instance of each id, rescore, OKS-NMS at 0.9 in float32),
with the scoring itself done by xtcocotools' ``COCOeval`` on the original annotation file. It
needs xtcocotools (imported lazily); the case generators do not.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from sapiens_kit.data.keypoints import KeypointSet, load_keypoint_set

STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
# COCO-WholeBody: the kit's part names and xtcocotools' iouType for each.
WHOLEBODY_PARTS = {"body": "keypoints_body", "foot": "keypoints_foot", "face": "keypoints_face",
                   "left_hand": "keypoints_lefthand", "right_hand": "keypoints_righthand"}
FIELDS = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")

Prediction = dict[str, Any]  # id, img_id, keypoints (K, 2), keypoint_scores (K,), bbox_score, area


def flat_gt(ann: dict[str, Any], kset: KeypointSet) -> np.ndarray:
    """``(K, 3)`` ground-truth points of an annotation, in the set's field order."""
    flat = [v for fld, _ in kset.annotation_fields for v in ann.get(fld, [])]
    return np.asarray(flat, dtype=np.float32).reshape(kset.num_keypoints, 3)


def ids_from_zero(data: dict[str, Any]) -> dict[str, Any]:
    """The file with annotation ids renumbered 0, 1, 2, ... (hand-made files often do this)."""
    data = copy.deepcopy(data)
    for n, ann in enumerate(data["annotations"]):
        ann["id"] = n
    return data


def crowded(data: dict[str, Any], copies: int = 2, seed: int = 0) -> dict[str, Any]:
    """An OCHuman-style file: every person gets ``copies`` overlapping neighbours in the same
    photo (shifted by 10-30 % of the box), so people stand in each other's boxes."""
    rng = np.random.default_rng(seed)
    data = copy.deepcopy(data)
    extra, next_id = [], max(a["id"] for a in data["annotations"]) + 1
    for ann in data["annotations"]:
        for _ in range(copies):
            new = copy.deepcopy(ann)
            w, h = ann["bbox"][2:]
            dx, dy = rng.uniform(0.1, 0.3) * w * rng.choice([-1, 1]), rng.uniform(0, 0.2) * h
            new["bbox"] = [ann["bbox"][0] + dx, ann["bbox"][1] + dy, w, h]
            for fld in FIELDS:
                if fld in new:
                    pts = np.asarray(new[fld], dtype=np.float64).reshape(-1, 3)
                    lab = pts[:, 2] > 0
                    pts[lab, 0] += dx
                    pts[lab, 1] += dy
                    new[fld] = pts.reshape(-1).round(2).tolist()
            new["id"] = next_id
            next_id += 1
            extra.append(new)
    data["annotations"] += extra
    return data


def make_predictions(data: dict[str, Any], kset: KeypointSet, case: str,
                     seed: int = 0) -> list[Prediction]:
    """Top-down predictions for a perturbation ``case`` of the ground truth ``data``.

    Ids grow in the order the predictions are made (as a sampler gives them), except the
    ``padded`` case's repeats, which reuse an id.
    """
    rng = np.random.default_rng(seed)
    preds: list[Prediction] = []
    next_id = max(a["id"] for a in data["annotations"]) + 1

    def add(pid: int, img: int, xy: np.ndarray, scores: np.ndarray, box: float,
            area: float) -> None:
        preds.append({"id": pid, "img_id": img, "keypoints": xy.astype(np.float32),
                      "keypoint_scores": scores.astype(np.float32),
                      "bbox_score": np.float32(box), "area": np.float32(area)})

    people = [a for a in data["annotations"]
              if not a.get("iscrowd") and (flat_gt(a, kset)[:, 2] > 0).any()]
    exact = case in ("exact", "exact_unscored")
    for n, ann in enumerate(people):
        gt = flat_gt(ann, kset)
        labelled = gt[:, 2] > 0
        w, h = ann["bbox"][2:]
        area = w * h * 1.25**2
        if case == "dropped" and n % 3 == 1:
            continue
        if exact:
            xy = gt[:, :2].copy()
            # "unscored": every point gets score 1, labelled or not (no scores in the file)
            scores = np.ones(len(gt)) if case == "exact_unscored" else labelled.astype(float)
        else:
            xy = gt[:, :2] + rng.normal(0, 0.05, gt[:, :2].shape) * np.sqrt(ann["area"])
            scores = rng.uniform(0.05, 1.0, len(gt))
        if case == "low_scores":
            scores = rng.choice([0.0, 0.1, 0.15, 0.2, np.float32(0.2), 0.2001, 0.25], len(gt))
            if n % 4 == 0:
                scores[:] = 0.2  # nothing above the threshold: empty mean, score 0
        if case == "tied_scores":
            scores = np.where(rng.random(len(gt)) < 0.5, 0.5, 1.0)
            scores[:] = 0.75 if n % 2 else scores
        if case == "parts_unscored":
            for part_no, indices in enumerate(kset.parts.values()):
                if len(indices) < kset.num_keypoints and (n + part_no) % 2 == 0:
                    scores[np.asarray(indices)] = 0.0
        box = 1.0 if exact or case == "tied_scores" else rng.uniform(0.5, 1.0)
        add(int(ann["id"]), ann["image_id"], xy, scores, box, area)
        if exact:
            continue
        # a near copy (OKS-NMS removes it), a stray pose, and for some cases more
        shift = xy + rng.normal(0, 0.5, xy.shape)
        add(next_id, ann["image_id"], shift, scores * (1.0 if case == "tied_scores" else 0.9),
            box, area)
        add(next_id + 1, ann["image_id"], xy * 0.5 + 20, scores * 0.5, box, area)
        next_id += 2
        if case == "padded" and n % 2 == 0:
            add(int(ann["id"]), ann["image_id"], xy, scores, box, area)  # sampler padding
        if case in ("false_positives", "crowded"):
            for _ in range(2):
                fake = xy + rng.normal(0, 0.4, (1, 2)) * np.sqrt(ann["area"])
                add(next_id, ann["image_id"], fake, rng.uniform(0.3, 1.0, len(gt)),
                    rng.uniform(0.3, 1.0), area)
                next_id += 1
    return preds


def _oks_iou(g: np.ndarray, d: np.ndarray, a_g: np.float32, a_d: np.ndarray,
             sigmas: np.ndarray) -> np.ndarray:
    """mmpose's ``oks_iou``: flat float32 ``(K*3,)`` against ``(N, K*3)``, all points."""
    var = (sigmas * 2) ** 2
    out = np.zeros(len(d), dtype=np.float32)
    for n in range(len(d)):
        dx, dy = d[n, 0::3] - g[0::3], d[n, 1::3] - g[1::3]
        e = (dx**2 + dy**2) / var / ((a_g + a_d[n]) / 2 + np.spacing(1)) / 2
        out[n] = np.sum(np.exp(-e)) / len(e) if len(e) != 0 else 0.0
    return out


def _oks_nms(instances: list[dict[str, Any]], thr: float, sigmas: np.ndarray) -> list[int]:
    scores = np.array([inst["score"] for inst in instances])
    kpts = np.array([inst["kp3"].flatten() for inst in instances])
    areas = np.array([inst["area"] for inst in instances])
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while len(order) > 0:
        i = order[0]
        keep.append(int(i))
        ovr = _oks_iou(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]], sigmas)
        order = order[np.where(ovr <= thr)[0] + 1]
    return keep


def reference_results(preds: list[Prediction], kset: KeypointSet,
                      thr: float = 0.2, nms_thr: float = 0.9) -> list[dict[str, Any]]:
    """The COCO results list mmpose writes for ``preds``."""
    sigmas = np.array(kset.sigmas, dtype=np.float32)
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for pred in preds:
        by_image[pred["img_id"]].append(dict(pred))
    results = []
    for instances in by_image.values():
        instances = sorted(instances, key=lambda x: x["id"])
        for i in range(len(instances) - 1, 0, -1):
            if instances[i]["id"] == instances[i - 1]["id"]:
                del instances[i]
        for inst in instances:
            inst["kp3"] = np.concatenate([inst["keypoints"], inst["keypoint_scores"][:, None]], -1)
            mean, valid = 0, 0
            for s in inst["keypoint_scores"]:
                if s > thr:
                    mean += s
                    valid += 1
            if valid != 0:
                mean /= valid
            inst["score"] = inst["bbox_score"] * mean
        for k in _oks_nms(instances, nms_thr, sigmas):
            inst = instances[k]
            entry: dict[str, Any] = {"image_id": inst["img_id"], "category_id": 1,
                                     "score": float(inst["score"])}
            flat, start = inst["kp3"].reshape(-1), 0
            for fld, count in kset.annotation_fields:
                entry[fld] = flat[start * 3:(start + count) * 3].tolist()
                start += count
            results.append(entry)
    return results


def reference_metrics(gt_file: Path, preds: list[Prediction], kset: KeypointSet,
                      tmp: Path) -> dict[str, float]:
    """The kit's metric names with the official numbers (xtcocotools on ``gt_file``)."""
    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval

    res_file = tmp / "reference.keypoints.json"
    res_file.write_text(json.dumps(reference_results(preds, kset)))
    sigmas = np.array(kset.sigmas, dtype=np.float32)
    out: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "'foot_score' not found, use 'score'"
        coco = COCO(str(gt_file))
        det = coco.loadRes(str(res_file))

        def stats(iou_type: str, idx: np.ndarray) -> np.ndarray:
            ev = COCOeval(coco, det, iou_type, sigmas[idx], use_area=True)
            ev.params.useSegm = None
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            return np.asarray(ev.stats, dtype=np.float64)

        if kset.num_keypoints == 133:
            whole = stats("keypoints_wholebody", np.arange(133))
            for part, iou_type in WHOLEBODY_PARTS.items():
                s = stats(iou_type, np.asarray(kset.parts[part]))
                out[f"AP/{part}"], out[f"AR/{part}"] = s[0], s[5]
        else:
            whole = stats("keypoints", np.arange(kset.num_keypoints))
    out.update(zip(STATS, whole.tolist(), strict=True))
    return out


def kit_metrics(gt_file: Path, img_dir: Path, preds: list[Prediction], kset_name: str,
                with_ids: bool = True) -> dict[str, float]:
    """The kit's ``CocoKeypointMetric`` on the same predictions and ground truth."""
    import torch

    from sapiens_kit.data.datasets import CocoKeypoints
    from sapiens_kit.metrics import CocoKeypointMetric

    metric = CocoKeypointMetric(kset_name)
    for p in preds:
        args = [torch.tensor([p["img_id"]]), torch.from_numpy(p["keypoints"][None]),
                torch.from_numpy(p["keypoint_scores"][None]), torch.tensor([p["bbox_score"]]),
                torch.tensor([p["area"]])]
        if with_ids:
            args.append(torch.tensor([p["id"]]))
        metric.update(*args)
    metric.ground_truth = CocoKeypoints(gt_file, img_dir, kset_name).coco_ground_truth()
    return metric.compute()


MINI_FILES = {"coco17": ("annotations_coco17.json", "coco17"),
              "wholebody": ("annotations.json", "coco_wholebody133"),
              "ochuman": ("annotations_coco17.json", "coco17")}  # made crowded by `crowded`
CASES = ("exact", "exact_unscored", "noisy", "dropped", "false_positives", "parts_unscored",
         "low_scores", "tied_scores", "padded", "ids0_exact", "ids0_noisy")
GOLDEN = Path(__file__).with_name("pose_reference_values.json")


def case_file(mini: Path, name: str, case: str, tmp: Path) -> tuple[Path, dict[str, Any], str]:
    """The annotation file of one ``<file>/<case>`` (written under ``tmp`` when perturbed),
    its data, and the prediction case to generate."""
    fname = MINI_FILES[name][0]
    path = mini / fname
    data = json.loads(path.read_text())
    pred_case = case
    if name == "ochuman":
        data = crowded(data)
    if case.startswith("ids0_"):
        data, pred_case = ids_from_zero(data), case[len("ids0_"):]
    if data != json.loads(path.read_text()):
        path = tmp / f"{name}_{case}.json"
        path.write_text(json.dumps(data))
    return path, data, pred_case


def write_golden(mini: Path, tmp: Path) -> None:
    """Record xtcocotools' numbers for every case (``python -m tests.metrics.pose_reference``),
    so that the suite checks them where xtcocotools is not installed."""
    values = {}
    for name, (_, kset_name) in MINI_FILES.items():
        kset = load_keypoint_set(kset_name)
        for case in CASES:
            path, data, pred_case = case_file(mini, name, case, tmp)
            preds = make_predictions(data, kset, pred_case, seed=3)
            values[f"{name}/{case}"] = reference_metrics(path, preds, kset, tmp)
    GOLDEN.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    import tempfile

    from tests.helpers import SHARED_DATA

    with tempfile.TemporaryDirectory() as folder:
        write_golden(SHARED_DATA / "coco_wholebody_mini", Path(folder))
